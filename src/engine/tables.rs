//! Registering the state's tables with DataFusion.
//!
//! Current state is served from memory (`MemTable` over the state's segments, split into as
//! many partitions as the session runs in parallel, filtered by their `_live` mask). The
//! `<entity>_changes` tables read the applied feed files themselves (the feed is the log), so
//! their history costs no memory.
//!
//! Every data table is registered in the session's catalog as a [`SnapshotTable`] that holds
//! no rows: a scan takes them from the [`SnapshotData`] in the config of the session that
//! scans. So the views made over the tables (their SQL planned once) serve every refresh of a
//! service: a refresh makes a new session that shares the catalog and carries its own rows,
//! and a snapshot published earlier keeps reading its own.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::ObjectStoreExt;

use super::EngineError;
use crate::feed::Sources;
use crate::feed::contract::Entity;
use crate::state::State;
use crate::state::table::LIVE;

/// The rows of one engine's data tables, by table name, carried in its session's config.
#[derive(Debug, Default)]
pub struct SnapshotData {
    tables: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl SnapshotData {
    /// The rows of table `name`, if this engine has any.
    pub fn get(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.get(name).cloned()
    }

    /// Another set holding the same tables (shared, not copied).
    pub fn copy(&self) -> SnapshotData {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        SnapshotData {
            tables: RwLock::new(tables.clone()),
        }
    }

    fn put(&self, name: &str, table: Arc<dyn TableProvider>) {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        tables.insert(name.to_string(), table);
    }
}

/// A data table of the catalog: its schema, and its rows from the scanning session's
/// [`SnapshotData`].
#[derive(Debug)]
pub struct SnapshotTable {
    name: String,
    schema: SchemaRef,
}

impl SnapshotTable {
    /// The table's name, whose rows a scan takes.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait::async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters are offered to the rows' own table (the change tables prune feed files with
    /// them) and applied again after the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let rows = (state.config().get_extension::<SnapshotData>())
            .and_then(|data| data.get(&self.name))
            .ok_or_else(|| {
                DataFusionError::Plan(format!("table '{}' has no rows in this session", self.name))
            })?;
        rows.scan(state, projection, filters, limit).await
    }
}

/// What an engine's catalog holds, and whether it may change it.
#[derive(Debug, Default, Clone)]
pub struct Shape {
    /// The data tables registered, with their schemas.
    pub tables: HashMap<String, SchemaRef>,
    /// The views created (name and SQL), in order.
    pub views: Option<Vec<super::views::ViewFile>>,
    /// Whether no view reads the clock.
    pub timeless: bool,
}

/// Whether SQL may call a function the optimizer evaluates once, to the time it plans.
fn reads_clock(sql: &str) -> bool {
    let sql = sql.to_ascii_lowercase();
    [
        "now(",
        "current_date",
        "current_time",
        "today(",
        "to_timestamp_now",
    ]
    .iter()
    .any(|f| sql.contains(f))
}

/// An engine's tables: its rows, and the shape of the catalog it registers them in. A catalog
/// made by an earlier engine (`shared`) is never changed: a refresh that needs another shape
/// (a table that grew a column, other views) fails with [`EngineError::Reshaped`], and a
/// fresh engine is made instead.
#[derive(Debug, Default)]
pub struct Catalog {
    pub data: Arc<SnapshotData>,
    shape: std::sync::Mutex<Shape>,
    pub shared: std::sync::atomic::AtomicBool,
    /// Optimized plans by their SQL, for the engines sharing this catalog; emptied whenever
    /// a table or view is made again.
    pub plans: Plans,
}

/// See [`Catalog::plans`].
pub type Plans = Arc<std::sync::Mutex<HashMap<String, datafusion::logical_expr::LogicalPlan>>>;

impl Catalog {
    /// The catalog of an engine following another: `shape` as that one made it, never changed.
    pub fn following(data: Arc<SnapshotData>, shape: Shape, plans: Plans) -> Catalog {
        Catalog {
            data,
            shape: std::sync::Mutex::new(shape),
            shared: std::sync::atomic::AtomicBool::new(true),
            plans,
        }
    }

    fn plans(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, datafusion::logical_expr::LogicalPlan>> {
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The optimized plan kept for `sql`, if any.
    pub fn plan(&self, sql: &str) -> Option<datafusion::logical_expr::LogicalPlan> {
        self.plans().get(sql).cloned()
    }

    /// Keep `plan` for `sql`, unless the query or a view reads the clock (`now()`,
    /// `current_date`: the optimizer turns them into the time it ran).
    pub fn keep_plan(&self, sql: &str, plan: &datafusion::logical_expr::LogicalPlan) {
        let timeless = self.shape().timeless && !reads_clock(sql);
        if timeless {
            self.plans().insert(sql.to_string(), plan.clone());
        }
    }

    /// Record the views created (the plans kept are made for the ones before).
    pub fn set_views(&self, views: &[super::views::ViewFile]) {
        let mut shape = self.shape();
        shape.timeless = !views.iter().any(|v| reads_clock(&v.sql));
        shape.views = Some(views.to_vec());
        drop(shape);
        self.plans().clear();
    }

    pub fn shape(&self) -> std::sync::MutexGuard<'_, Shape> {
        self.shape.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Serve `rows` as table `name`. Returns whether the catalog got a new table of that
    /// name (the views over it must be made again).
    pub fn put(
        &self,
        ctx: &SessionContext,
        name: &str,
        rows: Arc<dyn TableProvider>,
    ) -> Result<bool, EngineError> {
        let schema = rows.schema();
        self.data.put(name, rows);
        let mut shape = self.shape();
        if shape.tables.get(name) == Some(&schema) {
            return Ok(false);
        }
        if self.is_shared() {
            return Err(EngineError::Reshaped(format!(
                "table '{name}' changed its columns"
            )));
        }
        let table = SnapshotTable {
            name: name.to_string(),
            schema: schema.clone(),
        };
        replace_table(ctx, name, Arc::new(table))?;
        shape.tables.insert(name.to_string(), schema);
        drop(shape);
        self.plans().clear();
        Ok(true)
    }
}

/// Register every entity's current-state table and change table; the files these read.
///
/// The state's segments are served as they are, with a `_live` mask, under
/// `__<entity>_rows`; the entity's table is a view keeping the live rows. So a refresh costs
/// a bit per row whatever changed, and a query pays for filtering only the tables it reads.
pub async fn register(
    ctx: &SessionContext,
    catalog: &Catalog,
    state: &State,
) -> Result<ChangeLog, EngineError> {
    let partitions = ctx.copied_config().target_partitions().max(1);
    // The change tables read the feeds' files through these stores.
    if let Some(sources) = state.sources() {
        for feed in std::iter::once(&sources.feed).chain(&sources.actions) {
            ctx.register_object_store(&feed.root_url(), feed.store.clone());
        }
    }
    let log = ChangeLog::of(state);
    for entity in Entity::ALL {
        let table = state.table(entity);
        let rows = format!("__{}_rows", entity.name());
        let batches = split(table.segments_with_live(), partitions);
        let mem = MemTable::try_new(table.live_schema(), batches)?;
        let new = catalog.put(ctx, &rows, Arc::new(mem))?;
        register_changes(ctx, catalog, &log, entity, partitions)?;
        if !new && ctx.table_exist(entity.name())? {
            continue;
        }
        let columns: Vec<String> = table
            .table_schema()
            .fields()
            .iter()
            .map(|f| format!("\"{}\"", f.name()))
            .collect();
        ctx.deregister_table(entity.name())?;
        let view = format!(
            "CREATE VIEW {} AS SELECT {} FROM {rows} WHERE {LIVE}",
            entity.name(),
            columns.join(", ")
        );
        ctx.sql(&view).await?.collect().await?;
    }
    register_action_rows(ctx, catalog, state)?;
    Ok(log)
}

/// The columns of `action_rows`: every row of the actions feed applied, whatever its entity
/// (`queries/actions_log.sql` reads them).
fn action_rows_schema() -> SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("_seq", DataType::Int64, true),
        Field::new("_ts", utc, true),
        text("action"),
        text("activity_id"),
        text("promise_id"),
        text("dispute_id"),
        text("customer_id"),
        text("invoice_id"),
        text("channel"),
        text("outcome"),
        Field::new("amount", DataType::Decimal128(18, 2), true),
        text("currency"),
        Field::new("promised_date", DataType::Date32, true),
        Field::new("hold_until", DataType::Date32, true),
        text("reason"),
        text("status"),
        text("team"),
        text("note"),
        text("recorded_by"),
        text("recorded_via"),
    ]))
}

/// `action_rows` with no rows (a state read from its published tables, which leave it out).
pub fn register_no_actions(ctx: &SessionContext, catalog: &Catalog) -> Result<(), EngineError> {
    let empty = MemTable::try_new(action_rows_schema(), vec![vec![]])?;
    catalog.put(ctx, "action_rows", Arc::new(empty))?;
    Ok(())
}

/// `action_rows`: the applied files of the actions feed, read as they were written (a file
/// is never changed, so this log is never rewritten).
fn register_action_rows(
    ctx: &SessionContext,
    catalog: &Catalog,
    state: &State,
) -> Result<(), EngineError> {
    let schema = action_rows_schema();
    let urls = match state.sources() {
        Some(sources) => (state.checkpoint().applied.iter())
            .filter(|a| crate::feed::sources::is_action(&a.path))
            .map(|a| ListingTableUrl::try_new(sources.url_of(&a.path), None))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let table: Arc<dyn TableProvider> = if urls.is_empty() {
        Arc::new(MemTable::try_new(schema, vec![vec![]])?)
    } else {
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        Arc::new(ListingTable::try_new(config)?)
    };
    catalog.put(ctx, "action_rows", table)?;
    Ok(())
}

/// Register the ledger's tables (`ledger_open`, `ledger_sales`, …), each one partition: they
/// are small.
pub fn register_ledger(
    ctx: &SessionContext,
    catalog: &Catalog,
    ledger: Vec<(&'static str, RecordBatch)>,
) -> Result<(), EngineError> {
    for (name, batch) in ledger {
        let mem = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        catalog.put(ctx, name, Arc::new(mem))?;
    }
    Ok(())
}

fn register_changes(
    ctx: &SessionContext,
    catalog: &Catalog,
    log: &ChangeLog,
    entity: Entity,
    partitions: usize,
) -> Result<(), EngineError> {
    let table = log.table(entity, 0, partitions)?;
    catalog.put(ctx, &format!("{}_changes", entity.name()), table)?;
    Ok(())
}

/// The feed files a state applied (checkpointed), and how to read them as contract changes:
/// what the `<entity>_changes` tables are made of. Kept by the engine so that the changes of
/// the files applied after a generation can be read alone (what a publish appends).
#[derive(Debug, Clone)]
pub struct ChangeLog {
    sources: Option<Sources>,
    native: bool,
    /// Entity, path and generation of each applied file, in the order applied.
    files: Vec<(String, String, u64)>,
    schemas: HashMap<Entity, SchemaRef>,
    /// The state's identity (see [`crate::state::Checkpoint::state_id`]) and checkpoint
    /// generation.
    pub state_id: Option<String>,
    pub generation: u64,
}

impl ChangeLog {
    pub fn of(state: &State) -> ChangeLog {
        ChangeLog {
            sources: state.sources().cloned(),
            native: state.reader().is_native(),
            files: (state.checkpoint().applied.iter())
                .map(|a| (a.entity.clone(), a.path.clone(), a.generation))
                .collect(),
            schemas: (Entity::ALL.into_iter())
                .map(|e| (e, state.table(e).change_schema()))
                .collect(),
            state_id: state.checkpoint().state_id.clone(),
            generation: state.checkpoint().generation,
        }
    }

    /// The files of `entity` applied by checkpoints after `generation` (0: all of them).
    pub fn files_after(&self, entity: Entity, generation: u64) -> Vec<String> {
        (self.files.iter())
            .filter(|(e, _, g)| e == entity.name() && *g > generation)
            .map(|(_, path, _)| path.clone())
            .collect()
    }

    /// The change rows of `entity` of the files applied after `generation`, as a table.
    pub fn table(
        &self,
        entity: Entity,
        generation: u64,
        partitions: usize,
    ) -> Result<Arc<dyn TableProvider>, EngineError> {
        let schema = self.schemas[&entity].clone();
        let files = self.files_after(entity, generation);
        let sources = match &self.sources {
            Some(sources) if !files.is_empty() => sources,
            _ => return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?)),
        };
        if !self.native {
            // Files in another layout are read as the contract by the feed's reader.
            let table = translated_changes(sources, entity, schema, files, partitions)?;
            return Ok(Arc::new(table));
        }
        let urls = (files.iter())
            .map(|path| ListingTableUrl::try_new(sources.url_of(path), None))
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

/// `<entity>_changes` of a feed in another layout than the contract's: its applied files,
/// read, translated and validated as when they were applied, when a query scans them.
fn translated_changes(
    sources: &Sources,
    entity: Entity,
    schema: SchemaRef,
    files: Vec<String>,
    partitions: usize,
) -> Result<StreamingTable, EngineError> {
    let mut groups: Vec<Vec<String>> = vec![Vec::new(); partitions.max(1)];
    for (i, file) in files.into_iter().enumerate() {
        groups[i % partitions.max(1)].push(file);
    }
    let streams: Vec<Arc<dyn PartitionStream>> = groups
        .into_iter()
        .map(|files| {
            Arc::new(ChangeFiles {
                sources: sources.clone(),
                entity,
                schema: schema.clone(),
                files,
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    Ok(StreamingTable::try_new(schema, streams)?)
}

/// Some applied files of one entity, read as contract changes.
#[derive(Debug)]
struct ChangeFiles {
    sources: Sources,
    entity: Entity,
    schema: SchemaRef,
    files: Vec<String>,
}

impl PartitionStream for ChangeFiles {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(
        &self,
        _ctx: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::execution::SendableRecordBatchStream {
        let (sources, entity) = (self.sources.clone(), self.entity);
        let columns = self.schema.fields().len();
        let batches = futures::stream::iter(self.files.clone()).then(move |file| {
            let placed = sources.place(&file);
            let (store, path) = (placed.location.store.clone(), sources.path_of(&file));
            let reader = placed.reader.clone();
            let table = (reader.locate(placed.relative)).map_or_else(String::new, |l| l.table);
            async move {
                let failed = |e: String| DataFusionError::Execution(format!("{file}: {e}"));
                let bytes = (store.get(&path).await)
                    .map_err(|e| failed(e.to_string()))?
                    .bytes()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let batch = tokio::task::spawn_blocking(move || {
                    crate::feed::validate_file(&reader, Some(entity), &table, &file, bytes)
                })
                .await
                .map_err(|e| DataFusionError::Execution(e.to_string()))?
                .map_err(|v| DataFusionError::Execution(v.to_string()))?;
                Ok(batch.project(&(0..columns).collect::<Vec<_>>())?)
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// Register a table under `name`, replacing any table of that name.
pub fn replace_table(
    ctx: &SessionContext,
    name: &str,
    table: Arc<dyn datafusion::catalog::TableProvider>,
) -> Result<(), EngineError> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, table)?;
    Ok(())
}

/// Deal batches round-robin into `n` partitions, so that scans run in parallel.
fn split(batches: Vec<RecordBatch>, n: usize) -> Vec<Vec<RecordBatch>> {
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % n].push(b);
    }
    parts
}
