//! Debezium change events, flattened by the `ExtractNewRecordState` transform
//! (`add.fields=op,lsn,source.ts_ms`, `delete.tombstone.handling.mode=rewrite`) and written
//! by Kafka Connect's S3 sink as Parquet:
//! `topics/<server>.<schema>.<table>/partition=N/<topic>+N+<offset>.parquet`.
//!
//! Each row is the record's state after the change, with `__op` (`r` snapshot read, `c`, `u`,
//! `d`), `__lsn` (the source log position: the order of changes), `__source_ts_ms` (the commit
//! time, ms since the epoch) and `__deleted` (`true` on a delete, whose row is the before
//! image). Those become `_op`, `_seq` and `_ts`; the record's columns are the contract's.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Int64Type};

use super::mapping::{ChangeColumns, contract_columns, find_column};
use super::translated::{ChangeNames, Translated, assemble};
use crate::feed::contract::{self, Entity};
use crate::feed::validate::{Violation, ViolationCode, cast_column};

/// The technical columns' default names.
const OP_COLUMN: &str = "__op";
const SEQ_COLUMN: &str = "__lsn";
const TS_COLUMN: &str = "__source_ts_ms";
const DELETED_COLUMN: &str = "__deleted";

/// The topic a file at `relative` belongs to: `topics/<topic>/…/*.parquet`, or
/// `<topic>/…/*.parquet` when the feed root is the sink's `topics` folder itself.
pub fn topic_of(relative: &str) -> Option<String> {
    if !relative.ends_with(".parquet") {
        return None;
    }
    let parts: Vec<&str> = relative.split('/').collect();
    match parts.as_slice() {
        ["topics", topic, _, ..] => Some(topic.to_string()),
        [topic, _, ..] => Some(topic.to_string()),
        _ => None,
    }
}

/// A decoded file of Debezium events as contract changes.
pub fn to_contract(
    entity: Entity,
    file: &str,
    batch: &arrow::array::RecordBatch,
    mapped: Option<&BTreeMap<String, String>>,
    names: Option<&ChangeColumns>,
) -> Result<Translated, Violation> {
    let deleted_name = (names.and_then(|n| n.deleted.clone())).unwrap_or(DELETED_COLUMN.into());
    let names = ChangeNames::of(names, [OP_COLUMN, SEQ_COLUMN, TS_COLUMN]);

    let missing = ChangeNames::missing(batch, &[&names.op, &names.seq, &names.ts]);
    if !missing.is_empty() {
        return Err(Violation::new(
            ViolationCode::MissingColumn,
            file,
            format!(
                "Debezium column{} {} missing: flatten the events with ExtractNewRecordState and \
                 add.fields=op,lsn,source.ts_ms, or name the columns in the mapping's [changes] \
                 (docs/change-feed.md)",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", ")
            ),
        ));
    }
    let column = |n: &str| {
        find_column(batch, n)
            .map(|(_, a)| a.clone())
            .expect("checked above")
    };

    let ops = cast_column(file, &names.op, &column(&names.op), &DataType::Utf8)?;
    let deleted = match find_column(batch, &deleted_name) {
        Some((_, array)) => Some(cast_column(file, &deleted_name, array, &DataType::Utf8)?),
        None => None,
    };
    let op: ArrayRef = Arc::new(op_codes(ops.as_string::<i32>(), deleted.as_ref()));
    let seq = cast_column(file, &names.seq, &column(&names.seq), &contract::SEQ_TYPE)?;
    let ts = commit_times(file, &names.ts, &column(&names.ts))?;

    let technical = [&names.op, &names.seq, &names.ts, &deleted_name].map(String::as_str);
    let (data, origins) = contract_columns(entity, file, batch, mapped, &technical)?;
    assemble(file, &names, [op, seq, ts], (data, origins))
}

/// `_op` from `__op`, a rewritten tombstone (`__deleted` true) being a delete whatever its op.
fn op_codes(ops: &arrow::array::StringArray, deleted: Option<&ArrayRef>) -> StringArray {
    let deleted = deleted.map(|d| d.as_string::<i32>().clone());
    (0..ops.len())
        .map(|i| {
            let is_deleted = (deleted.as_ref())
                .is_some_and(|d| d.is_valid(i) && d.value(i).eq_ignore_ascii_case("true"));
            if is_deleted {
                Some("d")
            } else {
                ops.is_valid(i).then(|| ops.value(i))
            }
        })
        .collect()
}

/// `_ts` from the source's commit time: milliseconds since the epoch (Debezium's
/// `source.ts_ms`), or a timestamp.
fn commit_times(file: &str, name: &str, array: &ArrayRef) -> Result<ArrayRef, Violation> {
    if matches!(array.data_type(), DataType::Timestamp(..)) {
        return cast_column(file, name, array, &contract::timestamp_utc());
    }
    let millis = cast_column(file, name, array, &DataType::Int64)?;
    let millis = millis.as_primitive::<Int64Type>();
    let micros: TimestampMicrosecondArray = millis
        .iter()
        .map(|ms| ms.map(|ms| ms.saturating_mul(1000)))
        .collect();
    Ok(Arc::new(micros.with_timezone("UTC")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_belongs_to_the_topic_folder_it_is_in() {
        let file =
            "topics/erp.public.invoices/partition=0/erp.public.invoices+0+0000000000.parquet";
        assert_eq!(topic_of(file).as_deref(), Some("erp.public.invoices"));
        assert_eq!(
            topic_of("erp.public.invoices/partition=1/x.parquet").as_deref(),
            Some("erp.public.invoices")
        );
        assert_eq!(
            topic_of("topics/erp.public.invoices/partition=0/x.json"),
            None
        );
        assert_eq!(topic_of("x.parquet"), None);
    }
}
