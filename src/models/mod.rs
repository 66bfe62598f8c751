//! Models judged by backtests: what a score is measured with, beside the naive baseline it
//! must beat. (The risk model and the cash forecast come next: issues 15 and 16.)

pub mod baseline;
pub mod metrics;
