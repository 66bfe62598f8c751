//! Reading the few columns the ledger needs out of state batches (current-state or change
//! schema: columns are found by name).

use arrow::array::{Array, AsArray, Date32Array, Decimal128Array, RecordBatch, StringArray};
use arrow::datatypes::{Date32Type, Decimal128Type};

use super::{Day, Money};

fn text<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("state batch without column {name}"))
        .as_string::<i32>()
}

fn day<'a>(batch: &'a RecordBatch, name: &str) -> &'a Date32Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("state batch without column {name}"))
        .as_primitive::<Date32Type>()
}

fn money<'a>(batch: &'a RecordBatch, name: &str) -> &'a Decimal128Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("state batch without column {name}"))
        .as_primitive::<Decimal128Type>()
}

fn opt<T>(valid: bool, value: T) -> Option<T> {
    valid.then_some(value)
}

/// An invoice image, as the KPI rules see it.
pub struct InvoiceImage<'a> {
    pub invoice_id: &'a str,
    pub customer_id: Option<&'a str>,
    pub currency: &'a str,
    pub invoice_date: Option<Day>,
    pub due_date: Option<Day>,
    pub amount: Option<Money>,
    /// `status <> 'void'` (null when the status is: such an invoice does not exist either).
    pub not_void: Option<bool>,
}

pub struct Invoices<'a> {
    id: &'a StringArray,
    customer_id: &'a StringArray,
    currency: &'a StringArray,
    invoice_date: &'a Date32Array,
    due_date: &'a Date32Array,
    amount: &'a Decimal128Array,
    status: &'a StringArray,
}

impl<'a> Invoices<'a> {
    pub fn new(batch: &'a RecordBatch) -> Self {
        Invoices {
            id: text(batch, "invoice_id"),
            customer_id: text(batch, "customer_id"),
            currency: text(batch, "currency"),
            invoice_date: day(batch, "invoice_date"),
            due_date: day(batch, "due_date"),
            amount: money(batch, "amount"),
            status: text(batch, "status"),
        }
    }

    pub fn row(&self, r: usize) -> InvoiceImage<'a> {
        InvoiceImage {
            invoice_id: self.id.value(r),
            customer_id: opt(self.customer_id.is_valid(r), self.customer_id.value(r)),
            currency: opt(self.currency.is_valid(r), self.currency.value(r)).unwrap_or(""),
            invoice_date: opt(self.invoice_date.is_valid(r), self.invoice_date.value(r)),
            due_date: opt(self.due_date.is_valid(r), self.due_date.value(r)),
            amount: opt(self.amount.is_valid(r), self.amount.value(r) as Money),
            not_void: opt(self.status.is_valid(r), self.status.value(r) != "void"),
        }
    }
}

/// A payment or adjustment image: money that settles (part of) an invoice.
pub struct SettlementImage<'a> {
    pub invoice_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub currency: &'a str,
    pub day: Option<Day>,
    pub amount: Option<Money>,
    /// Adjustments only: whether it is a write-off.
    pub write_off: bool,
}

pub struct Settlements<'a> {
    invoice_id: &'a StringArray,
    customer_id: &'a StringArray,
    currency: &'a StringArray,
    day: &'a Date32Array,
    amount: &'a Decimal128Array,
    kind: Option<&'a StringArray>,
}

impl<'a> Settlements<'a> {
    /// Payments (`is_cash`) or adjustments.
    pub fn new(batch: &'a RecordBatch, is_cash: bool) -> Self {
        Settlements {
            invoice_id: text(batch, "invoice_id"),
            customer_id: text(batch, "customer_id"),
            currency: text(batch, "currency"),
            day: day(
                batch,
                if is_cash {
                    "payment_date"
                } else {
                    "adjustment_date"
                },
            ),
            amount: money(batch, "amount"),
            kind: (!is_cash).then(|| text(batch, "kind")),
        }
    }

    pub fn row(&self, r: usize) -> SettlementImage<'a> {
        SettlementImage {
            invoice_id: opt(self.invoice_id.is_valid(r), self.invoice_id.value(r)),
            customer_id: opt(self.customer_id.is_valid(r), self.customer_id.value(r)),
            currency: opt(self.currency.is_valid(r), self.currency.value(r)).unwrap_or(""),
            day: opt(self.day.is_valid(r), self.day.value(r)),
            amount: opt(self.amount.is_valid(r), self.amount.value(r) as Money),
            write_off: self
                .kind
                .is_some_and(|k| k.is_valid(r) && k.value(r) == "write_off"),
        }
    }
}

/// A promise-to-pay image.
pub struct PromiseImage<'a> {
    pub invoice_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub created: Option<Day>,
    pub promised: Option<Day>,
    pub amount: Option<Money>,
}

pub struct Promises<'a> {
    invoice_id: &'a StringArray,
    customer_id: &'a StringArray,
    created: &'a Date32Array,
    promised: &'a Date32Array,
    amount: &'a Decimal128Array,
}

impl<'a> Promises<'a> {
    pub fn new(batch: &'a RecordBatch) -> Self {
        Promises {
            invoice_id: text(batch, "invoice_id"),
            customer_id: text(batch, "customer_id"),
            created: day(batch, "created_date"),
            promised: day(batch, "promised_date"),
            amount: money(batch, "amount"),
        }
    }

    pub fn row(&self, r: usize) -> PromiseImage<'a> {
        PromiseImage {
            invoice_id: opt(self.invoice_id.is_valid(r), self.invoice_id.value(r)),
            customer_id: opt(self.customer_id.is_valid(r), self.customer_id.value(r)),
            created: opt(self.created.is_valid(r), self.created.value(r)),
            promised: opt(self.promised.is_valid(r), self.promised.value(r)),
            amount: opt(self.amount.is_valid(r), self.amount.value(r) as Money),
        }
    }
}
