//! One Delta table of the publish location, through the `deltalake` crate on arstream's own
//! object store (so every store arstream reads, it publishes to, with no cloud SDK of
//! Delta's own: see [`crate::engine::published::unloaded`]).

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use deltalake::DeltaTable;
use deltalake::delta_datafusion::planner::DeltaPlanner;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::SaveMode;
use futures::StreamExt;

use super::PublishError;
use crate::engine::Engine;
use crate::store::Location;

/// A Delta table, existing or not yet.
pub struct Table {
    name: String,
    url: url::Url,
    delta: DeltaTable,
    /// The application id its commits are marked with (with the state's generation).
    app_id: String,
    /// How long files its commits replace are kept (and its log, at least Delta's 30 days).
    retention: Duration,
}

impl Table {
    /// The table `name` under `to` (not created until written).
    pub async fn open(
        to: &Location,
        name: &str,
        app_id: &str,
        retention: Duration,
    ) -> Result<Table, PublishError> {
        let url = to.url_of(name);
        let failed = |e| delta_error(name, &url, e);
        // Delta's kernel takes a missing local folder for a wrong location, not a new table.
        if let Ok(folder) = url.to_file_path() {
            std::fs::create_dir_all(&folder).map_err(|source| PublishError::Folder {
                path: folder.display().to_string(),
                source,
            })?;
        }
        let mut delta = crate::engine::published::unloaded(to, name).map_err(failed)?;
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
            app_id: app_id.to_string(),
            retention,
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

    /// The state generation it holds, by its commits marked with the app id (none: not
    /// written yet, or by another state).
    pub async fn generation(&self) -> Result<Option<u64>, PublishError> {
        let Ok(snapshot) = self.delta.snapshot() else {
            return Ok(None);
        };
        let log = self.delta.log_store();
        let version = (snapshot
            .transaction_version(log.as_ref(), &self.app_id)
            .await)
            .map_err(|e| delta_error(&self.name, &self.url, e))?;
        Ok(version.map(|v| v.max(0) as u64))
    }

    /// Its rows replaced by those of `plan`, in one commit marked with `generation`.
    pub async fn replace(
        &mut self,
        engine: &Engine,
        plan: LogicalPlan,
        generation: u64,
    ) -> Result<(), PublishError> {
        self.write(engine, plan, generation, SaveMode::Overwrite)
            .await
    }

    /// The rows of `plan` appended, in one commit marked with `generation`.
    pub async fn append(
        &mut self,
        engine: &Engine,
        plan: LogicalPlan,
        generation: u64,
    ) -> Result<(), PublishError> {
        self.write(engine, plan, generation, SaveMode::Append).await
    }

    async fn write(
        &mut self,
        engine: &Engine,
        plan: LogicalPlan,
        generation: u64,
        mode: SaveMode,
    ) -> Result<(), PublishError> {
        let commit = CommitProperties::default()
            .with_application_transaction(Transaction::new(&self.app_id, generation as i64));
        // A new table keeps its log as long as its files (time travel needs both), and at
        // least Delta's default 30 days.
        let hours = (self.retention.as_secs() / 3600).max(30 * 24);
        let log = (
            "delta.logRetentionDuration",
            Some(format!("interval {hours} hours")),
        );
        // The engine's session (its tables' rows are in its config) with Delta's planner,
        // which plans the write's own nodes.
        let session = SessionStateBuilder::new_from_existing(engine.ctx.state())
            .with_query_planner(DeltaPlanner::new())
            .build();
        let written = (self.delta.clone())
            .write(Vec::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(session))
            .with_save_mode(mode)
            .with_table_name(self.name.clone())
            .with_commit_properties(commit)
            .with_configuration([log])
            .await;
        self.delta = written.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Files replaced (or never committed) longer ago than its retention removed: how many.
    pub async fn vacuum(&mut self) -> Result<usize, PublishError> {
        let period = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        // Full: also the files of a write that never committed (a publish killed midway).
        let vacuumed = (self.delta.clone())
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_retention_period(period)
            .with_enforce_retention_duration(false)
            .await;
        let (delta, metrics) = vacuumed.map_err(|e| self.error(e))?;
        self.delta = delta;
        Ok(metrics.files_deleted.len())
    }

    fn error(&self, source: deltalake::DeltaTableError) -> PublishError {
        delta_error(&self.name, &self.url, source)
    }
}

fn delta_error(table: &str, url: &url::Url, source: deltalake::DeltaTableError) -> PublishError {
    PublishError::Delta {
        table: table.to_string(),
        url: url.to_string(),
        source: Box::new(source),
    }
}
