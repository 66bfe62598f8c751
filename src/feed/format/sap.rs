//! SAP replication flows (SAP Datasphere) to an object store, as Parquet.
//!
//! A table's files are under `<TABLE>/initial/` (the initial load, `part-*.parquet`, complete
//! once the flow writes `_SUCCESS` there: read only then) and `<TABLE>/delta/[<date>/]`
//! (the changes after it). Each row has `__operation_type`, `__sequence_number` and
//! `__timestamp`:
//!
//! | `__operation_type` | meaning | read as |
//! |---|---|---|
//! | `L` | initial load | `r` |
//! | `I`, `U`, `A` | insert, update, upsert | `c`, `u`, `u` |
//! | `D` | delete, with the row | `d` |
//! | `X` | delete, key columns only | `d` |
//! | `B` | the row before an update | skipped: the update carries the row after |
//! | `M` | archiving in the source | skipped: archived documents stay receivables |
//!
//! `_seq` is `__sequence_number` when the source has one; ABAP sources leave it empty, and
//! changes are then ordered by `__timestamp`, then by row within their file:
//! `_seq = µs since the epoch × 2^24 + row`. Delivery is at least once: a change delivered
//! twice carries the same image, so the second changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, RecordBatch, StringArray,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, TimestampMicrosecondType};

use super::mapping::{ChangeColumns, contract_columns, find_column};
use super::translated::{ChangeNames, Translated, assemble, commit_times, text_sequence};
use crate::feed::contract::{self, Entity};
use crate::feed::validate::{Violation, ViolationCode, cast_column};

/// The columns' default names.
const OP_COLUMN: &str = "__operation_type";
const SEQ_COLUMN: &str = "__sequence_number";
const TS_COLUMN: &str = "__timestamp";
/// Rows of one file ordered by row when they share a timestamp: 2^24 of them.
const ROW_BITS: u32 = 24;

/// The table a file at `relative` belongs to: the folder before `initial` or `delta`.
pub fn table_of(relative: &str) -> Option<String> {
    if !relative.ends_with(".parquet") {
        return None;
    }
    let parts: Vec<&str> = relative.split('/').collect();
    let at = parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("initial") || p.eq_ignore_ascii_case("delta"))?;
    (at > 0).then(|| parts[at - 1].to_string())
}

/// The folder whose `_SUCCESS` marks a file as complete, if it needs one: an initial load's.
pub fn needs_marker(relative: &str) -> Option<String> {
    let parts: Vec<&str> = relative.split('/').collect();
    let at = parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("initial"))?;
    Some(parts[..=at].join("/"))
}

/// A decoded SAP file as contract changes.
pub fn to_contract(
    entity: Entity,
    file: &str,
    batch: &RecordBatch,
    mapped: Option<&BTreeMap<String, String>>,
    names: Option<&ChangeColumns>,
) -> Result<Translated, Violation> {
    let names = ChangeNames::of(names, [OP_COLUMN, SEQ_COLUMN, TS_COLUMN]);
    let missing = ChangeNames::missing(batch, &[&names.op, &names.ts]);
    if !missing.is_empty() {
        return Err(Violation::new(
            ViolationCode::MissingColumn,
            file,
            format!(
                "SAP replication flow column{} {} missing: if the flow names them otherwise, \
                 name them in the mapping's [changes] (docs/change-feed.md)",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", ")
            ),
        ));
    }
    let (_, ops) = find_column(batch, &names.op).expect("checked above");
    let ops = cast_column(file, &names.op, ops, &DataType::Utf8)?;
    let ops = ops.as_string::<i32>().clone();
    // Before images and archiving rows are not changes of the current state.
    let keep: BooleanArray = ops
        .iter()
        .map(|op| Some(!matches!(op, Some("B" | "M"))))
        .collect();
    let rows: Vec<i128> = (0..batch.num_rows() as i128)
        .filter(|&r| keep.value(r as usize))
        .collect();
    let filter = |array: &ArrayRef| arrow::compute::filter(array, &keep).expect("same rows");
    let kept = filter_record_batch(batch, &keep).expect("same rows");

    let codes: StringArray = filter(&(Arc::new(ops) as ArrayRef))
        .as_string::<i32>()
        .iter()
        .map(|op| {
            op.map(|op| match op {
                "L" => "r",
                "I" => "c",
                "U" | "A" => "u",
                "D" | "X" => "d",
                other => other,
            })
        })
        .collect();
    let (_, times) = find_column(&kept, &names.ts).expect("checked above");
    let ts = commit_times(file, &names.ts, times)?;
    let seq = sequence(file, &names.seq, &kept, &ts, &rows)?;

    let technical = [&names.op, &names.seq, &names.ts].map(String::as_str);
    let (data, origins) = contract_columns(entity, file, &kept, mapped, &technical)?;
    assemble(file, &names, [Arc::new(codes), seq, ts], (data, origins))
}

/// `_seq`: `__sequence_number` where it is given, else the commit time in µs, then the
/// row's place in the file (`rows`: each kept row's index in the file).
fn sequence(
    file: &str,
    name: &str,
    batch: &RecordBatch,
    ts: &ArrayRef,
    rows: &[i128],
) -> Result<ArrayRef, Violation> {
    let given = match find_column(batch, name) {
        Some((_, array)) if array.data_type().is_integer() => {
            let wide = cast_column(file, name, array, &contract::SEQ_TYPE)?;
            Some(
                wide.as_primitive::<arrow::datatypes::Decimal128Type>()
                    .clone(),
            )
        }
        Some((_, array)) => {
            let text = cast_column(file, name, array, &DataType::Utf8)?;
            let seqs = text_sequence(file, name, "sequence number", &text);
            Some(seqs.expect("cast to text")?)
        }
        None => None,
    };
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let seqs: Decimal128Array = (0..batch.num_rows())
        .map(|i| match &given {
            Some(given) if given.is_valid(i) => Some(given.value(i)),
            _ => ts
                .is_valid(i)
                .then(|| ((ts.value(i) as i128) << ROW_BITS) + rows[i]),
        })
        .collect();
    Ok(Arc::new(
        seqs.with_precision_and_scale(38, 0).expect("38 digits"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_belongs_to_the_table_before_initial_or_delta() {
        assert_eq!(
            table_of("BSID/initial/part-0.parquet").as_deref(),
            Some("BSID")
        );
        assert_eq!(
            table_of("flows/BSID/delta/2026-11-23/part-1.parquet").as_deref(),
            Some("BSID")
        );
        assert_eq!(table_of("BSID/part-0.parquet"), None);
        assert_eq!(
            needs_marker("BSID/initial/part-0.parquet").as_deref(),
            Some("BSID/initial")
        );
        assert_eq!(needs_marker("BSID/delta/part-0.parquet"), None);
    }
}
