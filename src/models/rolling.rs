//! Backtests at many cut-offs (a rolling origin): one cut-off's figure can be luck, good or
//! bad; the mean and spread over a year of them, beside the baselines', say how a model does.
//!
//! At each evaluation day (the as-of date, then every `every_days` before it) the risk model is
//! backtested as `model report` does for one day (trained `backtest_days` before, scored on what
//! was decided by then) and the cash forecast too (forecast 13 weeks before, against the cash
//! that came in). A figure over too few cases is left out of the means, and counted as such.

use serde::{Deserialize, Serialize};

use super::cash_backtest;
use super::history::{Day, History};
use super::metrics;
use super::risk::{self, RiskOptions};

/// The fewest weeks with receipts a forecast's WAPE is taken over: with receipts in one or
/// two of the 13 weeks it is a figure about those weeks only.
pub const MIN_WEEKS_WITH_RECEIPTS: usize = 3;

/// Where the cut-offs fall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollingOptions {
    /// Days between two evaluation days.
    pub every_days: i32,
    /// How many evaluation days, the as-of date the last.
    pub origins: usize,
    /// Days between a risk backtest's cut-off (training) and its evaluation day.
    pub backtest_days: i32,
}

/// One evaluation day's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub as_of: chrono::NaiveDate,
    pub auc: Option<f64>,
    pub baseline_auc: Option<f64>,
    pub late_invoices: Option<usize>,
    pub brier: Option<f64>,
    pub baseline_brier: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_error: Option<String>,
    pub wape: Option<f64>,
    pub wape_due_date: Option<f64>,
    pub wape_average_delay: Option<f64>,
    pub band_coverage: Option<f64>,
    /// Weeks of the 13 with receipts.
    pub weeks_with_receipts: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_error: Option<String>,
}

/// A figure over the evaluation days where it could be measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Evaluation days it was measured on.
    pub count: usize,
    /// The 90 % bootstrap interval of the mean, resampling the days (`None` for fewer than
    /// [`metrics::MIN_FOR_INTERVAL`] days).
    pub interval: Option<[f64; 2]>,
}

/// Bootstrap resamples of an interval.
const RESAMPLES: usize = 2_000;

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let values: Vec<f64> = values.into_iter().collect();
        (!values.is_empty()).then(|| Spread {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            count: values.len(),
            interval: metrics::bootstrap_mean(&values, 0.9, RESAMPLES).map(|(lo, hi)| [lo, hi]),
        })
    }
}

/// The rolling backtest: every evaluation day, and each figure's spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rolling {
    pub every_days: i32,
    pub origins: Vec<Origin>,
    pub auc: Option<Spread>,
    pub baseline_auc: Option<Spread>,
    /// Evaluation days where the model's AUC beat the baseline's.
    pub auc_wins: usize,
    /// Model minus baseline, on the days both were measured: its interval says whether the
    /// model's lead is more than the days' noise.
    pub auc_difference: Option<Spread>,
    pub brier: Option<Spread>,
    pub baseline_brier: Option<Spread>,
    pub brier_wins: usize,
    pub wape: Option<Spread>,
    pub wape_due_date: Option<Spread>,
    pub wape_average_delay: Option<Spread>,
    /// Evaluation days where the forecast beat both baselines.
    pub wape_wins: usize,
    /// Forecast minus each baseline, on the days measured (negative: the forecast erred less).
    pub wape_vs_due_date: Option<Spread>,
    pub wape_vs_average_delay: Option<Spread>,
    pub band_coverage: Option<Spread>,
    /// Per week of the horizon (1 to 13): the share of evaluation days whose receipts that
    /// week fell inside the 80 % band (none where no day measured it).
    pub band_coverage_by_week: Vec<Option<f64>>,
    /// Evaluation days where the risk model's backtest could not be made (no outcome to
    /// learn from yet, all alike), and the forecast's (no payment yet, no cash came in).
    pub risk_not_made: usize,
    pub forecast_not_made: usize,
}

/// Both backtests at `day`, the risk model's trained `backtest_days` before (errors as the
/// user reads them).
pub type Backtests = (
    Result<risk::Backtest, String>,
    Result<cash_backtest::CashBacktest, String>,
);

/// Both backtests at `day`.
pub fn backtests_at(
    history: &History,
    day: Day,
    risk_options: RiskOptions,
    backtest_days: i32,
) -> Backtests {
    (
        risk::backtest(history, day, day - backtest_days, risk_options)
            .map_err(|e| format!("{e:#}")),
        cash_backtest::backtest(history, day).map_err(|e| format!("{e:#}")),
    )
}

/// Both backtests at each evaluation day up to `as_of`; `at_as_of`: those of `as_of` itself,
/// when the caller made them already (`model report`'s own), so they are not made twice.
pub fn rolling(
    history: &History,
    as_of: Day,
    risk_options: RiskOptions,
    options: RollingOptions,
    at_as_of: Option<&Backtests>,
) -> Rolling {
    let mut origins = Vec::new();
    // Per week of the horizon: (weeks inside the band, weeks measured).
    let mut by_week = [(0usize, 0usize); super::forecast::WEEKS];
    for k in (0..options.origins).rev() {
        let day = as_of - options.every_days * k as Day;
        let made;
        let (risk, forecast) = match at_as_of.filter(|_| k == 0) {
            Some(both) => both,
            None => {
                made = backtests_at(history, day, risk_options, options.backtest_days);
                &made
            }
        };
        let mut origin = Origin {
            as_of: crate::dates::date(day),
            auc: None,
            baseline_auc: None,
            late_invoices: None,
            brier: None,
            baseline_brier: None,
            risk_error: None,
            wape: None,
            wape_due_date: None,
            wape_average_delay: None,
            band_coverage: None,
            weeks_with_receipts: None,
            forecast_error: None,
        };
        match risk {
            Ok(b) => {
                origin.auc = b.auc;
                origin.baseline_auc = b.baseline_auc;
                origin.late_invoices = Some(b.late_invoices);
                origin.brier = Some(b.brier);
                origin.baseline_brier = Some(b.baseline_brier);
            }
            Err(e) => origin.risk_error = Some(e.clone()),
        }
        match forecast {
            Ok(f) => {
                let weeks = (f.forecast_weeks.iter()).filter(|w| w.actual > 0.0).count();
                origin.weeks_with_receipts = Some(weeks);
                if weeks >= MIN_WEEKS_WITH_RECEIPTS {
                    for (w, week) in f.forecast_weeks.iter().enumerate().take(by_week.len()) {
                        let inside = week.low <= week.actual && week.actual <= week.high;
                        by_week[w].0 += usize::from(inside);
                        by_week[w].1 += 1;
                    }
                    origin.wape = Some(f.wape);
                    origin.wape_due_date = Some(f.wape_due_date);
                    origin.wape_average_delay = Some(f.wape_average_delay);
                    origin.band_coverage = Some(f.band_coverage);
                }
            }
            Err(e) => origin.forecast_error = Some(e.clone()),
        }
        origins.push(origin);
    }
    let pick = |f: &dyn Fn(&Origin) -> Option<f64>| Spread::of(origins.iter().filter_map(f));
    let wins =
        |f: &dyn Fn(&Origin) -> Option<bool>| origins.iter().filter_map(f).filter(|&w| w).count();
    Rolling {
        every_days: options.every_days,
        auc: pick(&|o| o.auc),
        baseline_auc: pick(&|o| o.baseline_auc),
        auc_wins: wins(&|o| Some(o.auc? > o.baseline_auc?)),
        auc_difference: pick(&|o| Some(o.auc? - o.baseline_auc?)),
        brier: pick(&|o| o.brier),
        baseline_brier: pick(&|o| o.baseline_brier),
        brier_wins: wins(&|o| Some(o.brier? < o.baseline_brier?)),
        wape: pick(&|o| o.wape),
        wape_due_date: pick(&|o| o.wape_due_date),
        wape_average_delay: pick(&|o| o.wape_average_delay),
        wape_wins: wins(&|o| Some(o.wape? < o.wape_due_date?.min(o.wape_average_delay?))),
        wape_vs_due_date: pick(&|o| Some(o.wape? - o.wape_due_date?)),
        wape_vs_average_delay: pick(&|o| Some(o.wape? - o.wape_average_delay?)),
        band_coverage: pick(&|o| o.band_coverage),
        band_coverage_by_week: (by_week.iter())
            .map(|&(inside, all)| (all > 0).then(|| inside as f64 / all as f64))
            .collect(),
        risk_not_made: origins.iter().filter(|o| o.risk_error.is_some()).count(),
        forecast_not_made: origins
            .iter()
            .filter(|o| o.forecast_error.is_some())
            .count(),
        origins,
    }
}
