//! The snapshot queries run on: the latest the runner published, made ready for the wire
//! (the Postgres catalog that psql's `\dt` and the BI tools' start-up queries read) once,
//! when it arrives, not per query.

use std::sync::{Arc, RwLock};

use datafusion_postgres::DfSessionService;
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

use super::read_only::ReadOnly;
use crate::service::Snapshot;

/// A snapshot and the session service that answers over it.
pub struct Served {
    pub snapshot: Arc<Snapshot>,
    pub service: DfSessionService,
}

impl Served {
    /// `snapshot` with the Postgres catalog on its engine, and the read-only hook first.
    pub fn new(snapshot: Arc<Snapshot>) -> Result<Served, String> {
        let ctx = Arc::new(snapshot.engine.ctx.clone());
        let catalog = ctx
            .state()
            .config()
            .options()
            .catalog
            .default_catalog
            .clone();
        setup_pg_catalog(&ctx, &catalog, Arc::new(AuthManager::default()))
            .map_err(|e| format!("the Postgres catalog could not be set up: {e}"))?;
        let hooks: Vec<Arc<dyn datafusion_postgres::QueryHook>> = vec![
            Arc::new(ReadOnly),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let service = DfSessionService::new_with_hooks(ctx, hooks);
        Ok(Served { snapshot, service })
    }

    /// Make this snapshot's model tables first when `sql` reads them (risk scores,
    /// assignments, the forecast), as `arstream sql` does.
    pub async fn make_derived(&self, sql: &str) {
        if self.snapshot.engine.reads_derived(sql)
            && let Err(e) = self.snapshot.model_tables().await
        {
            tracing::warn!("the model tables of this snapshot could not be made: {e}");
        }
    }
}

/// The latest snapshot served, swapped whole when a newer one is ready: a query takes it
/// once when it starts, so it never sees two.
#[derive(Default)]
pub struct Latest(RwLock<Option<Arc<Served>>>);

impl Latest {
    pub fn set(&self, served: Served) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(served));
    }

    /// The latest snapshot, or the error a client gets before the first one.
    pub fn get(&self) -> PgWireResult<Arc<Served>> {
        let latest = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        latest.ok_or_else(|| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "57P03".into(),
                "arstream is still loading its first snapshot; try again in a moment".into(),
            )))
        })
    }
}
