//! Importers: exports of other systems turned into an arstream change feed, so that real
//! histories can be replayed, queried as of past dates and used to backtest models.

pub mod late_payments;

/// Why an export could not be imported: the file, and the line and field where it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {detail}")]
    Read { file: String, detail: String },
    #[error("{file}, line {line}, field '{field}': {detail}")]
    Field {
        file: String,
        line: usize,
        field: String,
        detail: String,
    },
    #[error("cannot write the feed '{url}': {detail}")]
    Write { url: String, detail: String },
}
