//! arstream: an SQL-first collections engine for accounts receivable.
//!
//! Data flows one way: ERP change feeds ([`feed`]) are validated and applied exactly once to
//! current-state tables ([`state`], driven by [`ingest`]), which a DataFusion session
//! ([`engine`]) serves to SQL. The synthetic ERP in [`generate`] writes realistic feeds for
//! demos, tests and benchmarks; [`import`] turns other systems' exports into feeds.

pub mod actions;
pub mod assignment;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod dates;
pub mod engine;
pub mod feed;
pub mod generate;
pub mod hint;
pub mod import;
pub mod ingest;
pub mod models;
pub mod outreach;
pub mod parquet_io;
pub mod pipeline;
pub mod publish;
pub mod server;
pub mod service;
pub mod sql_server;
pub mod state;
pub mod store;
