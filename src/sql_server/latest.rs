//! The snapshot queries run on: the latest the runner published, made ready for the wire
//! (the Postgres catalog that psql's `\dt` and the BI tools' start-up queries read) once,
//! when it arrives, not per query.

use std::sync::{Arc, RwLock};

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

use super::read_only::ReadOnly;
use super::summaries::Read;
use crate::service::Snapshot;

/// A snapshot and the session service that answers over it.
pub struct Served {
    pub snapshot: Arc<Snapshot>,
    /// Plans statements (prepared ones too) over the snapshot.
    pub service: DfSessionService,
    /// The snapshot's session with the Postgres catalog, for each query's own.
    state: SessionState,
}

impl Served {
    /// `snapshot` with the Postgres catalog and the functions clients ask at start, its
    /// summary views served from the rows it keeps (see [`super::summaries`]); the
    /// read-only hook first.
    pub async fn new(snapshot: Arc<Snapshot>, read: &Read) -> Result<Served, String> {
        // A session of its own over a copy of the snapshot's catalog (the tables shared).
        let state = snapshot.engine.ctx.state();
        let catalogs = super::summaries::catalog_copy(state.catalog_list(), &snapshot, read);
        let catalogs =
            (catalogs.await).map_err(|e| format!("the catalog could not be copied: {e}"))?;
        let state = SessionStateBuilder::new_from_existing(state)
            .with_catalog_list(catalogs)
            .build();
        let ctx = Arc::new(SessionContext::new_with_state(state));
        for function in super::functions::all() {
            ctx.register_udf(function);
        }
        let catalog = ctx
            .state()
            .config()
            .options()
            .catalog
            .default_catalog
            .clone();
        setup_pg_catalog(&ctx, &catalog, Arc::new(AuthManager::default()))
            .map_err(|e| format!("the Postgres catalog could not be set up: {e}"))?;
        let state = ctx.state();
        let service = DfSessionService::new_with_hooks(ctx, hooks());
        Ok(Served {
            snapshot,
            service,
            state,
        })
    }

    /// A session service for one query over this snapshot, whose operators (joins, sorts,
    /// aggregates) may hold `memory` bytes at most: past it the query fails, not the server.
    pub fn for_query(&self, memory: usize) -> Result<DfSessionService, String> {
        let runtime = RuntimeEnvBuilder::from_runtime_env(self.state.runtime_env())
            .with_memory_limit(memory, 1.0)
            .build_arc()
            .map_err(|e| e.to_string())?;
        let state = SessionStateBuilder::new_from_existing(self.state.clone())
            .with_runtime_env(runtime)
            .build();
        let ctx = Arc::new(SessionContext::new_with_state(state));
        Ok(DfSessionService::new_with_hooks(ctx, hooks()))
    }

    /// Make this snapshot's model tables first when `sql` reads them (risk scores,
    /// assignments, the forecast), as `arstream sql` does; the KPI summary does not wait.
    pub async fn make_derived(&self, sql: &str) {
        if self.snapshot.engine.reads_model_tables(sql)
            && let Err(e) = self.snapshot.model_tables().await
        {
            tracing::warn!("the model tables of this snapshot could not be made: {e}");
        }
    }
}

impl Served {
    /// The rows of `sql` when the refresh computed them already (the KPI summary): the
    /// snapshot's own result, with no query run.
    pub async fn computed(&self, sql: &str) -> Option<crate::service::QueryResult> {
        let sql = computed_key(sql);
        if !self.snapshot.results.contains_key(sql) {
            return None;
        }
        self.snapshot.query(sql, None).await.ok()
    }

    /// The columns of `sql` when the refresh computed its rows, without computing anything.
    pub fn computed_schema(&self, sql: &str) -> Option<arrow::datatypes::SchemaRef> {
        let (schema, _) = self.snapshot.results.get(computed_key(sql))?;
        Some(schema.clone())
    }

    /// A session to turn computed rows into a response.
    pub fn session(&self) -> SessionContext {
        SessionContext::new_with_state(self.state.clone())
    }
}

/// `sql` as the refresh's results are keyed.
fn computed_key(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim()
}

/// What runs before DataFusion: the read-only guard first, then datafusion-postgres' own
/// (cursors, `SET` and `SHOW`, transactions).
fn hooks() -> Vec<Arc<dyn datafusion_postgres::QueryHook>> {
    vec![
        Arc::new(ReadOnly),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ]
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
