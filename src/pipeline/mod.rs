//! Pipelines: what a refresh writes for other tools, and when. A pipeline file
//! (`pipelines/*.toml`, see [`spec`]) names the feed, the state, the output URL, the as-of
//! rule, the schedule and the steps; [`outputs`] writes each step's result as plain Parquet.

pub mod outputs;
pub mod spec;
