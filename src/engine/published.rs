//! The state as `arstream publish` wrote it (Delta Lake tables, see [`crate::publish`]), read
//! back at its latest version or as it was at a time: what a query "as known" at that time,
//! or a query on a cluster, runs on. Each table is read at its latest version committed at or
//! before the time (Delta's time travel), so figures reported then come out the same whatever
//! arrived later.
//!
//! A version is served as the Parquet files it consists of (a `ListingTable` over exactly
//! those files, with the table's schema): arstream writes its tables with plain adds and
//! removes (no deletion vectors, no column mapping, no partitions), so the files are the whole
//! table, and a plan over them is one every DataFusion (a Ballista scheduler and its
//! executors too) can serialize and run.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use deltalake::DeltaTable;
use deltalake::logstore::{LogStore, LogStoreFactory, StorageConfig, default_logstore};
use futures::StreamExt;
use object_store::ObjectStoreExt;

use super::EngineError;
use crate::feed::contract::Entity;
use crate::store::Location;

/// The Delta table of the closed periods' KPI summaries (see `crate::publish::closed`).
pub const CLOSED_PERIODS: &str = "closed_periods";

/// Every published table under `to` (each entity's and each `<entity>_changes`, and
/// `closed_periods` once a period was closed), by name: as it was at `at`, or at its latest
/// version.
pub async fn tables_as_known(
    to: &Location,
    at: Option<DateTime<Utc>>,
) -> Result<Vec<(String, Arc<dyn TableProvider>)>, EngineError> {
    let mut tables = Vec::new();
    for entity in Entity::ALL {
        for name in [
            entity.name().to_string(),
            format!("{}_changes", entity.name()),
        ] {
            let Some(table) = table_as_known(to, &name, at).await? else {
                return Err(EngineError::Published {
                    url: to.url_of(&name).to_string(),
                    table: name,
                    detail: format!(
                        "nothing of it was published at or before {}",
                        at.unwrap_or_default()
                    ),
                });
            };
            tables.push((name, table));
        }
    }
    let closed = to.child(&format!("{CLOSED_PERIODS}/_delta_log"));
    let listed = to.store.list(Some(&closed)).next().await;
    if listed.is_some()
        && let Some(table) = table_as_known(to, CLOSED_PERIODS, at).await?
    {
        tables.push((CLOSED_PERIODS.to_string(), table));
    }
    Ok(tables)
}

/// The published table `name` at its latest version committed at or before `at` (or its
/// latest), or `None` when its first commit came after `at`.
async fn table_as_known(
    to: &Location,
    name: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Option<Arc<dyn TableProvider>>, EngineError> {
    let failed = |detail: String| EngineError::Published {
        table: name.to_string(),
        url: to.url_of(name).to_string(),
        detail,
    };
    let mut table = unloaded(to, name).map_err(|e| failed(e.to_string()))?;
    match at {
        Some(at) => {
            (table.load_with_datetime(at).await).map_err(|e| failed(e.to_string()))?;
            // Time travel to before the first commit gives the first version: that table
            // was not known yet. (A version's time is its commit file's, as Delta's own.)
            let version = table.version().unwrap_or(0);
            let commit = to.child(&format!("{name}/_delta_log/{version:020}.json"));
            let head = to
                .store
                .head(&commit)
                .await
                .map_err(|e| failed(e.to_string()))?;
            if head.last_modified > at {
                return Ok(None);
            }
        }
        None => (table.load().await).map_err(|e| failed(e.to_string()))?,
    }
    files_of(&table)
        .map(Some)
        .map_err(|e| failed(e.to_string()))
}

/// The loaded version of `table` as a table over its Parquet files (an empty one when it has
/// none).
fn files_of(table: &DeltaTable) -> Result<Arc<dyn TableProvider>, EngineError> {
    let schema = (table.snapshot())
        .map_err(|e| EngineError::Queries(e.to_string()))?
        .snapshot()
        .arrow_schema();
    let files = (table.get_file_uris())
        .map_err(|e| EngineError::Queries(e.to_string()))?
        .map(|uri| ListingTableUrl::parse(&uri))
        .collect::<Result<Vec<_>, _>>()?;
    if files.is_empty() {
        return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
    }
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(files)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The Delta table `name` under `to`, through arstream's own object store, not loaded yet.
pub fn unloaded(to: &Location, name: &str) -> deltalake::DeltaResult<DeltaTable> {
    register_schemes();
    let url = to.url_of(name);
    deltalake::DeltaTableBuilder::from_url(url.clone())?
        .with_storage_backend(to.store.clone(), url)
        .build()
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
