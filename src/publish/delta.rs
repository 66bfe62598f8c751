//! One Delta table of the publish location, through the `deltalake` crate on arstream's own
//! object store (so every store arstream reads, it publishes to, with no cloud SDK of
//! Delta's own).

use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use std::time::Duration;

use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use deltalake::DeltaTable;
use deltalake::delta_datafusion::planner::DeltaPlanner;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::logstore::{LogStore, LogStoreFactory, StorageConfig, default_logstore};
use deltalake::protocol::SaveMode;

use super::{APP_ID, PublishError};
use crate::engine::Engine;
use crate::store::Location;

/// A Delta table, existing or not yet.
pub struct Table {
    name: String,
    url: url::Url,
    delta: DeltaTable,
}

impl Table {
    /// The table `name` under `to` (not created until written).
    pub async fn open(to: &Location, name: &str) -> Result<Table, PublishError> {
        register_schemes();
        let url = to.url_of(name);
        let failed = |e| delta_error(name, &url, e);
        // Delta's kernel takes a missing local folder for a wrong location, not a new table.
        if let Ok(folder) = url.to_file_path() {
            std::fs::create_dir_all(&folder).map_err(|source| PublishError::Folder {
                path: folder.display().to_string(),
                source,
            })?;
        }
        let builder = deltalake::DeltaTableBuilder::from_url(url.clone())
            .map_err(failed)?
            .with_storage_backend(to.store.clone(), url.clone());
        let mut delta = builder.build().map_err(failed)?;
        // A table not written yet is not loaded (Delta's kernel logs that as an error).
        let log = to.child(&format!("{name}/_delta_log"));
        let listed = to.store.list(Some(&log)).next().await.transpose();
        let has_log = listed.map_err(|e| failed(e.into()))?.is_some();
        if has_log {
            delta.load().await.map_err(failed)?;
        }
        Ok(Table {
            name: name.to_string(),
            url,
            delta,
        })
    }

    pub fn url(&self) -> String {
        self.url.to_string()
    }

    pub fn exists(&self) -> bool {
        self.delta.version().is_some()
    }

    /// Its latest Delta version (the first commit is version 0).
    pub fn version(&self) -> u64 {
        self.delta.version().unwrap_or(0)
    }

    /// The state generation it holds (0: none, or not written by arstream).
    pub async fn generation(&self) -> Result<u64, PublishError> {
        let Ok(snapshot) = self.delta.snapshot() else {
            return Ok(0);
        };
        let log = self.delta.log_store();
        let version = (snapshot.transaction_version(log.as_ref(), APP_ID).await)
            .map_err(|e| delta_error(&self.name, &self.url, e))?;
        Ok(version.map_or(0, |v| v.max(0) as u64))
    }

    /// Its rows replaced by those of `plan`, in one commit marked with `generation`.
    pub async fn replace(
        self,
        engine: &Engine,
        plan: LogicalPlan,
        generation: u64,
    ) -> Result<Table, PublishError> {
        self.write(engine, plan, generation, SaveMode::Overwrite)
            .await
    }

    /// The rows of `plan` appended, in one commit marked with `generation`.
    pub async fn append(
        self,
        engine: &Engine,
        plan: LogicalPlan,
        generation: u64,
    ) -> Result<Table, PublishError> {
        self.write(engine, plan, generation, SaveMode::Append).await
    }

    async fn write(
        self,
        engine: &Engine,
        plan: LogicalPlan,
        generation: u64,
        mode: SaveMode,
    ) -> Result<Table, PublishError> {
        let Table { name, url, delta } = self;
        let commit = CommitProperties::default()
            .with_application_transaction(Transaction::new(APP_ID, generation as i64));
        // The engine's session (its tables' rows are in its config) with Delta's planner,
        // which plans the write's own nodes.
        let session = SessionStateBuilder::new_from_existing(engine.ctx.state())
            .with_query_planner(DeltaPlanner::new())
            .build();
        let written = delta
            .write(Vec::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(session))
            .with_save_mode(mode)
            .with_table_name(name.clone())
            .with_commit_properties(commit)
            .await;
        let delta = written.map_err(|e| delta_error(&name, &url, e))?;
        Ok(Table { name, url, delta })
    }

    /// Files no version newer than `retention` reads removed: how many.
    pub async fn vacuum(self, retention: Duration) -> Result<(Table, usize), PublishError> {
        let Table { name, url, delta } = self;
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let vacuumed = delta
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .await;
        let (delta, metrics) = vacuumed.map_err(|e| delta_error(&name, &url, e))?;
        let removed = metrics.files_deleted.len();
        Ok((Table { name, url, delta }, removed))
    }
}

fn delta_error(table: &str, url: &url::Url, source: deltalake::DeltaTableError) -> PublishError {
    PublishError::Delta {
        table: table.to_string(),
        url: url.to_string(),
        source: Box::new(source),
    }
}

/// Delta's log store knows `file://` and `memory://` only; on the cloud stores arstream opens
/// (which commit with put-if-absent) the same default log store serves.
fn register_schemes() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let factories = deltalake::logstore::logstore_factories();
        for scheme in ["s3", "s3a", "gs", "az", "abfs", "abfss", "azure"] {
            let url = url::Url::parse(&format!("{scheme}://")).expect("a scheme is a URL");
            if !factories.contains_key(&url) {
                factories.insert(url, Arc::new(DefaultFactory));
            }
        }
    });
}

/// Delta's default log store, for any scheme.
struct DefaultFactory;

impl LogStoreFactory for DefaultFactory {
    fn with_options(
        &self,
        prefixed_store: deltalake::logstore::ObjectStoreRef,
        root_store: deltalake::logstore::ObjectStoreRef,
        location: &url::Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}
