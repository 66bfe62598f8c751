//! Registering the state's tables with DataFusion.
//!
//! Current state is served from memory (`MemTable` over the state's batches, split into as many
//! partitions as the session runs in parallel). The `<entity>_changes` tables read the applied
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
use crate::ledger::Ledger;
use crate::state::State;

/// Register every entity's current-state table and change table.
pub fn register(ctx: &SessionContext, state: &mut State) -> Result<(), EngineError> {
    let partitions = ctx.copied_config().target_partitions().max(1);
    // The change tables read the feed's files through this store.
    if let Some(feed) = state.feed() {
        ctx.register_object_store(&feed.root_url(), feed.store.clone());
    }
    for entity in Entity::ALL {
        let table = state.table_mut(entity);
        let schema = table.table_schema();
        let batches = table.current_batches();
        let mem = MemTable::try_new(schema, split(batches, partitions))?;
        replace_table(ctx, entity.name(), Arc::new(mem))?;
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
            .map(|a| ListingTableUrl::parse(feed.url_of(&a.path)))
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
