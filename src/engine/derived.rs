//! Tables the engine's consumers compute from its rows and hand back to it: the risk
//! model's `invoice_scores`, the collector `assignments`, and the cash forecast's
//! `forecast_invoices`, `forecast_weeks` (read through the views `invoice_forecast` and
//! `cash_forecast`) and `forecast_accuracy`. They are registered empty at
//! every refresh, so that the views over them (`invoice_risk`, `worklist`, …) plan; their
//! consumer fills them ([`super::Engine::put_derived`]), and a query that reads them waits
//! for it (see [`super::Engine::reads_derived`]).
//!
//! `outreach_opt_outs` is registered empty the same way, for the view `outreach_invoices`;
//! outreach fills it from its policy's opt-out list. No model makes it, so reading it waits
//! for nothing.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The risk model's score of each open invoice (`docs/models.md`).
pub const INVOICE_SCORES: &str = "invoice_scores";
/// The collector of each customer of the worklist, or why none.
pub const ASSIGNMENTS: &str = "assignments";

/// Each open invoice's expected receipt in the next 13 weeks.
pub const FORECAST_INVOICES: &str = "forecast_invoices";
/// The 13 weeks' expected receipts with their 80 % band.
pub const FORECAST_WEEKS: &str = "forecast_weeks";
/// The forecast's backtest beside its baselines (one row).
pub const FORECAST_ACCURACY: &str = "forecast_accuracy";

/// The customers outreach must not write to (a policy's `opt_outs` file).
pub const OUTREACH_OPT_OUTS: &str = "outreach_opt_outs";

/// Every derived table, registered empty at each refresh.
pub const ALL: [&str; 6] = [
    INVOICE_SCORES,
    ASSIGNMENTS,
    FORECAST_INVOICES,
    FORECAST_WEEKS,
    FORECAST_ACCURACY,
    OUTREACH_OPT_OUTS,
];

/// The models' tables: what a query waits for when it reads one.
pub const NAMES: [&str; 5] = [
    INVOICE_SCORES,
    ASSIGNMENTS,
    FORECAST_INVOICES,
    FORECAST_WEEKS,
    FORECAST_ACCURACY,
];

/// The columns of derived table `name`.
pub fn schema(name: &str) -> Option<SchemaRef> {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let number = |name: &str| Field::new(name, DataType::Float64, false);
    let date = |name: &str| Field::new(name, DataType::Date32, false);
    let fields = match name {
        INVOICE_SCORES => vec![
            text("invoice_id", false),
            text("customer_id", false),
            Field::new("probability", DataType::Float64, false),
            text("reasons", false),
            Field::new("scored_as_of", DataType::Date32, false),
            Field::new("late_days", DataType::Int32, false),
            text("scored_by", false),
        ],
        OUTREACH_OPT_OUTS => vec![text("customer_id", false), text("reason", false)],
        ASSIGNMENTS => vec![
            text("customer_id", false),
            text("collector_id", true),
            text("reason", false),
        ],
        FORECAST_INVOICES => vec![
            text("invoice_id", false),
            text("customer_id", false),
            number("open_amount"),
            number("expected_amount"),
            Field::new("expected_date", DataType::Date32, true),
            text("basis", false),
            text("currency", false),
            date("forecast_as_of"),
        ],
        FORECAST_WEEKS => vec![
            Field::new("week", DataType::Int32, false),
            date("week_start"),
            date("week_end"),
            number("expected"),
            number("low"),
            number("high"),
            text("currency", false),
            date("forecast_as_of"),
        ],
        FORECAST_ACCURACY => vec![
            date("as_of"),
            date("forecast_from"),
            number("wape"),
            number("wape_due_date"),
            number("wape_average_delay"),
            number("band_coverage"),
            number("actual_receipts"),
            text("currency", false),
        ],
        _ => return None,
    };
    Some(Arc::new(Schema::new(fields)))
}
