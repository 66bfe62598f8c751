//! The summary views (`engine::views::SUMMARIES`: the KPI summary, the worklist, … one row
//! per customer or fewer) served from rows each snapshot computes once, on the first query
//! that reads one, and keeps for every later query: many clients asking for the worklist's
//! top 100 sort a hundred thousand kept rows, not ten million invoices each.
//!
//! They replace the views in a copy of the snapshot's catalog, so only the wire sees them;
//! the engine and the other consumers keep the plain views.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, Session, TableProvider,
};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::service::Snapshot;

/// The names of the summary views clients read, so that the next snapshot computes them
/// before they are asked for (see [`warm`]).
pub type Read = Arc<Mutex<std::collections::BTreeSet<String>>>;

/// A copy of `catalogs` (the tables themselves shared) in which each summary view of
/// `snapshot` reads the rows the snapshot keeps for it.
pub async fn catalog_copy(
    catalogs: &Arc<dyn CatalogProviderList>,
    snapshot: &Arc<Snapshot>,
    read: &Read,
) -> Result<Arc<dyn CatalogProviderList>> {
    let copy = MemoryCatalogProviderList::new();
    for catalog_name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&catalog_name) else {
            continue;
        };
        let catalog_copy = MemoryCatalogProvider::new();
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let schema_copy = MemorySchemaProvider::new();
            for name in schema.table_names() {
                let Some(table) = schema.table(&name).await? else {
                    continue;
                };
                let kept = crate::engine::views::SUMMARIES.contains(&name.as_str())
                    && table.table_type() == TableType::View;
                let table: Arc<dyn TableProvider> = match kept {
                    true => Arc::new(KeptView {
                        name: name.clone(),
                        schema: table.schema(),
                        snapshot: snapshot.clone(),
                        read: read.clone(),
                    }),
                    false => table,
                };
                schema_copy.register_table(name, table)?;
            }
            catalog_copy.register_schema(&schema_name, Arc::new(schema_copy))?;
        }
        copy.register_catalog(catalog_name, Arc::new(catalog_copy));
    }
    Ok(Arc::new(copy))
}

/// Compute on `snapshot` the summary views clients read on an earlier one.
pub async fn warm(snapshot: &Snapshot, read: &Read) {
    let names: Vec<String> = read
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    for name in names {
        if let Err(e) = snapshot.view_rows(&name).await {
            tracing::warn!(view = %name, "the view could not be computed ahead of its readers: {e}");
        }
    }
}

/// A summary view, answered from the rows its snapshot keeps for it.
struct KeptView {
    name: String,
    schema: SchemaRef,
    snapshot: Arc<Snapshot>,
    read: Read,
}

impl std::fmt::Debug for KeptView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeptView({})", self.name)
    }
}

#[async_trait]
impl TableProvider for KeptView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        (self.read.lock().unwrap_or_else(|e| e.into_inner())).insert(self.name.clone());
        let (_, batches) = (self.snapshot.view_rows(&self.name).await)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let rows = MemTable::try_new(self.schema.clone(), vec![batches])?;
        rows.scan(state, projection, filters, limit).await
    }
}
