//! Outputs other tools read: plain Parquet under an output URL, with stable column names.
//!
//! A dated output is a file per as-of date, `<out>/<name>/YYYY-MM-DD.parquet`, each with its
//! `as_of` column, so the folder `<out>/kpi_summary` is the KPI history, one row per as-of
//! date, read whole by DuckDB, Polars, pandas/pyarrow and Spark with their defaults. (Hive
//! folders, `as_of=YYYY-MM-DD/`, would make `as_of` both a column of the files and a
//! partition: pandas and pyarrow refuse to merge the two.) A refresh
//! replaces the partition of its date with one object written by one PUT (on a local folder
//! object_store writes a temporary file and renames it), so a reader sees the old result or
//! the new one, never a mix or a half-written file; partitions of other dates are not touched.
//! A latest-only output (`<out>/<name>/latest.parquet`) is replaced the same way.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;

use super::spec::{Keep, Source, Step};
use crate::engine::EngineError;
use crate::parquet_io::{self, WriteError};
use crate::service::Snapshot;
use crate::store::Location;

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output '{name}': {source}")]
    Query { name: String, source: EngineError },
    #[error("output '{name}': cannot open its sink: {detail}")]
    Sink { name: String, detail: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The standard outputs of a refresh: the KPI summary per as-of date, and the latest aging
/// and open items.
pub const STANDARD: &[(&str, Keep)] = &[
    ("kpi_summary", Keep::PerAsOf),
    ("aging", Keep::Latest),
    ("open_items", Keep::Latest),
];

/// The object an output of `as_of` is written to, relative to the output URL.
pub fn object_path(name: &str, keep: Keep, as_of: NaiveDate) -> String {
    match keep {
        Keep::PerAsOf => format!("{name}/{as_of}.parquet"),
        Keep::Latest => format!("{name}/latest.parquet"),
    }
}

/// Replace one output with `batches`; returns the path written.
pub async fn write(
    out: &Location,
    name: &str,
    keep: Keep,
    as_of: NaiveDate,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<String, OutputError> {
    let relative = object_path(name, keep, as_of);
    parquet_io::put(out.store.as_ref(), &out.child(&relative), schema, batches).await?;
    Ok(relative)
}

/// The standard steps: what `run` writes when no pipeline says otherwise.
pub fn standard_steps() -> Vec<Step> {
    STANDARD
        .iter()
        .map(|(name, keep)| Step {
            name: name.to_string(),
            source: Source::View(name.to_string()),
            keep: *keep,
            to: None,
            every: None,
            line: 0,
        })
        .collect()
}

/// Run every step over `snapshot` and write its output (as of the snapshot's date) under
/// `out`, or under the step's own sink; the steps run at the same time. Returns the paths
/// written.
///
/// A step with `every` (a big extract, written in the background) runs on one thread, so
/// that the refresh path keeps the others; a query the refresh already ran (the KPI summary)
/// is not run again.
pub async fn write_steps(
    snapshot: &Snapshot,
    steps: &[Step],
    out: &Location,
) -> Result<Vec<String>, OutputError> {
    let as_of = snapshot.params.as_of;
    let writes = steps.iter().map(|step| async move {
        let threads = step.every.map(|_| 1);
        let (schema, batches) =
            (snapshot.query(&step.query(), threads).await).map_err(|source| {
                OutputError::Query {
                    name: step.name.clone(),
                    source,
                }
            })?;
        let sink = match &step.to {
            Some(url) => crate::store::open(url, true).map_err(|e| OutputError::Sink {
                name: step.name.clone(),
                detail: e.to_string(),
            })?,
            None => out.clone(),
        };
        write(&sink, &step.name, step.keep, as_of, &schema, &batches).await
    });
    futures::future::try_join_all(writes).await
}
