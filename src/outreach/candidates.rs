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

/// The query that reads the candidates of `policy`: the view the triggers need, each trigger
/// as a column. A trigger that does not plan is reported at its line of the policy.
pub async fn query(policy: &Policy, engine: &Engine) -> Result<String, OutreachError> {
    let mut view = PLAIN_VIEW;
    for rule in &policy.rules {
        let test = |v: &str| {
            format!(
                "SELECT 1 FROM {v} WHERE coalesce(({}), false)",
                rule.trigger
            )
        };
        if engine.ctx.sql(&test(PLAIN_VIEW)).await.is_ok() {
            continue;
        }
        match engine.ctx.sql(&test(RISK_VIEW)).await {
            Ok(_) => view = RISK_VIEW,
            Err(e) => {
                let message = e.strip_backtrace();
                return Err(OutreachError::Policy(policy.trigger_error(rule, message)));
            }
        }
    }
    let flags: Vec<String> = (policy.rules.iter().enumerate())
        .map(|(i, r)| format!("coalesce(({}), false) AS rule_{i}", r.trigger))
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
/// `customer_id` column and, optionally, a `reason`.
pub fn opt_outs(policy: &Policy) -> Result<RecordBatch, OutreachError> {
    let schema = crate::engine::derived::schema(crate::engine::derived::OUTREACH_OPT_OUTS)
        .expect("outreach_opt_outs has a schema");
    let Some(file) = &policy.opt_outs else {
        return Ok(RecordBatch::new_empty(schema));
    };
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| OutreachError::OptOuts(format!("{shown}: {e}")))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<String> = match lines.next() {
        Some((_, h)) => h
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .collect(),
        None => return Ok(RecordBatch::new_empty(schema)),
    };
    let Some(id_at) = header.iter().position(|c| c == "customer_id") else {
        return Err(OutreachError::OptOuts(format!(
            "{shown}, line 1: the header has no customer_id column"
        )));
    };
    let reason_at = header.iter().position(|c| c == "reason");
    let (mut ids, mut reasons) = (Vec::new(), Vec::new());
    for (n, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let id = fields.get(id_at).copied().unwrap_or("");
        if id.is_empty() {
            return Err(OutreachError::OptOuts(format!(
                "{shown}, line {}: no customer_id",
                n + 1
            )));
        }
        ids.push(id.to_string());
        let reason = reason_at.and_then(|r| fields.get(r).copied()).unwrap_or("");
        reasons.push(match reason.is_empty() {
            true => "opted out".to_string(),
            false => reason.to_string(),
        });
    }
    let columns: Vec<arrow::array::ArrayRef> = vec![
        std::sync::Arc::new(arrow::array::StringArray::from(ids)),
        std::sync::Arc::new(arrow::array::StringArray::from(reasons)),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| OutreachError::OptOuts(e.to_string()))
}
