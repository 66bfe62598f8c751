//! AWS DMS full load and ongoing replication to S3 as Parquet.
//!
//! A table's files are under `<schema>/<table>/`: the full load as `LOAD*.parquet` (no `Op`
//! column, unless the task sets `IncludeOpForFullLoad`), the changes after it in files named
//! by time, in dated folders when `DatePartitionEnabled` is on (`2026/11/23/`, `20261123/`,
//! `2026-11-23/`, …), each row with `Op` (`I`, `U`, `D`) first. The task's table mapping adds
//! the commit time (`TimestampColumnName`, a string `yyyy-MM-dd HH:mm:ss.SSSSSS`) and the
//! change sequence (`$AR_H_CHANGE_SEQ`, 35 digits: time to the hundredth then a 19-digit change
//! number, ordered as text); their default names here are `ar_timestamp` and `ar_change_seq`.
//!
//! Full-load rows become snapshot reads (`r`) at `_seq` 0, before every change of their table;
//! a change's `_seq` is its 35-digit sequence, whole; a delete carries the row before it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Decimal128Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;

use super::mapping::{ChangeColumns, contract_columns, find_column};
use super::translated::{
    ChangeNames, Translated, assemble, commit_times, text_sequence, text_values,
};
use crate::feed::contract::{self, Entity};
use crate::feed::validate::{Violation, ViolationCode, cast_column};

/// The columns' default names.
const OP_COLUMN: &str = "Op";
const SEQ_COLUMN: &str = "ar_change_seq";
const TS_COLUMN: &str = "ar_timestamp";

/// The table a file at `relative` belongs to: `<schema>/<table>/…`, or `<table>/…` when the
/// feed root is one schema's folder (the second part then being a date folder or the file).
pub fn table_of(relative: &str) -> Option<String> {
    if !relative.ends_with(".parquet") {
        return None;
    }
    let parts: Vec<&str> = relative.split('/').collect();
    let is_date = |p: &str| p.chars().all(|c| c.is_ascii_digit() || c == '-');
    match parts.as_slice() {
        [_, table, _, ..] if !is_date(table) => Some(table.to_string()),
        [table, _, ..] => Some(table.to_string()),
        _ => None,
    }
}

/// Whether `column` is one of the change columns (named by the mapping's `[changes]`, else
/// DMS's defaults), which this reader parses and never passes on.
pub fn is_change_column(column: &str, names: Option<&ChangeColumns>) -> bool {
    let names = ChangeNames::of(names, [OP_COLUMN, SEQ_COLUMN, TS_COLUMN]);
    [&names.op, &names.seq, &names.ts]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(column))
}

/// Whether a file is part of the full load (`LOAD00000001.parquet`).
fn is_full_load(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.to_ascii_uppercase().starts_with("LOAD")
}

/// A decoded DMS file as contract changes.
pub fn to_contract(
    entity: Entity,
    file: &str,
    batch: &RecordBatch,
    mapped: Option<&BTreeMap<String, String>>,
    names: Option<&ChangeColumns>,
) -> Result<Translated, Violation> {
    let names = ChangeNames::of(names, [OP_COLUMN, SEQ_COLUMN, TS_COLUMN]);
    let rows = batch.num_rows();
    let full_load = is_full_load(file);

    let required: &[&String] = if full_load {
        &[]
    } else {
        &[&names.op, &names.seq, &names.ts]
    };
    let missing = ChangeNames::missing(batch, required);
    if !missing.is_empty() {
        return Err(Violation::new(
            ViolationCode::MissingColumn,
            file,
            format!(
                "DMS change file without column{} {}: give the task's table mapping the \
                 timestamp column (TimestampColumnName) and $AR_H_CHANGE_SEQ, or name them in \
                 the mapping's [changes] (docs/change-feed.md)",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", ")
            ),
        ));
    }

    let (op, seq): (ArrayRef, ArrayRef) = if full_load {
        let reads: StringArray = (0..rows).map(|_| Some("r")).collect();
        let zeros = Decimal128Array::from(vec![0i128; rows]).with_precision_and_scale(38, 0);
        (Arc::new(reads), Arc::new(zeros.expect("38 digits")))
    } else {
        let (_, ops) = find_column(batch, &names.op).expect("checked above");
        let ops = match text_values(ops) {
            Some(_) => ops.clone(),
            None => cast_column(file, &names.op, ops, &DataType::Utf8)?,
        };
        let (_, seqs) = find_column(batch, &names.seq).expect("checked above");
        (op_codes(&ops), sequence(file, &names.seq, seqs)?)
    };
    let ts = match find_column(batch, &names.ts) {
        Some((_, times)) => commit_times(file, &names.ts, times)?,
        // A full load without the timestamp column: its rows were true before any change.
        None => Arc::new(TimestampMicrosecondArray::from(vec![0; rows]).with_timezone("UTC")),
    };

    let technical = [&names.op, &names.seq, &names.ts].map(String::as_str);
    let (data, origins) = contract_columns(entity, file, batch, mapped, &technical)?;
    assemble(file, &names, [op, seq, ts], (data, origins))
}

/// `_op` from DMS's `I`, `U`, `D` (anything else is left as it is, for validation to name).
fn op_codes(ops: &ArrayRef) -> ArrayRef {
    let mut codes = arrow::array::StringBuilder::with_capacity(ops.len(), ops.len());
    for op in text_values(ops).expect("text") {
        match op {
            Some("I") => codes.append_value("c"),
            Some("U") => codes.append_value("u"),
            Some("D") => codes.append_value("d"),
            Some(other) => codes.append_value(other),
            None => codes.append_null(),
        }
    }
    Arc::new(codes.finish())
}

/// `_seq` from the change sequence: digits as text (up to 38, ordered as numbers, which for
/// DMS's fixed 35 digits is the order as text), or an integer column.
fn sequence(file: &str, name: &str, array: &ArrayRef) -> Result<ArrayRef, Violation> {
    match text_sequence(file, name, "change sequence", array) {
        Some(seqs) => Ok(Arc::new(seqs?)),
        None => cast_column(file, name, array, &contract::SEQ_TYPE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::format::translated::digits;
    use arrow::array::AsArray;

    #[test]
    fn a_file_belongs_to_the_table_folder_under_its_schema() {
        assert_eq!(
            table_of("dbo/invoices/LOAD00000001.parquet").as_deref(),
            Some("invoices")
        );
        assert_eq!(
            table_of("dbo/invoices/2026/11/23/20261123-101112345.parquet").as_deref(),
            Some("invoices")
        );
        // The feed root at one schema's folder.
        assert_eq!(
            table_of("invoices/20261123/x.parquet").as_deref(),
            Some("invoices")
        );
        assert_eq!(
            table_of("invoices/LOAD00000001.parquet").as_deref(),
            Some("invoices")
        );
        assert_eq!(table_of("dbo/invoices/x.csv"), None);
        assert!(is_full_load("dbo/invoices/LOAD00000001.parquet"));
        assert!(!is_full_load("dbo/invoices/2026/11/23/20261123-1.parquet"));
    }

    #[test]
    fn a_35_digit_sequence_is_kept_whole_and_a_bad_one_is_named() {
        let seqs: ArrayRef = Arc::new(StringArray::from(vec![
            "20261123101112340000000000000000021",
            "20261123101112340000000000000000022",
        ]));
        let out = sequence("f.parquet", "ar_change_seq", &seqs).unwrap();
        let out = out.as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(out.value(0), 20261123101112340000000000000000021);
        assert!(out.value(0) < out.value(1));
        assert_eq!(digits("7"), Some(7));
        assert_eq!(digits("12345678901234567890"), Some(12345678901234567890));
        assert_eq!(digits(&"9".repeat(38)), Some(10i128.pow(38) - 1));
        assert_eq!(digits(&"9".repeat(39)), None);
        assert_eq!(digits("12a"), None);
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["2026-11-23"]));
        let err = sequence("f.parquet", "ar_change_seq", &bad).unwrap_err();
        assert_eq!(
            err.reason(),
            "f.parquet, row 1, column 'ar_change_seq': change sequence \"2026-11-23\" is not a number of up to 38 digits"
        );
    }
}
