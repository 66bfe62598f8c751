//! Tables the engine's consumers compute from its rows and hand back to it: the risk
//! model's `invoice_scores` and the collector `assignments`. They are registered empty at
//! every refresh, so that the views over them (`invoice_risk`, `worklist`, …) plan; their
//! consumer fills them ([`super::Engine::put_derived`]), and a query that reads them waits
//! for it (see [`super::Engine::reads_derived`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The risk model's score of each open invoice (`docs/models.md`).
pub const INVOICE_SCORES: &str = "invoice_scores";
/// The collector of each customer of the worklist, or why none.
pub const ASSIGNMENTS: &str = "assignments";

/// The derived tables' names.
pub const NAMES: [&str; 2] = [INVOICE_SCORES, ASSIGNMENTS];

/// The columns of derived table `name`.
pub fn schema(name: &str) -> Option<SchemaRef> {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let fields = match name {
        INVOICE_SCORES => vec![
            text("invoice_id", false),
            text("customer_id", false),
            Field::new("probability", DataType::Float64, false),
            text("reasons", false),
            Field::new("scored_as_of", DataType::Date32, false),
            Field::new("late_days", DataType::Int32, false),
        ],
        ASSIGNMENTS => vec![
            text("customer_id", false),
            text("collector_id", true),
            text("reason", false),
        ],
        _ => return None,
    };
    Some(Arc::new(Schema::new(fields)))
}
