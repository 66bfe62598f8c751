//! The rows outreach decides on: `outreach_invoices` (or `outreach_candidates`, when a
//! trigger reads the risk segment), with one flag per rule saying whether its trigger holds.
//! The triggers are the policy's SQL, run by the engine in one pass; Rust only reads the rows.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use chrono::NaiveDate;

use super::OutreachError;
use super::policy::Policy;
use crate::engine::Engine;

/// The view without the risk model's columns, and the one with them.
const PLAIN_VIEW: &str = "outreach_invoices";
const RISK_VIEW: &str = "outreach_candidates";

/// One invoice, with its customer's contacts and which rules' triggers hold for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub invoice_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub language: Option<String>,
    pub country: Option<String>,
    pub currency: String,
    pub invoice_date: NaiveDate,
    pub due_date: NaiveDate,
    pub amount: f64,
    pub open_amount: f64,
    /// In the reporting currency; none without a rate.
    pub open_amount_rc: Option<f64>,
    pub days_past_due: i64,
    pub collector_id: Option<String>,
    pub collector_name: Option<String>,
    pub collector_email: Option<String>,
    /// Why nothing may go out about it (see `queries/outreach_invoices.sql`).
    pub suppressed: Option<String>,
    /// Per rule of the policy, in order: whether its trigger holds.
    pub triggered: Vec<bool>,
}

/// A trigger as an expression: on lines of its own, so that a trailing `-- comment` ends
/// there.
fn predicate(trigger: &str) -> String {
    format!("coalesce((\n{trigger}\n), false)")
}

/// The query that reads the candidates of `policy`: the view the triggers need, each trigger
/// as a column. Each trigger is planned whole here (down to the physical plan, so that a
/// subquery the engine cannot run is found now) and must be true or false; a trigger that
/// does not is reported at its line of the policy.
pub async fn query(policy: &Policy, engine: &Engine) -> Result<String, OutreachError> {
    let mut view = policy.candidates.as_deref().unwrap_or(PLAIN_VIEW);
    for rule in &policy.rules {
        let fail = |message: String| OutreachError::Policy(policy.trigger_error(rule, message));
        let test = |v: &str| format!("SELECT (\n{}\n) AS holds FROM {v}", rule.trigger);
        let first = policy.candidates.as_deref().unwrap_or(PLAIN_VIEW);
        let planned = match engine.ctx.sql(&test(first)).await {
            Ok(df) => df,
            // A view the policy names is the one its triggers read.
            Err(e) if policy.candidates.is_some() => return Err(fail(e.strip_backtrace())),
            Err(plain) => match engine.ctx.sql(&test(RISK_VIEW)).await {
                Ok(df) => {
                    view = RISK_VIEW;
                    df
                }
                // The plain view's error names what is wrong unless the trigger reads the
                // risk columns.
                Err(risk) => {
                    let plain = plain.strip_backtrace();
                    return Err(fail(match plain.contains("segment") {
                        true => risk.strip_backtrace(),
                        false => plain,
                    }));
                }
            },
        };
        let kind = planned.schema().field(0).data_type().clone();
        if !matches!(
            kind,
            arrow::datatypes::DataType::Boolean | arrow::datatypes::DataType::Null
        ) {
            return Err(fail(format!(
                "is {kind}, not true or false (a condition such as days_past_due >= 7)"
            )));
        }
        if let Err(e) = planned.create_physical_plan().await {
            return Err(fail(e.strip_backtrace()));
        }
    }
    let flags: Vec<String> = (policy.rules.iter().enumerate())
        .map(|(i, r)| format!("{} AS rule_{i}", predicate(&r.trigger)))
        .collect();
    let any: Vec<String> = (0..policy.rules.len())
        .map(|i| format!("rule_{i}"))
        .collect();
    Ok(format!(
        "SELECT * FROM (SELECT invoice_id, customer_id, customer_name, email, phone, language, \
         country, currency, invoice_date, due_date, CAST(amount AS DOUBLE) AS amount, \
         CAST(open_amount AS DOUBLE) AS open_amount, CAST(open_amount_rc AS DOUBLE) AS open_amount_rc, \
         CAST(days_past_due AS BIGINT) AS days_past_due, collector_id, collector_name, \
         collector_email, suppressed, {} FROM {view}) WHERE {} ORDER BY customer_id, due_date, invoice_id",
        flags.join(", "),
        any.join(" OR ")
    ))
}

/// When the candidates' query failed while it ran (a cast that fails on some row), the rule
/// whose trigger fails alone, with its line; else the error as it was.
pub async fn explain_failure(
    policy: &Policy,
    engine: &Engine,
    error: crate::engine::EngineError,
) -> OutreachError {
    let view = match engine.reads_derived("SELECT * FROM outreach_candidates") {
        true => RISK_VIEW,
        false => PLAIN_VIEW,
    };
    let views = match policy.candidates.as_deref() {
        Some(named) => [named, named],
        None => [PLAIN_VIEW, view],
    };
    for rule in &policy.rules {
        for v in views {
            let test = format!(
                "SELECT count(*) FROM {v} WHERE {}",
                predicate(&rule.trigger)
            );
            let Ok(df) = engine.ctx.sql(&test).await else {
                continue;
            };
            if let Err(e) = df.collect().await {
                return OutreachError::Policy(policy.trigger_error(rule, e.strip_backtrace()));
            }
            break;
        }
    }
    OutreachError::Engine(error)
}

/// The candidates of the rows that [`query`] returned.
pub fn from_batches(
    batches: &[RecordBatch],
    rules: usize,
) -> Result<Vec<Candidate>, OutreachError> {
    let mut out = Vec::new();
    for batch in batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| OutreachError::View(format!("its rows have no column '{name}'")))
        };
        let text = |name: &str| -> Result<arrow::array::ArrayRef, OutreachError> {
            arrow::compute::cast(column(name)?, &arrow::datatypes::DataType::Utf8)
                .map_err(|e| OutreachError::View(format!("column '{name}': {e}")))
        };
        let invoice = text("invoice_id")?;
        let customer = text("customer_id")?;
        let name = text("customer_name")?;
        let email = text("email")?;
        let phone = text("phone")?;
        let language = text("language")?;
        let country = text("country")?;
        let currency = text("currency")?;
        let collector = text("collector_id")?;
        let collector_name = text("collector_name")?;
        let collector_email = text("collector_email")?;
        let suppressed = text("suppressed")?;
        let texts = [
            &invoice,
            &customer,
            &name,
            &email,
            &phone,
            &language,
            &country,
            &currency,
            &collector,
            &collector_name,
            &collector_email,
            &suppressed,
        ]
        .map(|a| a.as_string::<i32>());
        let [
            invoice,
            customer,
            name,
            email,
            phone,
            language,
            country,
            currency,
            collector,
            collector_name,
            collector_email,
            suppressed,
        ] = texts;
        let invoice_date = column("invoice_date")?.as_primitive::<Date32Type>();
        let due_date = column("due_date")?.as_primitive::<Date32Type>();
        let amount = column("amount")?.as_primitive::<Float64Type>();
        let open = column("open_amount")?.as_primitive::<Float64Type>();
        let open_rc = column("open_amount_rc")?.as_primitive::<Float64Type>();
        let late = column("days_past_due")?.as_primitive::<Int64Type>();
        let flags: Vec<_> = (0..rules)
            .map(|i| column(&format!("rule_{i}")).map(|c| c.as_boolean().clone()))
            .collect::<Result<_, _>>()?;
        let optional = |a: &arrow::array::StringArray, i: usize| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        };
        for i in 0..batch.num_rows() {
            out.push(Candidate {
                invoice_id: invoice.value(i).to_string(),
                customer_id: customer.value(i).to_string(),
                customer_name: optional(name, i).unwrap_or_default(),
                email: optional(email, i),
                phone: optional(phone, i),
                language: optional(language, i),
                country: optional(country, i),
                currency: currency.value(i).to_string(),
                invoice_date: crate::dates::date(invoice_date.value(i)),
                due_date: crate::dates::date(due_date.value(i)),
                amount: amount.value(i),
                open_amount: open.value(i),
                open_amount_rc: (!open_rc.is_null(i)).then(|| open_rc.value(i)),
                days_past_due: late.value(i),
                collector_id: optional(collector, i),
                collector_name: optional(collector_name, i),
                collector_email: optional(collector_email, i),
                suppressed: optional(suppressed, i),
                triggered: flags.iter().map(|f| f.value(i)).collect(),
            });
        }
    }
    Ok(out)
}

/// The opt-out list of `policy` as the table `outreach_opt_outs`: a CSV with a header, a
/// `customer_id` column and, optionally, a `reason`, in any order; quoted fields and a UTF-8
/// byte order mark are read as a spreadsheet writes them. A file that cannot be read whole is
/// an error, never an empty list: a customer left off it would be written to.
pub fn opt_outs(policy: &Policy) -> Result<RecordBatch, OutreachError> {
    let schema = crate::engine::derived::schema(crate::engine::derived::OUTREACH_OPT_OUTS)
        .expect("outreach_opt_outs has a schema");
    let Some(file) = &policy.opt_outs else {
        return Ok(RecordBatch::new_empty(schema));
    };
    let shown = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|e| OutreachError::OptOuts(format!("{shown}: {e}")))?;
    let (ids, reasons) = read_opt_outs(&shown, &bytes)?;
    let columns: Vec<arrow::array::ArrayRef> = vec![
        std::sync::Arc::new(arrow::array::StringArray::from(ids)),
        std::sync::Arc::new(arrow::array::StringArray::from(reasons)),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| OutreachError::OptOuts(e.to_string()))
}

/// The customer ids and reasons of an opt-out CSV (`shown` names it in errors).
fn read_opt_outs(shown: &str, bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), OutreachError> {
    let fail = |line: u64, message: String| {
        OutreachError::OptOuts(format!("{shown}, line {line}: {message}"))
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // The line a position is on, counted from its byte (the reader's own count is off by one
    // after CRLF line ends, where a record's position is the LF ending the line before it).
    let line_at = |position: Option<&csv::Position>| {
        position.map_or(0, |p| {
            let at = (p.byte() as usize + 1).min(bytes.len());
            bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| fail(1, e.to_string()))?
        .clone();
    if header.iter().all(str::is_empty) {
        return Err(fail(
            1,
            "no header: the first line names the columns (customer_id, and an optional reason)"
                .into(),
        ));
    }
    let column = |name: &str| header.iter().position(|c| c.eq_ignore_ascii_case(name));
    let Some(id_at) = column("customer_id") else {
        return Err(fail(1, "the header has no customer_id column".into()));
    };
    let reason_at = column("reason");
    let (mut ids, mut reasons) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let record = record.map_err(|e| {
            let what = match e.kind() {
                csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => format!("{len} fields where the header has {expected_len}"),
                _ => e.to_string(),
            };
            fail(line_at(e.position()), what)
        })?;
        let line = line_at(record.position());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let id = record.get(id_at).unwrap_or("");
        if id.is_empty() {
            return Err(fail(line, "no customer_id".into()));
        }
        ids.push(id.to_string());
        let reason = reason_at.and_then(|r| record.get(r)).unwrap_or("");
        reasons.push(match reason.is_empty() {
            true => "opted out".to_string(),
            false => reason.to_string(),
        });
    }
    Ok((ids, reasons))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &[u8]) -> Result<Vec<String>, String> {
        read_opt_outs("opt-outs.csv", text)
            .map(|(ids, _)| ids)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_opt_out_list_is_read_as_csv_whatever_a_spreadsheet_wrote() {
        assert_eq!(ids(b"customer_id\n\"C000000\"\n").unwrap(), ["C000000"]);
        assert_eq!(
            ids(b"\xEF\xBB\xBFcustomer_id,reason\nC1,x\n").unwrap(),
            ["C1"]
        );
        let (ids_, reasons) = read_opt_outs(
            "o.csv",
            b"reason,customer_id\r\n\"asked, by phone\",C7\r\n,C8\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (ids_, reasons),
            (
                vec!["C7".to_string(), "C8".to_string()],
                vec!["asked, by phone".to_string(), "opted out".to_string()]
            )
        );
        assert_eq!(ids(b"Customer_ID\n C9 \n").unwrap(), ["C9"]);
    }

    #[test]
    fn an_opt_out_list_that_cannot_be_read_is_an_error_not_an_empty_list() {
        let e = ids(b"").unwrap_err();
        assert!(e.contains("line 1: no header"), "{e}");
        let e = ids(b"id,reason\nC1,x\n").unwrap_err();
        assert!(e.contains("no customer_id column"), "{e}");
        let e = ids(b"customer_id,reason\nC1,x,extra\n").unwrap_err();
        assert!(e.contains("opt-outs.csv, line 2"), "{e}");
        let e = ids(b"customer_id\n\xFF\xFE\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = ids(b"customer_id,reason\n,x\n").unwrap_err();
        assert!(e.contains("line 2: no customer_id"), "{e}");
        // Lines are counted as an editor shows them, whatever the line ends.
        let e = ids(b"customer_id,reason\r\nC1,x\r\n,y\r\n").unwrap_err();
        assert!(e.contains("line 3: no customer_id"), "{e}");
        let e = ids(b"customer_id,reason\r\nC1,x\r\nC2\r\nC3,x\r\nC4\r\n").unwrap_err();
        assert!(e.contains("line 3: 1 fields where the header has 2"), "{e}");
    }
}
