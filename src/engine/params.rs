//! The KPI parameters as SQL tables: `params` (one row) and `aging_buckets`.
//!
//! Views read the as-of date, window, reporting currency and promise grace days from `params`
//! instead of having them spliced into their text, so that every view stays plain SQL an
//! analyst can copy, and so that an analyst's own query can use the same values.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::EngineError;
use super::tables::Catalog;
use crate::dates::days;

/// The parameters every KPI view depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiParams {
    pub as_of: NaiveDate,
    pub window_days: i32,
    /// ISO 4217 code of the reporting currency.
    pub currency: String,
    /// The currency the feed's FX rates are quoted in; other reporting currencies convert
    /// through cross rates.
    pub rates_currency: String,
    /// Days after the promised date that a payment still keeps a promise.
    pub grace_days: i32,
    /// Upper edges (days past due) of the past-due buckets: [30, 60, 90, 120] gives
    /// `current`, `1-30`, `31-60`, `61-90`, `91-120`, `121+`.
    pub bucket_edges: Vec<i32>,
}

impl KpiParams {
    pub fn new(as_of: NaiveDate) -> Self {
        KpiParams {
            as_of,
            window_days: 90,
            currency: "USD".into(),
            rates_currency: "USD".into(),
            grace_days: 3,
            bucket_edges: vec![30, 60, 90, 120],
        }
    }

    /// The bucket names and day ranges, in order: (name, min, max).
    pub fn buckets(&self) -> Vec<(String, i64, Option<i64>)> {
        let mut out = vec![("current".to_string(), i64::MIN / 2, Some(0))];
        let mut low = 1i64;
        for &edge in &self.bucket_edges {
            out.push((format!("{low}-{edge}"), low, Some(edge as i64)));
            low = edge as i64 + 1;
        }
        out.push((format!("{low}+"), low, None));
        out
    }

    /// Check the values make sense before they reach SQL.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=36_500).contains(&self.window_days) {
            return Err(format!(
                "the window must be 1 to 36,500 days, not {}",
                self.window_days
            ));
        }
        let as_of = days(self.as_of);
        let earliest = crate::feed::contract::DATE_MIN_DAYS + self.window_days;
        if !(earliest..=crate::feed::contract::DATE_MAX_DAYS).contains(&as_of) {
            return Err(format!(
                "as-of date {} is out of range: the feed's dates lie between 1900-01-01 and 2199-12-31, and the window of {} days must fit after 1900-01-01",
                self.as_of, self.window_days
            ));
        }
        for (what, ccy) in [
            ("reporting currency", &self.currency),
            ("rates currency", &self.rates_currency),
        ] {
            if ccy.len() != 3 || !ccy.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "{what} '{ccy}' is not an ISO 4217 code (three capital letters)"
                ));
            }
        }
        if self.bucket_edges.is_empty()
            || self.bucket_edges.windows(2).any(|w| w[0] >= w[1])
            || self.bucket_edges[0] < 1
        {
            return Err(format!(
                "aging bucket edges must be increasing positive days, not {:?}",
                self.bucket_edges
            ));
        }
        Ok(())
    }
}

/// Register (or replace) `params` and `aging_buckets`.
pub fn register(ctx: &SessionContext, catalog: &Catalog, p: &KpiParams) -> Result<(), EngineError> {
    let as_of = days(p.as_of);
    let schema = Arc::new(Schema::new(vec![
        Field::new("as_of", DataType::Date32, false),
        Field::new("window_days", DataType::Int32, false),
        Field::new("window_start", DataType::Date32, false),
        Field::new("currency", DataType::Utf8, false),
        Field::new("rates_currency", DataType::Utf8, false),
        Field::new("grace_days", DataType::Int32, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![as_of])),
        Arc::new(Int32Array::from(vec![p.window_days])),
        Arc::new(Date32Array::from(vec![as_of - p.window_days])),
        Arc::new(StringArray::from(vec![p.currency.as_str()])),
        Arc::new(StringArray::from(vec![p.rates_currency.as_str()])),
        Arc::new(Int32Array::from(vec![p.grace_days])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    catalog.put(
        ctx,
        "params",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;

    let buckets = p.buckets();
    let schema = Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("min_days", DataType::Int64, false),
        Field::new("max_days", DataType::Int64, true),
        Field::new("ord", DataType::Int32, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            buckets.iter().map(|b| b.0.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(buckets.iter().map(|b| b.1))),
        Arc::new(Int64Array::from_iter(buckets.iter().map(|b| b.2))),
        Arc::new(Int32Array::from_iter_values(0..buckets.len() as i32)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    catalog.put(
        ctx,
        "aging_buckets",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}
