//! The backtests of `arstream model report`: the risk model's and the forecast's at the as-of
//! date and, over many evaluation days, the rolling backtest. At 10 million invoices they take
//! minutes, so they are made once per state generation and request and stored in the state
//! folder (`backtests/`, see [`crate::state::stored`]); the next report on the same state
//! reads them. Their key holds all they depend on: the KPI parameters, the risk options, the
//! request and every view's plain definition.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::session::Session;
use crate::dates::days;
use crate::engine::params::KpiParams;
use crate::engine::{Engine, EngineError};
use crate::models::cash_backtest::CashBacktest;
use crate::models::history::History;
use crate::models::risk;
use crate::models::rolling::{self, Rolling, RollingOptions};
use crate::state::stored::StoredTables;

/// What to backtest.
#[derive(Debug, Clone, Copy)]
pub struct ReportRequest {
    /// The training date of the backtest at the as-of date.
    pub cutoff: NaiveDate,
    /// Evaluation days of the rolling backtest (1: none).
    pub origins: u16,
    /// Days between two of them.
    pub every: i32,
}

/// The backtests made (or why one could not be).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backtests {
    pub risk: Result<risk::Backtest, String>,
    pub forecast: Result<CashBacktest, String>,
    pub rolling: Option<Rolling>,
    /// The day of the feed's last invoice or settlement, when it is more than a forecast's
    /// horizon before the as-of date (so the backtests measure little).
    pub feed_ended: Option<NaiveDate>,
}

const DOCUMENT: &str = "backtests";

/// The backtests of `request` over `engine`'s state, as stored or made (and stored).
pub async fn backtests(
    session: &Session,
    engine: &Engine,
    params: &KpiParams,
    request: ReportRequest,
    of_live_state: bool,
) -> Result<Backtests, EngineError> {
    let options = session.risk_options();
    let made_of = format!(
        "{params:?}; {options:?}; {request:?}; views {:016x}",
        engine.definitions_fingerprint()
    );
    // Backtests stored beside the state are of the state now: not read nor written for an
    // engine on other tables (the state as published, as known at a time).
    let stored = (of_live_state)
        .then(|| StoredTables::of(&session.state, DOCUMENT, &made_of))
        .flatten();
    if let Some(stored) = &stored
        && let Some(backtests) = stored.read_document::<Backtests>(DOCUMENT).await
    {
        tracing::debug!("backtests read as stored");
        return Ok(backtests);
    }
    let history = History::read(engine).await?;
    let as_of = days(params.as_of);
    let last = (history.invoices.iter().map(|i| i.invoice_date))
        .chain(history.settlements.iter().map(|x| x.day))
        .max();
    let feed_ended = last
        .filter(|&l| as_of - l > crate::models::forecast::HORIZON)
        .map(crate::dates::date);
    // Each backtest is made whatever became of the other; they are also the last evaluation
    // day of the rolling backtest (same day, same cut-off distance).
    let backtest_days = (params.as_of - request.cutoff).num_days() as i32;
    let at_as_of = rolling::backtests_at(&history, as_of, options, backtest_days);
    let rolling = (request.origins > 1).then(|| {
        let rolling_options = RollingOptions {
            every_days: request.every,
            origins: request.origins.into(),
            backtest_days,
        };
        rolling::rolling(&history, as_of, options, rolling_options, Some(&at_as_of))
    });
    let (risk, forecast) = at_as_of;
    let backtests = Backtests {
        risk,
        forecast,
        rolling,
        feed_ended,
    };
    if let Some(stored) = &stored {
        stored.write_document(DOCUMENT, &backtests).await;
    }
    Ok(backtests)
}
