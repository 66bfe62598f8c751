//! A source file's rows made into contract changes: the change columns from a format's
//! technical ones, the data columns from the mapping, and where each came from.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;

use super::mapping;
use crate::feed::validate::{Violation, ViolationCode, cast_column};

/// A file's rows as contract changes, with where each contract column came from in the
/// source (so that a violation can name the source's column).
#[derive(Debug)]
pub struct Translated {
    pub batch: RecordBatch,
    /// Where each contract column renamed or made came from.
    pub origins: mapping::Origins,
}

impl Translated {
    /// A violation found on the translated rows, told in the source's terms.
    pub fn in_source_terms(&self, mut violation: Violation) -> Violation {
        let column = violation.column.as_deref();
        if let Some((_, source)) = self
            .origins
            .iter()
            .find(|(c, _)| Some(c.as_str()) == column)
        {
            violation.source_column = Some(source.clone());
        }
        violation
    }
}

/// The names of a format's technical columns: the mapping's `[changes]`, else the format's.
pub(super) struct ChangeNames {
    pub op: String,
    pub seq: String,
    pub ts: String,
}

impl ChangeNames {
    pub fn of(configured: Option<&mapping::ChangeColumns>, defaults: [&str; 3]) -> ChangeNames {
        let pick = |c: Option<&String>, d: &str| c.cloned().unwrap_or_else(|| d.to_string());
        ChangeNames {
            op: pick(configured.and_then(|c| c.op.as_ref()), defaults[0]),
            seq: pick(configured.and_then(|c| c.seq.as_ref()), defaults[1]),
            ts: pick(configured.and_then(|c| c.ts.as_ref()), defaults[2]),
        }
    }

    /// Those of `names` a batch lacks, quoted for a message.
    pub fn missing(batch: &RecordBatch, names: &[&String]) -> Vec<String> {
        (names.iter())
            .filter(|n| mapping::find_column(batch, n).is_none())
            .map(|n| format!("'{n}'"))
            .collect()
    }
}

/// The contract's change columns made from a source's technical ones, then its data columns:
/// a batch ready for validation, with where each column came from.
pub(super) fn assemble(
    file: &str,
    names: &ChangeNames,
    [op, seq, ts]: [arrow::array::ArrayRef; 3],
    (data, mut origins): (mapping::Columns, mapping::Origins),
) -> Result<Translated, Violation> {
    use crate::feed::contract::{self, OP, SEQ, TS};
    use arrow::datatypes::{DataType, Field};
    origins.extend([
        (OP.to_string(), names.op.clone()),
        (SEQ.to_string(), names.seq.clone()),
        (TS.to_string(), names.ts.clone()),
    ]);
    let mut fields = vec![
        Arc::new(Field::new(OP, DataType::Utf8, true)),
        Arc::new(Field::new(SEQ, contract::SEQ_TYPE, true)),
        Arc::new(Field::new(TS, contract::timestamp_utc(), true)),
    ];
    let mut columns = vec![op, seq, ts];
    for (field, array) in data {
        fields.push(field);
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)
        .map_err(|e| {
            Violation::new(
                crate::feed::validate::ViolationCode::WrongType,
                file,
                e.to_string(),
            )
        })?;
    Ok(Translated { batch, origins })
}

/// `_ts` from a source's commit time: a timestamp, or text `YYYY-MM-DD HH:MM:SS[.ffffff]` in
/// UTC (a `T` between date and time, and a trailing `Z`, accepted): DMS's and SAP's.
pub(super) fn commit_times(
    file: &str,
    name: &str,
    array: &ArrayRef,
) -> Result<ArrayRef, Violation> {
    if matches!(array.data_type(), DataType::Timestamp(..)) {
        return cast_column(file, name, array, &crate::feed::contract::timestamp_utc());
    }
    let text = cast_column(file, name, array, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let mut micros = Vec::with_capacity(text.len());
    for (row, value) in text.iter().enumerate() {
        let Some(value) = value else {
            micros.push(None);
            continue;
        };
        let v = value.trim().replace('T', " ");
        match chrono::NaiveDateTime::parse_from_str(v.trim_end_matches('Z'), "%Y-%m-%d %H:%M:%S%.f")
        {
            Ok(t) => micros.push(Some(t.and_utc().timestamp_micros())),
            Err(_) => {
                return Err(Violation::new(
                    ViolationCode::WrongType,
                    file,
                    format!("commit time \"{value}\" is not YYYY-MM-DD HH:MM:SS.ffffff"),
                )
                .at(Some(row), name));
            }
        }
    }
    Ok(Arc::new(
        arrow::array::TimestampMicrosecondArray::from(micros).with_timezone("UTC"),
    ))
}
