//! What PostgreSQL clients ask the server about itself at start, answered as PostgreSQL 16
//! would: `version()` (SQLAlchemy reads the version from it), `current_setting(name)`
//! (Metabase asks the time zone, Grafana the version number), and the probes of SQLAlchemy and
//! psycopg (`pg_get_serial_sequence`, `to_regtype`, `pg_is_in_recovery`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, cast::as_string_array};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// The PostgreSQL version the server speaks as (pgwire's protocol 3, PostgreSQL 16's catalog).
pub const SERVER_VERSION: &str = "16.6";

/// The settings `current_setting` knows; others are NULL.
fn setting(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "server_version" => SERVER_VERSION,
        "server_version_num" => "160006",
        "timezone" => "UTC",
        "standard_conforming_strings" => "on",
        "server_encoding" | "client_encoding" => "UTF8",
        "datestyle" => "ISO, MDY",
        "integer_datetimes" => "on",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "max_identifier_length" => "63",
        "search_path" => "public",
        _ => return None,
    })
}

/// `version()` and `current_setting(text)`.
pub fn all() -> Vec<ScalarUDF> {
    let version = create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_: &[ColumnarValue]| {
            let text = format!(
                "PostgreSQL {SERVER_VERSION} (arstream {}, Apache DataFusion 55)",
                env!("CARGO_PKG_VERSION")
            );
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text))))
        }),
    );
    let current_setting = create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(current_setting),
    );
    // No sequences, no standby, and no types looked up by name: SQLAlchemy's and psycopg's
    // probes get PostgreSQL's answers for those.
    let null_of = |name: &str, args: Vec<DataType>, out: DataType| {
        let value = ScalarValue::try_from(&out).unwrap_or(ScalarValue::Null);
        create_udf(
            name,
            args,
            out,
            Volatility::Stable,
            Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()))),
        )
    };
    let serial_sequence = null_of(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
    );
    let to_regtype = null_of("to_regtype", vec![DataType::Utf8], DataType::Int32);
    let in_recovery = create_udf(
        "pg_is_in_recovery",
        vec![],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))))
        }),
    );
    vec![
        version,
        current_setting,
        serial_sequence,
        to_regtype,
        in_recovery,
    ]
}

fn current_setting(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    match &args[0] {
        ColumnarValue::Scalar(value) => {
            let name = match value {
                ScalarValue::Utf8(name)
                | ScalarValue::LargeUtf8(name)
                | ScalarValue::Utf8View(name) => name.as_deref(),
                _ => None,
            };
            let answer = name.and_then(setting).map(str::to_string);
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(answer)))
        }
        ColumnarValue::Array(names) => {
            let names = as_string_array(names)?;
            let answers: StringArray = names.iter().map(|n| n.and_then(setting)).collect();
            Ok(ColumnarValue::Array(Arc::new(answers) as ArrayRef))
        }
    }
}
