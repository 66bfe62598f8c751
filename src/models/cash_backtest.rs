//! The cash forecast's backtest: forecast 13 weeks before the as-of date with only what was
//! known then, and compare each week with the cash that came in on the invoices open then;
//! beside two naive forecasts of the same invoices: every invoice paid on its due date, and
//! every invoice paid at its customer's average past delay (`docs/models.md`).
//!
//! The backtest measures timing: forecast and receipts convert at the closing rates of the day
//! forecast from, so a currency's move since is not counted as the forecast's error. Receipts on invoices
//! issued after the forecast day are not in it (nothing forecast them).

use super::delays::{CustomerDelays, Population};
use super::forecast::{self, Band, Forecaster, HORIZON, WEEKS};
use super::history::{Day, History};

/// One week of the backtest, in the reporting currency.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BacktestWeek {
    pub week_start: chrono::NaiveDate,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    pub actual: f64,
    pub due_date: f64,
    pub average_delay: f64,
}

/// The backtest's result (the forecast keys of `arstream model report`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CashBacktest {
    /// The day forecast from (13 weeks before the as-of date).
    pub forecast_from: chrono::NaiveDate,
    /// Σ |forecast − actual| over the weeks ÷ Σ actual.
    pub wape: f64,
    pub wape_due_date: f64,
    pub wape_average_delay: f64,
    /// The share of weeks whose receipts fell inside the 80 % band.
    pub band_coverage: f64,
    /// How the band was made: "measured" (earlier forecasts' errors) or "chances".
    pub band: String,
    pub forecast_invoices: usize,
    pub actual_receipts: f64,
    pub currency: String,
    pub forecast_weeks: Vec<BacktestWeek>,
}

/// Why a backtest could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CashBacktestError {
    #[error(transparent)]
    Forecast(#[from] forecast::ForecastError),
    #[error(
        "no cash came in from {from} to {to} on the invoices open on {from}: WAPE is undefined"
    )]
    NoReceipts {
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    },
}

/// Forecast as of `as_of - 91` and compare with what came in by `as_of`.
pub fn backtest(history: &History, as_of: Day) -> Result<CashBacktest, CashBacktestError> {
    backtest_with(&mut Forecaster::new(history), as_of)
}

/// [`backtest`] with the forecasts `forecaster` made already (those of the band of a
/// forecast of `as_of` are most of the backtest's).
pub fn backtest_with(
    forecaster: &mut Forecaster,
    as_of: Day,
) -> Result<CashBacktest, CashBacktestError> {
    let history = forecaster.history();
    let from = as_of - HORIZON;
    let date = crate::dates::date;
    let forecast = forecaster.forecast(from)?;
    let actual = forecast::receipts(history, from, as_of).map(|a| a.unwrap_or(0.0));
    let total: f64 = actual.iter().sum();
    if total <= 0.0 {
        return Err(CashBacktestError::NoReceipts {
            from: date(from),
            to: date(as_of),
        });
    }
    let on_due = naive(history, from, |inv_due, _| inv_due);
    let population =
        Population::learn(history, from).ok_or(forecast::ForecastError::NoPayments(date(from)))?;
    let mut means = vec![None; history.customers.len()];
    for (c, mean) in means.iter_mut().enumerate() {
        *mean = CustomerDelays::learn_all(history, c, from).mean(0);
    }
    let on_average = naive(history, from, |due, c| {
        due + means[c].unwrap_or(population.mean_paid_delay).round() as Day
    });
    let wape = |f: &[f64; WEEKS]| {
        f.iter()
            .zip(&actual)
            .map(|(f, a)| (f - a).abs())
            .sum::<f64>()
            / total
    };
    let expected: [f64; WEEKS] = std::array::from_fn(|w| forecast.weeks[w].expected);
    let inside = (forecast.weeks.iter().zip(&actual))
        .filter(|(w, a)| w.low <= **a && **a <= w.high)
        .count();
    let weeks = (0..WEEKS)
        .map(|w| BacktestWeek {
            week_start: date(forecast.weeks[w].start),
            expected: forecast.weeks[w].expected,
            low: forecast.weeks[w].low,
            high: forecast.weeks[w].high,
            actual: actual[w],
            due_date: on_due[w],
            average_delay: on_average[w],
        })
        .collect();
    Ok(CashBacktest {
        forecast_from: date(from),
        wape: wape(&expected),
        wape_due_date: wape(&on_due),
        wape_average_delay: wape(&on_average),
        band_coverage: inside as f64 / WEEKS as f64,
        band: match forecast.band {
            Band::Measured(_) => "measured",
            Band::Chances => "chances",
        }
        .to_string(),
        forecast_invoices: forecast.invoices.len(),
        actual_receipts: total,
        currency: history.reporting_currency.clone(),
        forecast_weeks: weeks,
    })
}

/// A naive forecast from day `s`: each open invoice's whole balance on the day `day(due, c)`
/// gives (for customer `c`), or the first day after `s` when that day has passed.
fn naive(history: &History, s: Day, day: impl Fn(Day, usize) -> Day) -> [f64; WEEKS] {
    let mut weeks = [0.0; WEEKS];
    let rates = history.rates_on(s);
    for (i, inv) in history.invoices.iter().enumerate() {
        let (Some(balance), Some(rate)) = (
            forecast::open_balance(history, i, s),
            forecast::rate_of(history, &rates, i),
        ) else {
            continue;
        };
        let on = day(inv.due_date, inv.customer as usize).max(s + 1);
        if on <= s + HORIZON {
            weeks[((on - s - 1) / 7) as usize] += balance * rate;
        }
    }
    weeks
}
