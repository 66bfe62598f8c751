//! Validation: read one feed file and check it against the contract.
//!
//! A file either comes out as one batch in its entity's change schema (contract columns cast
//! to their contract types, unknown extra columns kept as they are), or as a [`Violation`]
//! that names the file, the row and the column. Nothing of a file with a violation is applied.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchReader, new_null_array};
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::{CastOptions, cast_with_options, concat_batches};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Schema, TimestampMicrosecondType,
};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use super::contract::{self, Entity, Kind, OP, SEQ, TS};

/// The machine-readable kind of a contract violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// Not a Parquet file at all, or a truncated or corrupt one.
    NotParquet,
    /// The file lies in a folder that names no entity of the contract.
    UnknownEntity,
    /// A required column is absent.
    MissingColumn,
    /// A column has a type that cannot be cast to the contract's without loss.
    WrongType,
    /// A key column is null.
    NullKey,
    /// `_seq` or `_ts` is null.
    NullChangeField,
    /// `_op` is not one of `r`, `c`, `u`, `d`.
    UnknownOp,
    /// A currency that is not three capital letters.
    BadCurrency,
    /// A negative `amount` on an invoice.
    NegativeAmount,
    /// Two rows of one key with the same `_seq` and different images.
    ConflictingImage,
    /// A date, timestamp or amount outside the range the contract allows.
    OutOfRange,
    /// An FX rate of zero or below.
    NonPositiveRate,
    /// An id of the ERP's feed in the space kept for the actions arstream writes.
    ReservedId,
}

impl ViolationCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::NotParquet => "not_parquet",
            ViolationCode::UnknownEntity => "unknown_entity",
            ViolationCode::MissingColumn => "missing_column",
            ViolationCode::WrongType => "wrong_type",
            ViolationCode::NullKey => "null_key",
            ViolationCode::NullChangeField => "null_change_field",
            ViolationCode::UnknownOp => "unknown_op",
            ViolationCode::BadCurrency => "bad_currency",
            ViolationCode::NegativeAmount => "negative_amount",
            ViolationCode::ConflictingImage => "conflicting_image",
            ViolationCode::OutOfRange => "out_of_range",
            ViolationCode::NonPositiveRate => "non_positive_rate",
            ViolationCode::ReservedId => "reserved_id",
        }
    }
}

impl fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a file was quarantined: a code for machines and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub code: ViolationCode,
    /// The file, relative to the feed root.
    pub file: String,
    /// 1-based data row, when one row is to blame.
    pub row: Option<usize>,
    pub column: Option<String>,
    /// The source's column `column` was read from, when the feed's format or mapping named it
    /// otherwise (`docs/change-feed.md`, formats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_column: Option<String>,
    /// What is wrong, without the file/row/column prefix.
    pub detail: String,
}

impl Violation {
    pub fn new(code: ViolationCode, file: &str, detail: impl Into<String>) -> Self {
        Violation {
            code,
            file: file.to_string(),
            row: None,
            column: None,
            source_column: None,
            detail: detail.into(),
        }
    }

    pub fn at(mut self, row: Option<usize>, column: &str) -> Self {
        self.row = row.map(|r| r + 1);
        self.column = Some(column.to_string());
        self
    }

    /// The human sentence: file, row and column first, then what is wrong.
    pub fn reason(&self) -> String {
        let mut s = self.file.clone();
        if let Some(row) = self.row {
            s.push_str(&format!(", row {row}"));
        }
        match (&self.column, &self.source_column) {
            (Some(col), Some(source)) => {
                s.push_str(&format!(", source column '{source}' (read as '{col}')"))
            }
            (Some(col), None) => s.push_str(&format!(", column '{col}'")),
            _ => {}
        }
        format!("{s}: {}", self.detail)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.reason())
    }
}

impl std::error::Error for Violation {}

/// Decode the Parquet bytes of one file into a single batch.
pub fn decode_parquet(file: &str, bytes: Bytes) -> Result<RecordBatch, Violation> {
    let (schema, batches) = decode_parquet_batches(file, bytes)?;
    concat_batches(&schema, &batches).map_err(|e| not_parquet(file, &e))
}

fn not_parquet(file: &str, e: &dyn fmt::Display) -> Violation {
    Violation::new(
        ViolationCode::NotParquet,
        file,
        format!("not a readable Parquet file ({e})"),
    )
}

/// Decode the Parquet bytes of one file as the batches it is stored in (no copy into one).
pub fn decode_parquet_batches(
    file: &str,
    bytes: Bytes,
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), Violation> {
    decode_parquet_with_views(file, bytes, |_| false)
}

/// [`decode_parquet_batches`], with the text columns `as_views` names decoded as string
/// views (pointing into the decoded pages, not copied value by value).
pub fn decode_parquet_with_views(
    file: &str,
    bytes: Bytes,
    as_views: impl Fn(&str) -> bool,
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), Violation> {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    let mut metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())
        .map_err(|e| not_parquet(file, &e))?;
    let stored = metadata.schema().clone();
    let is_text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8);
    if (stored.fields().iter()).any(|f| is_text(f.data_type()) && as_views(f.name())) {
        let fields: Vec<Field> = (stored.fields().iter())
            .map(|f| match is_text(f.data_type()) && as_views(f.name()) {
                true => f.as_ref().clone().with_data_type(DataType::Utf8View),
                false => f.as_ref().clone(),
            })
            .collect();
        let options =
            ArrowReaderOptions::new().with_schema(Arc::new(arrow::datatypes::Schema::new(fields)));
        metadata = ArrowReaderMetadata::try_new(metadata.metadata().clone(), options)
            .map_err(|e| not_parquet(file, &e))?;
    }
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata);
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| not_parquet(file, &e))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_parquet(file, &e))?;
    Ok((schema, batches))
}

/// Validate a decoded file of `entity` and bring it to the entity's change schema, with the
/// file's unknown extra columns appended unchanged.
pub fn validate_batch(
    entity: Entity,
    file: &str,
    batch: &RecordBatch,
) -> Result<RecordBatch, Violation> {
    let schema = batch.schema();
    let get = |name: &str| schema.index_of(name).ok().map(|i| batch.column(i).clone());
    // Every missing column named at once.
    let missing = |names: &[&str], why: &str| {
        let listed: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        let violation = |detail| Violation::new(ViolationCode::MissingColumn, file, detail);
        match names.len() {
            1 => violation(format!("required column {} is missing{why}", listed[0]))
                .at(None, names[0]),
            _ => violation(format!(
                "required columns {} are missing{why}",
                listed.join(", ")
            )),
        }
    };

    // The change columns and the key are needed by every row, deletes included.
    let absent: Vec<&str> = ([OP, SEQ, TS].iter().chain(entity.key()))
        .copied()
        .filter(|name| get(name).is_none())
        .collect();
    if !absent.is_empty() {
        return Err(missing(&absent, ""));
    }
    let target = entity.change_schema();
    let Some(op_column) = get(OP) else {
        return Err(missing(&[OP], ""));
    };
    let ops = cast_column(file, OP, &op_column, &DataType::Utf8)?;
    let ops = ops.as_string::<i32>();
    for (row, op) in ops.iter().enumerate() {
        match op {
            Some("r" | "c" | "u" | "d") => {}
            other => {
                let found = other.map_or("null".to_string(), |op| format!("\"{op}\""));
                return Err(Violation::new(
                    ViolationCode::UnknownOp,
                    file,
                    format!("_op is {found}; expected one of r, c, u, d"),
                )
                .at(Some(row), OP));
            }
        }
    }
    let is_delete: Vec<bool> = ops.iter().map(|op| op == Some("d")).collect();
    let has_images = is_delete.iter().any(|d| !d);
    if has_images {
        let absent: Vec<&str> = (entity.columns().iter())
            .filter(|c| c.required && get(c.name).is_none())
            .map(|c| c.name)
            .collect();
        if !absent.is_empty() {
            return Err(missing(
                &absent,
                " (rows other than deletes carry the full image)",
            ));
        }
    }

    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let name = field.name().as_str();
        let Some(array) = get(name) else {
            // An optional column left out: null, or its default, in rows with an image.
            let default = (entity.columns().iter())
                .find(|c| c.name == name)
                .and_then(|c| c.default);
            let column: ArrayRef = match default {
                Some(value) => Arc::new(arrow::array::StringArray::from_iter(
                    is_delete.iter().map(|d| (!d).then_some(value)),
                )),
                None => new_null_array(field.data_type(), batch.num_rows()),
            };
            columns.push(column);
            continue;
        };
        let array = cast_column(file, name, &array, field.data_type())?;
        if let Some(row) = first_null(&array) {
            let is_key = entity.key().contains(&name);
            if name == SEQ || name == TS {
                return Err(Violation::new(
                    ViolationCode::NullChangeField,
                    file,
                    format!("{name} is null; every change needs it"),
                )
                .at(Some(row), name));
            } else if is_key {
                return Err(
                    Violation::new(ViolationCode::NullKey, file, "key is null").at(Some(row), name)
                );
            }
        }
        columns.push(array);
    }

    check_ts(file, TS, &columns[2], true)?;
    for (i, c) in entity.columns().iter().enumerate() {
        let array = &columns[3 + i];
        match c.kind {
            Kind::Currency => check_currency(file, c, array, &is_delete)?,
            Kind::Date => check_dates(file, c.name, array)?,
            Kind::Timestamp => check_ts(file, c.name, array, false)?,
            Kind::Money => check_money(file, c.name, array)?,
            Kind::Rate => check_positive_rate(file, c.name, array, &is_delete)?,
            Kind::Text | Kind::Int32 => {}
        }
        if c.name == "amount" && entity.forbids_negative_amount() {
            check_non_negative(file, array, &is_delete)?;
        }
    }

    if entity == Entity::Invoices {
        due_on_receipt(&target, &mut columns);
    }

    // Unknown extra columns are kept, as they are, after the contract's.
    let mut fields: Vec<Arc<Field>> = target.fields().iter().cloned().collect();
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        if target.index_of(name).is_err() && !contract::is_change_column(name) {
            fields.push(Arc::new(Field::new(name, field.data_type().clone(), true)));
            columns.push(batch.column(i).clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| {
        Violation::new(
            ViolationCode::WrongType,
            file,
            format!("cannot assemble rows: {e}"),
        )
    })
}

/// An invoice without a due date (the column left out, or null) is due on receipt: on its
/// invoice date. Every rule downstream (aging, past due, the models) then has a date to work
/// from, and no open amount is counted in AR but in no aging bucket.
fn due_on_receipt(target: &Schema, columns: &mut [ArrayRef]) {
    let (Ok(due), Ok(issued)) = (target.index_of("due_date"), target.index_of("invoice_date"))
    else {
        return;
    };
    if columns[due].null_count() == 0 {
        return;
    }
    let has_due = arrow::compute::is_not_null(&columns[due]).expect("a boolean of every row");
    columns[due] = arrow::compute::kernels::zip::zip(&has_due, &columns[due], &columns[issued])
        .expect("two date columns of one batch");
}

/// Cast `array` to `to` if that loses nothing: every value must survive the cast and the
/// cast back unchanged. Otherwise a `wrong_type` violation names the first row that would not.
pub fn cast_column(
    file: &str,
    name: &str,
    array: &ArrayRef,
    to: &DataType,
) -> Result<ArrayRef, Violation> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    let wrong = |row: Option<usize>, detail: String| {
        Violation::new(ViolationCode::WrongType, file, detail).at(row, name)
    };
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    let from = array.data_type();
    let cast = cast_with_options(array, to, &safe)
        .map_err(|e| wrong(None, format!("type {from} cannot be cast to {to}: {e}")))?;
    let back = cast_with_options(&cast, from, &safe).map_err(|e| {
        wrong(
            None,
            format!("type {from} cannot be cast to {to} and back: {e}"),
        )
    })?;
    let changed = distinct(&back, array).map_err(|e| {
        wrong(
            None,
            format!("type {from} is not comparable after a cast to {to}: {e}"),
        )
    })?;
    if let Some(row) = changed.iter().position(|d| d == Some(true)) {
        let value = arrow::util::display::array_value_to_string(array, row).unwrap_or_default();
        return Err(wrong(
            Some(row),
            format!("value '{value}' of type {from} cannot be cast to {to} without loss"),
        ));
    }
    Ok(cast)
}

fn first_null(array: &ArrayRef) -> Option<usize> {
    if array.null_count() == 0 {
        return None;
    }
    (0..array.len()).find(|&i| array.is_null(i))
}

fn check_currency(
    file: &str,
    column: &contract::Column,
    array: &ArrayRef,
    is_delete: &[bool],
) -> Result<(), Violation> {
    let name = column.name;
    let values = array.as_string::<i32>();
    for (row, value) in values.iter().enumerate() {
        // An optional currency (a dispute's) may be left empty.
        if is_delete[row] || (value.is_none() && !column.required) {
            continue;
        }
        let ok = value.is_some_and(|v| v.len() == 3 && v.bytes().all(|b| b.is_ascii_uppercase()));
        if !ok {
            let found = value.map_or("null".to_string(), |v| format!("\"{v}\""));
            return Err(Violation::new(
                ViolationCode::BadCurrency,
                file,
                format!("currency {found} is not an ISO 4217 code (three capital letters)"),
            )
            .at(Some(row), name));
        }
    }
    Ok(())
}

fn check_non_negative(file: &str, array: &ArrayRef, is_delete: &[bool]) -> Result<(), Violation> {
    let values = array.as_primitive::<Decimal128Type>();
    for (row, value) in values.iter().enumerate() {
        if let Some(v) = value
            && v < 0
            && !is_delete[row]
        {
            return Err(Violation::new(
                ViolationCode::NegativeAmount,
                file,
                format!(
                    "invoice amount {} is negative (credits are adjustments, not negative invoices)",
                    arrow::util::display::array_value_to_string(array, row).unwrap_or_default()
                ),
            )
            .at(Some(row), "amount"));
        }
    }
    Ok(())
}

fn out_of_range(file: &str, name: &str, row: usize, detail: String) -> Violation {
    Violation::new(ViolationCode::OutOfRange, file, detail).at(Some(row), name)
}

/// Dates between 1900-01-01 and 2199-12-31 (see [`contract::DATE_MIN_DAYS`]).
fn check_dates(file: &str, name: &str, array: &ArrayRef) -> Result<(), Violation> {
    let range = contract::DATE_MIN_DAYS..=contract::DATE_MAX_DAYS;
    let values = array.as_primitive::<Date32Type>();
    let bad = values
        .iter()
        .position(|d| d.is_some_and(|d| !range.contains(&d)));
    refuse_first(file, name, array, bad, |date| {
        format!("date {date} is outside 1900-01-01 to 2199-12-31")
    })
}

/// A violation (`out_of_range` unless `code` says otherwise) for row `bad` when there is
/// one, saying `why` of its value.
fn refuse_first(
    file: &str,
    name: &str,
    array: &ArrayRef,
    bad: Option<usize>,
    why: impl FnOnce(String) -> String,
) -> Result<(), Violation> {
    refuse_first_as(ViolationCode::OutOfRange, file, name, array, bad, why)
}

fn refuse_first_as(
    code: ViolationCode,
    file: &str,
    name: &str,
    array: &ArrayRef,
    bad: Option<usize>,
    why: impl FnOnce(String) -> String,
) -> Result<(), Violation> {
    let Some(row) = bad else {
        return Ok(());
    };
    let value = arrow::util::display::array_value_to_string(array, row).unwrap_or_default();
    Err(Violation::new(code, file, why(value)).at(Some(row), name))
}

/// Timestamps within the same dates; `_ts` (a commit time) also from 1970 to no later than a
/// day past now.
fn check_ts(file: &str, name: &str, array: &ArrayRef, commit: bool) -> Result<(), Violation> {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let (low, high) = if commit {
        let now = chrono::Utc::now().timestamp_micros();
        (
            contract::TS_MIN_MICROS,
            now.saturating_add(contract::TS_FUTURE_SLACK_MICROS),
        )
    } else {
        (
            contract::DATE_MIN_DAYS as i64 * MICROS_PER_DAY,
            (contract::DATE_MAX_DAYS as i64 + 1) * MICROS_PER_DAY - 1,
        )
    };
    let values = array.as_primitive::<TimestampMicrosecondType>();
    let bad =
        (values.iter().enumerate()).find(|(_, t)| t.is_some_and(|t| !(low..=high).contains(&t)));
    let Some((row, Some(micros))) = bad else {
        return Ok(());
    };
    let shown = chrono::DateTime::from_timestamp_micros(micros)
        .map_or(format!("{micros} µs"), |t| t.to_rfc3339());
    let rule = if commit {
        "a commit time must lie between 1970-01-01 and a day past now"
    } else {
        "timestamps must lie between 1900-01-01 and 2199-12-31"
    };
    Err(out_of_range(
        file,
        name,
        row,
        format!("{name} {shown} is out of range: {rule}"),
    ))
}

/// Amounts within ±999,999,999,999.99 (see [`contract::MONEY_MAX_CENTS`]).
fn check_money(file: &str, name: &str, array: &ArrayRef) -> Result<(), Violation> {
    let values = array.as_primitive::<Decimal128Type>();
    let bad = (values.iter()).position(|v| v.is_some_and(|v| v.abs() > contract::MONEY_MAX_CENTS));
    refuse_first(file, name, array, bad, |amount| {
        format!("amount {amount} is beyond ±999,999,999,999.99")
    })
}

/// FX rates above zero: a rate of 0 or below would turn balances into nothing or negatives.
fn check_positive_rate(
    file: &str,
    name: &str,
    array: &ArrayRef,
    is_delete: &[bool],
) -> Result<(), Violation> {
    let values = array.as_primitive::<Decimal128Type>();
    let bad = (values.iter().enumerate())
        .position(|(row, v)| !is_delete[row] && v.is_some_and(|v| v <= 0));
    refuse_first_as(
        ViolationCode::NonPositiveRate,
        file,
        name,
        array,
        bad,
        |rate| format!("rate {rate} is not above zero"),
    )
}

/// What every id arstream gives a recorded action starts with; an ERP feed row with such a key
/// is refused, so an action's id never collides with the ERP's.
pub const ACTION_ID_PREFIX: &str = "arstream:";

/// Refuse an ERP feed file whose keys use [`ACTION_ID_PREFIX`].
pub fn check_no_action_ids(
    entity: Entity,
    file: &str,
    batch: &RecordBatch,
) -> Result<(), Violation> {
    for name in entity.key() {
        let Some(array) = batch.column_by_name(name) else {
            continue;
        };
        let Some(ids) = array.as_string_opt::<i32>() else {
            continue;
        };
        let bad = ids
            .iter()
            .position(|id| id.is_some_and(|id| id.starts_with(ACTION_ID_PREFIX)));
        refuse_first_as(ViolationCode::ReservedId, file, name, array, bad, |id| {
            format!(
                "id {id} starts with '{ACTION_ID_PREFIX}', kept for the actions arstream records"
            )
        })?;
    }
    Ok(())
}
