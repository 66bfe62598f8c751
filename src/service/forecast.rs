//! The cash forecast's derived tables (`engine::derived`): `invoice_forecast` and
//! `cash_forecast` of the forecast made on the as-of date, and `forecast_accuracy`, its
//! backtest 13 weeks before (`models::forecast`, `models::cash_backtest`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray};

use crate::dates::days;
use crate::engine::derived::{self, FORECAST_ACCURACY, FORECAST_INVOICES, FORECAST_WEEKS};
use crate::models::cash_backtest::CashBacktest;
use crate::models::forecast::Forecast;
use crate::models::history::History;

fn schema(name: &str) -> arrow::datatypes::SchemaRef {
    derived::schema(name).expect("a forecast table has a schema")
}

/// `invoice_forecast` of `forecast`.
pub fn invoice_batch(
    history: &History,
    forecast: &Forecast,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let rows = &forecast.invoices;
    let invoice = |i: usize| &history.invoices[rows[i].invoice];
    let n = rows.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| invoice(i).invoice_id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values((0..n).map(|i| {
            history.customers[invoice(i).customer as usize].as_str()
        }))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.open))),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.expected),
        )),
        Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.expected_day))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.basis.describe()),
        )),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            history.reporting_currency.as_str(),
            n,
        ))),
        Arc::new(Date32Array::from(vec![forecast.as_of; n])),
    ];
    RecordBatch::try_new(schema(FORECAST_INVOICES), columns)
}

/// `cash_forecast` of `forecast`: one row a week.
pub fn weeks_batch(
    history: &History,
    forecast: &Forecast,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let weeks = &forecast.weeks;
    let n = weeks.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(1..=n as i32)),
        Arc::new(Date32Array::from_iter_values(weeks.iter().map(|w| w.start))),
        Arc::new(Date32Array::from_iter_values(
            weeks.iter().map(|w| w.start + 6),
        )),
        Arc::new(Float64Array::from_iter_values(
            weeks.iter().map(|w| w.expected),
        )),
        Arc::new(Float64Array::from_iter_values(weeks.iter().map(|w| w.low))),
        Arc::new(Float64Array::from_iter_values(weeks.iter().map(|w| w.high))),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            history.reporting_currency.as_str(),
            n,
        ))),
        Arc::new(Date32Array::from(vec![forecast.as_of; n])),
    ];
    RecordBatch::try_new(schema(FORECAST_WEEKS), columns)
}

/// `forecast_accuracy` of a backtest to `as_of` (no row without one).
pub fn accuracy_batch(
    as_of: chrono::NaiveDate,
    backtest: Option<&CashBacktest>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let rows: Vec<&CashBacktest> = backtest.into_iter().collect();
    let number = |f: fn(&CashBacktest) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|b| f(b))))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![days(as_of); rows.len()])),
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|b| days(b.forecast_from)),
        )),
        number(|b| b.wape),
        number(|b| b.wape_due_date),
        number(|b| b.wape_average_delay),
        number(|b| b.band_coverage),
        number(|b| b.actual_receipts),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|b| b.currency.as_str()),
        )),
    ];
    RecordBatch::try_new(schema(FORECAST_ACCURACY), columns)
}
