//! The ledger as Arrow tables, one per kind of sum, for the views of `queries/incremental/`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};

use super::{Ledger, Sums};

/// Sums are Decimal128(38,2): the money type of the feed, widened so that sums cannot
/// overflow.
const SUM: DataType = DataType::Decimal128(38, 2);

/// The columns of one table, built row by row.
#[derive(Default)]
struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    fn text<T: AsRef<str>>(mut self, name: &str, values: impl Iterator<Item = T>) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, false));
        self.arrays
            .push(Arc::new(StringArray::from_iter_values(values)) as ArrayRef);
        self
    }

    fn optional_text<'a>(
        mut self,
        name: &str,
        values: impl Iterator<Item = Option<&'a str>>,
    ) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, true));
        self.arrays
            .push(Arc::new(StringArray::from_iter(values)) as ArrayRef);
        self
    }

    fn day(mut self, name: &str, values: impl Iterator<Item = Option<i32>>) -> Self {
        self.fields.push(Field::new(name, DataType::Date32, true));
        self.arrays
            .push(Arc::new(Date32Array::from_iter(values)) as ArrayRef);
        self
    }

    fn flag(mut self, name: &str, values: impl Iterator<Item = bool>) -> Self {
        self.fields.push(Field::new(name, DataType::Boolean, false));
        self.arrays
            .push(Arc::new(values.map(Some).collect::<BooleanArray>()) as ArrayRef);
        self
    }

    fn amount(mut self, name: &str, values: impl Iterator<Item = i128>) -> Self {
        self.fields.push(Field::new(name, SUM, false));
        let array = Decimal128Array::from_iter_values(values).with_data_type(SUM);
        self.arrays.push(Arc::new(array) as ArrayRef);
        self
    }

    fn count(mut self, name: &str, values: impl Iterator<Item = i64>) -> Self {
        self.fields.push(Field::new(name, DataType::Int64, false));
        self.arrays
            .push(Arc::new(Int64Array::from_iter_values(values)) as ArrayRef);
        self
    }

    fn batch(self) -> RecordBatch {
        RecordBatch::try_new(Arc::new(Schema::new(self.fields)), self.arrays)
            .expect("columns of one length")
    }
}

/// `(currency, day)` sums as a table with the given names for the day and the count.
fn daily(ledger: &Ledger, sums: &Sums<(u16, i32)>, day: &str, count: &str) -> RecordBatch {
    let rows: Vec<_> = sums.iter().collect();
    Columns::default()
        .text(
            "currency",
            rows.iter().map(|((c, _), _)| ledger.currency(*c)),
        )
        .day(day, rows.iter().map(|((_, d), _)| Some(*d)))
        .amount("amount", rows.iter().map(|(_, s)| s.amount))
        .count(count, rows.iter().map(|(_, s)| s.count))
        .batch()
}

/// The names of the tables [`to_batches`] makes, in its order.
pub const TABLES: [&str; 8] = [
    "ledger_open",
    "ledger_sales",
    "ledger_recovery",
    "ledger_overpaid",
    "ledger_unapplied",
    "ledger_write_offs",
    "ledger_promises",
    "ledger_aging",
];

pub fn to_batches(ledger: &Ledger) -> Vec<(&'static str, RecordBatch)> {
    std::thread::scope(|scope| {
        let aging = scope.spawn(|| aging(ledger));
        let mut tables = the_others(ledger);
        tables.push((
            "ledger_aging",
            aging.join().expect("the aging table's thread panicked"),
        ));
        tables
    })
}

fn the_others(ledger: &Ledger) -> Vec<(&'static str, RecordBatch)> {
    let currency = |c: &u16| ledger.currency(*c);

    let open: Vec<_> = ledger.totals.open.iter().collect();
    let open = Columns::default()
        .text("currency", open.iter().map(|((c, ..), _)| currency(c)))
        .day(
            "open_from",
            open.iter().map(|((_, from, ..), _)| Some(*from)),
        )
        .day("due_date", open.iter().map(|((_, _, due, _), _)| *due))
        .flag("never_overpaid", open.iter().map(|((.., never), _)| *never))
        .amount("amount", open.iter().map(|(_, s)| s.amount))
        .count("invoices", open.iter().map(|(_, s)| s.count))
        .batch();

    let recovery: Vec<_> = ledger.totals.recovery.iter().collect();
    let recovery = Columns::default()
        .text("currency", recovery.iter().map(|((c, ..), _)| currency(c)))
        .day(
            "past_due_from",
            recovery.iter().map(|((_, from, _), _)| Some(*from)),
        )
        .day(
            "payment_date",
            recovery.iter().map(|((.., paid), _)| Some(*paid)),
        )
        .amount("amount", recovery.iter().map(|(_, s)| s.amount))
        .count("payments", recovery.iter().map(|(_, s)| s.count))
        .batch();

    let overpaid: Vec<_> = ledger
        .totals
        .overpaid
        .values()
        .flat_map(|o| o.rows.iter().map(move |(from, amount)| (o, *from, *amount)))
        .collect();
    let overpaid = Columns::default()
        .text(
            "invoice_id",
            overpaid.iter().map(|(o, ..)| o.invoice_id.as_str()),
        )
        .text(
            "currency",
            overpaid.iter().map(|(o, ..)| currency(&o.currency)),
        )
        .day("due_date", overpaid.iter().map(|(o, ..)| o.due))
        .day("open_from", overpaid.iter().map(|(_, from, _)| Some(*from)))
        .amount("amount", overpaid.iter().map(|(.., a)| *a as i128))
        .batch();

    let promises: Vec<_> = ledger.totals.promises.iter().collect();
    let promises = Columns::default()
        .day("promised_date", promises.iter().map(|((d, _), _)| Some(*d)))
        .flag("kept", promises.iter().map(|((_, kept), _)| *kept))
        .count("promises", promises.iter().map(|(_, s)| s.count))
        .batch();

    vec![
        ("ledger_open", open),
        (
            "ledger_sales",
            daily(ledger, &ledger.totals.sales, "invoice_date", "invoices"),
        ),
        ("ledger_recovery", recovery),
        ("ledger_overpaid", overpaid),
        (
            "ledger_unapplied",
            daily(ledger, &ledger.totals.unapplied, "payment_date", "payments"),
        ),
        (
            "ledger_write_offs",
            daily(
                ledger,
                &ledger.totals.write_offs,
                "adjustment_date",
                "adjustments",
            ),
        ),
        ("ledger_promises", promises),
    ]
}

/// Per-customer aging at the pinned date (empty until the engine pins it): the biggest of
/// the ledger's tables, made on a thread of its own beside the others.
fn aging(ledger: &Ledger) -> RecordBatch {
    let currency = |c: &u16| ledger.currency(*c);
    // Empty until the engine pins it to an as-of date.
    let empty = super::PinnedAging::default();
    let pinned = ledger.totals.aging.as_ref().unwrap_or(&empty);
    let aging: Vec<_> = pinned.sums.iter().collect();
    Columns::default()
        .optional_text(
            "customer_id",
            aging.iter().map(|((c, ..), _)| pinned.customer(*c)),
        )
        .text("currency", aging.iter().map(|((_, c, _), _)| currency(c)))
        .day("due_date", aging.iter().map(|((.., due), _)| Some(*due)))
        .amount("amount", aging.iter().map(|(_, s)| s.amount))
        .count("invoices", aging.iter().map(|(_, s)| s.count))
        .batch()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tables_are_those_named() {
        let ledger = super::Ledger::default();
        let names: Vec<&str> = super::to_batches(&ledger).iter().map(|(n, _)| *n).collect();
        assert_eq!(names, super::TABLES);
    }
}
