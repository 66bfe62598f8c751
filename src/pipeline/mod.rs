//! Pipelines: what a refresh writes for other tools, and when. A pipeline file
//! (`pipelines/*.toml`, see [`spec`]) names the feed, the state, the output URL, the as-of
//! rule, the schedule and the steps; [`catalog`] finds and checks them; [`outputs`] writes
//! each step's result as plain Parquet, and [`writer`] does so for each snapshot the service
//! publishes; [`history`] is the KPI summary over a series of as-of dates.

pub mod catalog;
pub mod check;
pub mod history;
pub mod outputs;
pub mod spec;
pub mod writer;
