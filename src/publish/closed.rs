//! Closed periods: a month's KPI summary as known when it was closed, kept beside the
//! published tables in the Delta table `closed_periods` (one row per period), so that the
//! figures a controller reported stay what they were whatever back-dated changes restate
//! later. Closing a period is one Delta commit marked with the application transaction
//! `arstream:close:<period>`: a period is closed once, and a second close is refused.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use super::PublishError;
use super::delta::Table;
use crate::engine::Engine;
use crate::store::Location;

/// The Delta table of the closed periods, beside the published tables.
pub use crate::engine::published::CLOSED_PERIODS as TABLE;

/// A month (`YYYY-MM`) to close: its name and its last day (the KPI as-of date).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl Period {
    /// The month `text` (`YYYY-MM`).
    pub fn parse(text: &str) -> Result<Period, String> {
        let first = NaiveDate::parse_from_str(&format!("{}-01", text.trim()), "%Y-%m-%d")
            .map_err(|_| format!("'{text}' is not a month: give YYYY-MM (2026-11)"))?;
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .ok_or_else(|| format!("'{text}' is too far in the future"))?;
        Ok(Period {
            first,
            last: next.pred_opt().expect("a month has a last day"),
        })
    }

    pub fn name(&self) -> String {
        self.first.format("%Y-%m").to_string()
    }
}

/// Keep `engine`'s KPI summary (its parameters at the period's last day, its tables as known
/// at `known_at`) as the figures of `period`, under `to`: the row kept. Refused when the period
/// was closed already.
pub async fn close(
    engine: &Engine,
    to: &Location,
    period: Period,
    known_at: DateTime<Utc>,
    retention: Duration,
) -> Result<Vec<arrow::array::RecordBatch>, PublishError> {
    let app_id = format!("arstream:close:{}", period.name());
    let mut table = Table::open(to, TABLE, &app_id, retention).await?;
    if table.generation().await?.is_some() {
        return Err(PublishError::Closed {
            period: period.name(),
            url: table.url(),
        });
    }
    let failed = |source| PublishError::Engine {
        table: TABLE.to_string(),
        source,
    };
    // Times in UTC to the microsecond, as Delta's `timestamp` holds them (a time without a
    // zone would need the `timestampNtz` feature, which not every reader has).
    let utc = |sql: &str| format!("arrow_cast({sql}, 'Timestamp(Microsecond, Some(\"UTC\"))')");
    let known = format!(
        "CAST('{}' AS TIMESTAMP)",
        known_at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f")
    );
    let sql = format!(
        "SELECT '{}' AS period, {} AS known_at, {} AS closed_at, * FROM kpi_summary",
        period.name(),
        utc(&known),
        utc("now()"),
    );
    // Computed once: the rows committed are the rows returned.
    let rows = (engine.query(&sql).await).map_err(failed)?;
    let read = engine.ctx.read_batches(rows.clone());
    let plan = read.map_err(|e| failed(e.into()))?.into_unoptimized_plan();
    table.append(engine, plan, 1).await?;
    Ok(rows)
}
