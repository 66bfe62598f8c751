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

/// The values of a text column in any of Arrow's string layouts (`None` for other types),
/// read where they are: a column the reader decoded as views is never copied.
pub(super) fn text_values(array: &ArrayRef) -> Option<Box<dyn Iterator<Item = Option<&str>> + '_>> {
    match array.data_type() {
        DataType::Utf8 => Some(Box::new(array.as_string::<i32>().iter())),
        DataType::LargeUtf8 => Some(Box::new(array.as_string::<i64>().iter())),
        DataType::Utf8View => Some(Box::new(array.as_string_view().iter())),
        _ => None,
    }
}

/// `_seq` from a sequence written as text in any of Arrow's string layouts (`None` for other
/// types): 1 to 38 decimal digits (an empty or missing value is null, for validation to
/// name). The first other value is named with its row, as `what`.
pub(super) fn text_sequence(
    file: &str,
    name: &str,
    what: &str,
    array: &ArrayRef,
) -> Option<Result<arrow::array::Decimal128Array, Violation>> {
    let parsed = match array.data_type() {
        DataType::Utf8 => sequence_of(array.as_string::<i32>()),
        DataType::LargeUtf8 => sequence_of(array.as_string::<i64>()),
        DataType::Utf8View => sequence_of(array.as_string_view()),
        _ => return None,
    };
    Some(parsed.map_err(|(row, value)| {
        Violation::new(
            ViolationCode::WrongType,
            file,
            format!("{what} \"{value}\" is not a number of up to 38 digits"),
        )
        .at(Some(row), name)
    }))
}

/// The sequence numbers of a text column (a concrete layout, so that the loop over tens of
/// millions of values is compiled for it), or the first row that is not one, and its text.
fn sequence_of<'a, A>(text: A) -> Result<arrow::array::Decimal128Array, (usize, String)>
where
    A: arrow::array::ArrayAccessor<Item = &'a str>,
{
    let mut values = Vec::with_capacity(text.len());
    let mut valid = arrow::array::BooleanBufferBuilder::new(text.len());
    for row in 0..text.len() {
        let value = if text.is_valid(row) {
            text.value(row)
        } else {
            ""
        };
        // Exactly digits, the common case, before trimming; blank is null.
        let number = match digits(value) {
            Some(n) => Some(n),
            None => match value.trim() {
                "" => None,
                trimmed => Some(digits(trimmed).ok_or_else(|| (row, value.to_string()))?),
            },
        };
        values.push(number.unwrap_or(0));
        valid.append(number.is_some());
    }
    let nulls = arrow::buffer::NullBuffer::new(valid.finish());
    let seqs = arrow::array::Decimal128Array::new(values.into(), Some(nulls));
    Ok(seqs.with_precision_and_scale(38, 0).expect("38 digits"))
}

/// The number written by 1 to 38 decimal digits (and nothing else).
pub(super) fn digits(text: &str) -> Option<i128> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 38 {
        return None;
    }
    // The digits before the last multiple of eight one by one, then eight at a time in a u64
    // (what makes this several times faster than `parse` on DMS's 35-digit sequences).
    let (head, tail) = bytes.split_at(bytes.len() % 8);
    let mut n = 0i128;
    for &b in head {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i128::from(b - b'0');
    }
    for chunk in tail.chunks_exact(8) {
        n = n * 100_000_000 + i128::from(eight_digits(chunk.try_into().expect("8 bytes"))?);
    }
    Some(n)
}

/// Eight ASCII digits as their number, all at once (`None` when one is not a digit).
fn eight_digits(chunk: [u8; 8]) -> Option<u64> {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let v = u64::from_le_bytes(chunk);
    // Each byte 0x30..=0x39: its high nibble is 3, and still 3 after adding 6.
    if v & HIGH_NIBBLES != ZEROS || v.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES != ZEROS {
        return None;
    }
    // Pairs, then fours, then the eight (the first digit is the lowest byte).
    let v = v - ZEROS;
    let v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v * 100 + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((v * 10_000 + (v >> 32)) & 0xFFFF_FFFF)
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
    // The exact layout DMS writes, parsed by hand: a fifth of the time of a general parser,
    // which at tens of millions of changes is most of what reading DMS costs beyond Parquet.
    let fixed = match array.data_type() {
        _ if array.null_count() > 0 => None,
        DataType::Utf8 => fixed_layout_column(array.as_string::<i32>()),
        DataType::LargeUtf8 => fixed_layout_column(array.as_string::<i64>()),
        DataType::Utf8View => fixed_layout_column(array.as_string_view()),
        _ => None,
    };
    if let Some(micros) = fixed {
        let times = arrow::array::TimestampMicrosecondArray::from(micros).with_timezone("UTC");
        return Ok(Arc::new(times));
    }
    let text = cast_column(file, name, array, &DataType::Utf8)?;
    // Arrow's own parser next (a tenth of the time of parsing row by row); the rows are
    // parsed one by one only when it fails, to name the first one that is wrong.
    let strict = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    // Read as a time without zone (a `Z` or an offset is still applied), then marked UTC:
    // casting to a zone converts each row through the zone's rules, for nothing.
    let naive = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None);
    if let Ok(times) = arrow::compute::cast_with_options(&text, &naive, &strict) {
        let times = times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        return Ok(Arc::new(times.clone().with_timezone("UTC")));
    }
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

/// [`fixed_layout_micros`] of every value of a text column without nulls, or `None` when one
/// is in another layout.
fn fixed_layout_column<'a, A>(text: A) -> Option<Vec<i64>>
where
    A: arrow::array::ArrayAccessor<Item = &'a str>,
{
    (0..text.len())
        .map(|row| fixed_layout_micros(text.value(row)))
        .collect()
}

/// Microseconds since 1970 of `YYYY-MM-DD HH:MM:SS` with an optional fraction of up to six
/// digits, in UTC (`T` for the space and a final `Z` accepted); `None` for anything else.
fn fixed_layout_micros(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z').unwrap_or(text).as_bytes();
    if text.len() < 19 || !matches!(text[10], b' ' | b'T') {
        return None;
    }
    let separators = text[4] == b'-' && text[7] == b'-' && text[13] == b':' && text[16] == b':';
    // Every other place of the first 19 a digit (one test of them all, no branch per place).
    const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    let not_digits = (DIGITS.iter()).fold(false, |bad, &i| bad | (text[i].wrapping_sub(b'0') > 9));
    if !separators || not_digits {
        return None;
    }
    let digit = |i: usize| i64::from(text[i] - b'0');
    let pair = |i: usize| digit(i) * 10 + digit(i + 1);
    let (year, month, day) = (pair(0) * 100 + pair(2), pair(5), pair(8));
    let (hour, minute, second) = (pair(11), pair(14), pair(17));
    let micros = match &text[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=6).contains(&fraction.len()) => {
            let mut n = 0;
            for &b in fraction {
                if !b.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + i64::from(b - b'0');
            }
            n * 10i64.pow(6 - fraction.len() as u32)
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMicrosecondArray};

    #[test]
    fn digits_read_every_length_and_refuse_any_other_byte() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for len in 1..=38 {
            for _ in 0..200 {
                let text: String = (0..len)
                    .map(|_| char::from(b'0' + (next() % 10) as u8))
                    .collect();
                assert_eq!(digits(&text), text.parse::<i128>().ok(), "{text}");
                // Any byte that is not a digit, anywhere, and the number is refused.
                let at = (next() % len as u64) as usize;
                for bad in [b'/', b':', b' ', b'a', 0xC3] {
                    let mut bytes = text.clone().into_bytes();
                    bytes[at] = bad;
                    let bad = String::from_utf8_lossy(&bytes).into_owned();
                    assert_eq!(digits(&bad), None, "{bad}");
                }
            }
        }
        assert_eq!(digits(""), None);
        assert_eq!(digits(&"9".repeat(39)), None);
        assert_eq!(digits(&"9".repeat(38)), Some(10i128.pow(38) - 1));
    }

    #[test]
    fn a_text_sequence_is_null_when_blank_and_names_the_first_wrong_row() {
        let text: ArrayRef = Arc::new(arrow::array::StringViewArray::from(vec![
            Some("00000000000000000000000000000000042"),
            Some(" 7 "),
            Some(""),
            None,
        ]));
        let seqs = text_sequence("f.parquet", "seq", "change sequence", &text);
        let seqs = seqs.unwrap().unwrap();
        assert_eq!((seqs.value(0), seqs.value(1)), (42, 7));
        assert_eq!(seqs.null_count(), 2);
        let wrong: ArrayRef = Arc::new(StringArray::from(vec!["1", "2", "3x"]));
        let violation = text_sequence("f.parquet", "seq", "change sequence", &wrong);
        let violation = violation.unwrap().unwrap_err();
        assert_eq!(
            (violation.row, violation.column.as_deref()),
            (Some(3), Some("seq"))
        );
        assert!(violation.detail.contains("\"3x\""), "{violation:?}");
        let number: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1]));
        assert!(text_sequence("f.parquet", "seq", "change sequence", &number).is_none());
    }

    #[test]
    fn commit_times_read_dms_text_and_name_the_first_wrong_row() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("2025-01-02 03:04:05.123456"),
            Some("2025-01-02T03:04:05Z"),
            None,
        ]));
        let times = commit_times("f.parquet", "ar_timestamp", &text).unwrap();
        let times = times
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(times.value(0), 1_735_787_045_123_456);
        assert_eq!(times.value(1), 1_735_787_045_000_000);
        assert!(times.is_null(2));
        // The hand parser agrees with chrono, and leaves what it does not know to the others.
        for text in [
            "2025-01-02 03:04:05.123456",
            "1999-12-31T23:59:59.5Z",
            "2024-02-29 00:00:00",
        ] {
            let chrono = chrono::NaiveDateTime::parse_from_str(
                &text.replace('T', " ").replace('Z', ""),
                "%Y-%m-%d %H:%M:%S%.f",
            );
            let want = chrono.unwrap().and_utc().timestamp_micros();
            assert_eq!(fixed_layout_micros(text), Some(want), "{text}");
        }
        for text in [
            "2025-02-30 00:00:00",
            "2025-01-02 03:04",
            "2025-01-02 03:04:05+02:00",
        ] {
            assert_eq!(fixed_layout_micros(text), None, "{text}");
        }
        // Every day of two centuries, at some time of it.
        let start = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        for n in 0..73_000 {
            let at = (start + chrono::Days::new(n)).and_hms_micro_opt(
                (n % 24) as u32,
                (n % 60) as u32,
                (n * 7 % 60) as u32,
                (n * 7919 % 1_000_000) as u32,
            );
            let at = at.unwrap();
            let text = at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            assert_eq!(
                fixed_layout_micros(&text),
                Some(at.and_utc().timestamp_micros())
            );
        }
        let offset: ArrayRef = Arc::new(StringArray::from(vec!["2025-01-02 05:04:05+02:00"]));
        let times = commit_times("f.parquet", "ar_timestamp", &offset).unwrap();
        assert_eq!(
            times
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            1_735_787_045_000_000
        );

        let wrong: ArrayRef = Arc::new(StringArray::from(vec!["2025-01-02 03:04:05", "yesterday"]));
        let violation = commit_times("f.parquet", "ar_timestamp", &wrong).unwrap_err();
        assert_eq!(violation.column.as_deref(), Some("ar_timestamp"));
        assert!(violation.detail.contains("\"yesterday\""), "{violation:?}");
        assert_eq!(violation.row, Some(2));
    }
}
