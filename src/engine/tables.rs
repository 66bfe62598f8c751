//! Registering the state's tables with DataFusion.
//!
//! Current state is served from memory (`MemTable` over the state's segments, split into as
//! many partitions as the session runs in parallel, filtered by their `_live` mask). The `<entity>_changes` tables read the applied
//! feed files themselves (the feed is the log), so their history costs no memory.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use super::EngineError;
use crate::feed::contract::Entity;
use crate::state::State;
use crate::state::ledger::Ledger;
use crate::state::table::LIVE;

/// Register every entity's current-state table and change table.
///
/// The state's segments are served as they are, with a `_live` mask, under
/// `__<entity>_rows`; the entity's table is a view keeping the live rows. So a refresh costs
/// a bit per row whatever changed, and a query pays for filtering only the tables it reads.
pub async fn register(ctx: &SessionContext, state: &State) -> Result<(), EngineError> {
    let partitions = ctx.copied_config().target_partitions().max(1);
    // The change tables read the feed's files through this store.
    if let Some(feed) = state.feed() {
        ctx.register_object_store(&feed.root_url(), feed.store.clone());
    }
    for entity in Entity::ALL {
        let table = state.table(entity);
        let rows = format!("__{}_rows", entity.name());
        let batches = split(table.segments_with_live(), partitions);
        let mem = MemTable::try_new(table.live_schema(), batches)?;
        replace_table(ctx, &rows, Arc::new(mem))?;
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
        register_changes(ctx, state, entity)?;
    }
    Ok(())
}

/// Register the ledger's tables (`ledger_open`, `ledger_sales`, …), each one partition: they
/// are small.
pub fn register_ledger(ctx: &SessionContext, ledger: &Ledger) -> Result<(), EngineError> {
    for (name, batch) in ledger.tables() {
        let mem = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        replace_table(ctx, name, Arc::new(mem))?;
    }
    Ok(())
}

fn register_changes(
    ctx: &SessionContext,
    state: &State,
    entity: Entity,
) -> Result<(), EngineError> {
    let name = format!("{}_changes", entity.name());
    let schema = state.table(entity).change_schema();
    let urls = match state.feed() {
        Some(feed) => state
            .checkpoint()
            .applied
            .iter()
            .filter(|a| a.entity == entity.name())
            .map(|a| ListingTableUrl::try_new(feed.url_of(&a.path), None))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if urls.is_empty() {
        let empty = MemTable::try_new(schema, vec![vec![]])?;
        return replace_table(ctx, &name, Arc::new(empty));
    }
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    replace_table(ctx, &name, Arc::new(ListingTable::try_new(config)?))
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
