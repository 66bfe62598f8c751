//! The change-feed contract (v1): which entities exist, their keys and their columns.
//!
//! This is the one place that knows what a valid feed looks like; validation, the state layer,
//! the generator and the docs all read it from here so that they cannot drift apart.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Column holding the change kind: `r`, `c`, `u` or `d` (Debezium's codes).
pub const OP: &str = "_op";
/// Column holding the source commit sequence; for one key the highest wins.
pub const SEQ: &str = "_seq";
/// `_seq` as the state keeps it: any integer of up to 38 digits, so that a source's own
/// sequence fits whole (AWS DMS numbers changes with 35 digits; SAP orders by a microsecond
/// timestamp, file and row). Files may carry it as Int64, or any integer type.
pub const SEQ_TYPE: DataType = DataType::Decimal128(38, 0);
/// Column holding the source commit time.
pub const TS: &str = "_ts";

/// Money columns are Decimal128(18,2) in the row's own currency.
pub const MONEY: DataType = DataType::Decimal128(18, 2);
/// FX rates: units of the reporting currency for one unit of the row's currency.
pub const RATE: DataType = DataType::Decimal128(18, 8);

/// The earliest date a date column may hold, as days since 1970-01-01 (1900-01-01): ERP
/// sentinels such as 0001-01-01 are not dates, and the engine's nanosecond timestamps end
/// at 1677-09-21 on this side.
pub const DATE_MIN_DAYS: i32 = -25_567;
/// The latest date a date column may hold (2199-12-31; nanosecond timestamps end in 2262).
pub const DATE_MAX_DAYS: i32 = 84_005;
/// The largest money amount, in cents: 999,999,999,999.99 either way. Sums of ten million
/// such amounts, converted at any rate, still fit the engine's decimals.
pub const MONEY_MAX_CENTS: i128 = 99_999_999_999_999;
/// The earliest `_ts`: 1970-01-01 (µs since the epoch).
pub const TS_MIN_MICROS: i64 = 0;
/// How far past the moment it is read a `_ts` may be (clock skew between the source and
/// arstream); a commit time further ahead is not a commit time.
pub const TS_FUTURE_SLACK_MICROS: i64 = 86_400_000_000;

/// The UTC microsecond timestamp type used by `_ts` and `activity_ts`.
pub fn timestamp_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// One column of an entity.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether a file of images must carry it; an optional column a file leaves out is null
    /// in its rows, or `default`.
    pub required: bool,
    pub default: Option<&'static str>,
}

/// The Arrow type a contract column has, as a small copyable tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int32,
    Date,
    Timestamp,
    Money,
    Rate,
    /// An ISO 4217 code: text that must be three capital letters.
    Currency,
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Text | Kind::Currency => DataType::Utf8,
            Kind::Int32 => DataType::Int32,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => timestamp_utc(),
            Kind::Money => MONEY,
            Kind::Rate => RATE,
        }
    }
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        required: true,
        default: None,
    }
}

/// A column a file may leave out (its rows then hold null).
const fn opt(name: &'static str, kind: Kind) -> Column {
    Column {
        required: false,
        ..col(name, kind)
    }
}

/// The entities of the feed, each a folder under the feed root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Customers,
    Invoices,
    Payments,
    Adjustments,
    Disputes,
    Promises,
    Activities,
    Collectors,
    FxRates,
}

use Kind::*;

impl Entity {
    pub const ALL: [Entity; 9] = [
        Entity::Customers,
        Entity::Invoices,
        Entity::Payments,
        Entity::Adjustments,
        Entity::Disputes,
        Entity::Promises,
        Entity::Activities,
        Entity::Collectors,
        Entity::FxRates,
    ];

    /// The folder name, which is also the SQL table name.
    pub fn name(self) -> &'static str {
        match self {
            Entity::Customers => "customers",
            Entity::Invoices => "invoices",
            Entity::Payments => "payments",
            Entity::Adjustments => "adjustments",
            Entity::Disputes => "disputes",
            Entity::Promises => "promises",
            Entity::Activities => "activities",
            Entity::Collectors => "collectors",
            Entity::FxRates => "fx_rates",
        }
    }

    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The columns that identify a row; the latest `_seq` per key is the current state.
    pub fn key(self) -> &'static [&'static str] {
        match self {
            Entity::Customers => &["customer_id"],
            Entity::Invoices => &["invoice_id"],
            Entity::Payments => &["payment_id"],
            Entity::Adjustments => &["adjustment_id"],
            Entity::Disputes => &["dispute_id"],
            Entity::Promises => &["promise_id"],
            Entity::Activities => &["activity_id"],
            Entity::Collectors => &["collector_id"],
            Entity::FxRates => &["currency", "rate_date"],
        }
    }

    /// Every contract column (keys first), without the change columns.
    pub fn columns(self) -> &'static [Column] {
        const CUSTOMERS: &[Column] = &[
            col("customer_id", Text),
            col("name", Text),
            opt("country", Text),
            col("currency", Currency),
            opt("credit_limit", Money),
            opt("payment_terms_days", Int32),
            opt("segment", Text),
            opt("language", Text),
            opt("email", Text),
            opt("phone", Text),
            opt("collector_id", Text),
        ];
        const INVOICES: &[Column] = &[
            col("invoice_id", Text),
            col("customer_id", Text),
            col("invoice_date", Date),
            // Left out or null: due on receipt (the invoice date), filled in by validation.
            opt("due_date", Date),
            col("amount", Money),
            col("currency", Currency),
            Column {
                default: Some("posted"),
                ..opt("status", Text)
            },
        ];
        const PAYMENTS: &[Column] = &[
            col("payment_id", Text),
            col("customer_id", Text),
            opt("invoice_id", Text),
            col("payment_date", Date),
            col("amount", Money),
            col("currency", Currency),
        ];
        const ADJUSTMENTS: &[Column] = &[
            col("adjustment_id", Text),
            col("invoice_id", Text),
            col("customer_id", Text),
            col("adjustment_date", Date),
            col("amount", Money),
            col("currency", Currency),
            opt("kind", Text),
        ];
        const DISPUTES: &[Column] = &[
            col("dispute_id", Text),
            col("invoice_id", Text),
            col("customer_id", Text),
            col("opened_date", Date),
            opt("amount", Money),
            opt("currency", Currency),
            opt("reason", Text),
            col("status", Text),
            opt("resolved_date", Date),
        ];
        const PROMISES: &[Column] = &[
            col("promise_id", Text),
            col("customer_id", Text),
            opt("invoice_id", Text),
            col("created_date", Date),
            col("promised_date", Date),
            col("amount", Money),
            col("currency", Currency),
            opt("collector_id", Text),
        ];
        const ACTIVITIES: &[Column] = &[
            col("activity_id", Text),
            col("customer_id", Text),
            opt("collector_id", Text),
            col("activity_ts", Timestamp),
            opt("channel", Text),
            opt("outcome", Text),
        ];
        const COLLECTORS: &[Column] = &[
            col("collector_id", Text),
            col("name", Text),
            opt("email", Text),
            opt("languages", Text),
            opt("capacity", Int32),
        ];
        const FX_RATES: &[Column] = &[
            col("currency", Currency),
            col("rate_date", Date),
            col("rate", Rate),
        ];
        match self {
            Entity::Customers => CUSTOMERS,
            Entity::Invoices => INVOICES,
            Entity::Payments => PAYMENTS,
            Entity::Adjustments => ADJUSTMENTS,
            Entity::Disputes => DISPUTES,
            Entity::Promises => PROMISES,
            Entity::Activities => ACTIVITIES,
            Entity::Collectors => COLLECTORS,
            Entity::FxRates => FX_RATES,
        }
    }

    /// Whether a negative `amount` breaks the contract (it does for invoices: a credit is an
    /// adjustment, not a negative invoice).
    pub fn forbids_negative_amount(self) -> bool {
        self == Entity::Invoices
    }

    /// The change columns followed by the contract columns: the schema every validated batch
    /// of this entity is brought to (unknown extra columns are appended after these).
    pub fn change_schema(self) -> SchemaRef {
        let mut fields = change_fields();
        fields.extend(self.columns().iter().map(|c| {
            let is_key = self.key().contains(&c.name);
            Field::new(c.name, c.kind.data_type(), !is_key)
        }));
        Arc::new(Schema::new(fields))
    }
}

/// `_op`, `_seq`, `_ts`: the three columns every change row carries.
pub fn change_fields() -> Vec<Field> {
    vec![
        Field::new(OP, DataType::Utf8, false),
        Field::new(SEQ, SEQ_TYPE, false),
        Field::new(TS, timestamp_utc(), false),
    ]
}

/// Whether a column name is one of the change columns (`_op`, `_seq`, `_ts`).
pub fn is_change_column(name: &str) -> bool {
    matches!(name, OP | SEQ | TS)
}
