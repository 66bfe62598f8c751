//! Models judged by backtests: the late-payment risk model, what its scores are measured
//! with, and the naive baseline they must beat (`docs/models.md`).

pub mod as_of_views;
pub mod baseline;
pub mod cash_backtest;
pub mod delays;
pub mod facts;
pub mod features;
pub mod forecast;
pub mod history;
pub mod logistic;
pub mod metrics;
pub mod reasons;
pub mod risk;
pub mod rolling;
