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
    #[error("{file}: {} bad lines, nothing written:{}", errors.len(), listed(errors))]
    Lines {
        file: String,
        errors: Vec<late_payments::LineError>,
    },
    #[error("cannot write the feed '{url}': {detail}")]
    Write { url: String, detail: String },
}

/// The first lines of `errors`, one per line of text.
fn listed(errors: &[late_payments::LineError]) -> String {
    const SHOWN: usize = 20;
    let mut out: String = (errors.iter().take(SHOWN))
        .map(|e| format!("\n  line {}, field '{}': {}", e.line, e.field, e.detail))
        .collect();
    if errors.len() > SHOWN {
        out.push_str(&format!("\n  … and {} more", errors.len() - SHOWN));
    }
    out
}
