//! The KPI history: `kpi_summary` at a series of as-of dates, one row each, from one engine
//! (the ledger answers any as-of date, so a history costs a query per date).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{Datelike, Months, NaiveDate};

use crate::engine::params::KpiParams;
use crate::engine::{Engine, EngineError};

/// The step between the as-of dates of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    Day,
    Week,
    Month,
}

/// The as-of dates of a history: every day, every 7 days, or the same day of every month
/// (clamped to the month's end: from the 31st, the last day of each month).
pub fn dates(from: NaiveDate, to: NaiveDate, every: Every) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut n = 0u32;
    loop {
        let d = match every {
            Every::Day => from + chrono::Days::new(n as u64),
            Every::Week => from + chrono::Days::new(7 * n as u64),
            Every::Month => {
                let month = from.with_day(1).unwrap_or(from) + Months::new(n);
                let last = (month + Months::new(1)).pred_opt().unwrap_or(month).day();
                month.with_day(from.day().min(last)).unwrap_or(month)
            }
        };
        if d > to {
            break;
        }
        out.push(d);
        n += 1;
    }
    out
}

/// `kpi_summary` at every date of `dates(from, to, every)`, with `params` otherwise; `None`
/// when there is no such date. The engine is left at the last date.
pub async fn kpi_history(
    engine: &Engine,
    mut params: KpiParams,
    from: NaiveDate,
    to: NaiveDate,
    every: Every,
) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>, EngineError> {
    if from > to {
        return Err(EngineError::Params(format!(
            "--from {from} is after --to {to}"
        )));
    }
    let mut batches = Vec::new();
    let mut schema = None;
    for day in dates(from, to, every) {
        params.as_of = day;
        engine.set_params(&params).await?;
        let (s, rows) = engine
            .query_with_schema("SELECT * FROM kpi_summary")
            .await?;
        schema.get_or_insert(s);
        batches.extend(rows);
    }
    Ok(schema.map(|s| (s, batches)))
}
