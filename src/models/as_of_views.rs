//! The view rules the models compute in Rust, declared in one place.
//!
//! A view answers for its as-of date only, and the models forecast from every day of the
//! past (the band, the backtests), so they apply these rules themselves, on what was known
//! each day. Each Rust rule is held to its shipped view's rows by `tests/mirrors.rs`. When a
//! queries folder replaces one of these views (or a view it reads), the analyst's rule is
//! the one that counts: on the as-of date its rows are read here and used instead of the Rust
//! rule, and the log says that the days before it (the band, the backtests) keep the shipped
//! rule. The paid dates are guarded the same way (`history::PaidDates`).

use std::collections::HashMap;

use super::facts::{Fact, date_at, float_at};
use crate::dates::Day;
use crate::engine::{Engine, EngineError};

/// A rule of a view that Rust applies too.
#[derive(Debug, Clone, Copy)]
pub struct Mirror {
    pub view: &'static str,
    /// What of the view it is.
    pub rule: &'static str,
    /// Where Rust applies it.
    pub rust: &'static str,
}

/// Every such rule.
pub const MIRRORS: [Mirror; 6] = [
    Mirror {
        view: "invoice_outcomes",
        rule: "the day an invoice's settlements first cover it (paid_date)",
        rust: "history::paid_dates",
    },
    Mirror {
        view: "invoice_outcomes",
        rule: "a void invoice is left out",
        rust: "facts::INVOICES_UNPAID",
    },
    Mirror {
        view: "fx_closing",
        rule: "each currency's closing rate in the reporting currency",
        rust: "History::rates_on",
    },
    Mirror {
        view: "invoice_status",
        rule: "what is open on an invoice (open_amount)",
        rust: "forecast::open_balance",
    },
    Mirror {
        view: "invoice_status",
        rule: "an invoice is in dispute while a dispute on it is open (in_dispute)",
        rust: "facts::DISPUTES, forecast::dispute_holds",
    },
    Mirror {
        view: "invoice_status",
        rule: "the promised date of an active promise on the invoice (promised_date)",
        rust: "forecast::active_promises",
    },
];

/// One invoice's row of `open_items` as the models use it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenItem {
    /// In the invoice's currency.
    pub open: f64,
    pub in_dispute: bool,
    pub promised: Option<Day>,
}

/// The rows of the replaced views on the as-of date (`None`: the view is the shipped one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AsOfViews {
    /// By currency (as numbered in `History::currencies`); `None` for a currency without a
    /// rate.
    pub rates: Option<Vec<Option<f64>>>,
    /// By invoice (index into `History::invoices`).
    pub open_items: Option<HashMap<u32, OpenItem>>,
}

const FX_CLOSING: Fact = Fact {
    name: "fx_closing",
    sql: "SELECT currency, CAST(rate AS DOUBLE) AS rate FROM fx_closing",
};

const OPEN_ITEMS: Fact = Fact {
    name: "open_items",
    sql: "SELECT invoice_id, CAST(open_amount AS DOUBLE) AS open_amount, in_dispute, \
          promised_date FROM open_items",
};

/// Which views to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Those a queries folder replaced.
    Replaced,
    /// All (to hold the Rust rules to them).
    All,
}

impl AsOfViews {
    /// The views of `engine` that `read` says, as of `as_of`, by the history's numbering of
    /// currencies and invoices (read from the same engine).
    pub async fn read(
        engine: &Engine,
        as_of: Day,
        currencies: &[String],
        invoice_ids: impl Iterator<Item = &str>,
        read: Read,
    ) -> Result<AsOfViews, EngineError> {
        let wanted = |view: &str| match read {
            Read::All => true,
            Read::Replaced => {
                let replaced = !engine.uses_shipped_view(view);
                if replaced {
                    tracing::info!(
                        "the queries folder replaces {view} (or a view it reads): the forecast \
                         of the as-of date reads it; the forecasts of earlier days (the band, the \
                         backtests) keep the shipped rule"
                    );
                }
                replaced
            }
        };
        let mut views = AsOfViews::default();
        if wanted("fx_closing") {
            let mut rates = vec![None; currencies.len()];
            for batch in FX_CLOSING.read(engine, as_of).await? {
                let columns = FX_CLOSING.columns(&batch);
                let (code, rate) = (columns.strings("currency")?, columns.floats("rate")?);
                for row in 0..columns.rows() {
                    let at = code
                        .value(row)
                        .and_then(|c| currencies.iter().position(|k| k == c));
                    if let Some(at) = at {
                        rates[at] = float_at(&rate, row);
                    }
                }
            }
            views.rates = Some(rates);
        }
        if wanted("open_items") {
            let by_id: HashMap<&str, u32> = (invoice_ids.enumerate())
                .map(|(i, id)| (id, i as u32))
                .collect();
            let mut items = HashMap::new();
            for batch in OPEN_ITEMS.read(engine, as_of).await? {
                let columns = OPEN_ITEMS.columns(&batch);
                let id = columns.strings("invoice_id")?;
                let open = columns.floats("open_amount")?;
                let disputed = columns.bools("in_dispute")?;
                let promised = columns.dates("promised_date")?;
                for row in 0..columns.rows() {
                    let Some(&i) = id.value(row).and_then(|id| by_id.get(id)) else {
                        continue;
                    };
                    let item = OpenItem {
                        open: float_at(&open, row).unwrap_or(0.0),
                        in_dispute: arrow::array::Array::is_valid(&disputed, row)
                            && disputed.value(row),
                        promised: date_at(&promised, row),
                    };
                    items.insert(i, item);
                }
            }
            views.open_items = Some(items);
        }
        Ok(views)
    }
}
