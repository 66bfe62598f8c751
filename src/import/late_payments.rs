//! IBM's "late payment histories" sample (`countryCode, customerID, PaperlessDate,
//! invoiceNumber, InvoiceDate, DueDate, InvoiceAmount, Disputed, SettledDate, PaperlessBill,
//! DaysToSettle, DaysLate`) as an arstream feed.
//!
//! What the export says becomes changes committed when they happened: each invoice an invoice
//! committed on its invoice date, and its settlement a payment of the full amount committed on
//! the settled date (every invoice of the export is settled in full); each customer a
//! customer row committed on its first invoice date. What it does not say is not made up, with
//! two exceptions, both documented in `docs/import.md`: a disputed invoice gets a dispute
//! opened on its invoice date and resolved on its settled date (the export has only the
//! flag), and all amounts are in one currency (the export names none; USD unless told).
//! Files are written per month of their commit date, `<entity>/month=YYYY-MM/part-0.parquet`,
//! so a feed cut at a month replays what was known then.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use chrono::NaiveDate;

use super::ImportError;
use crate::dates::days;
use crate::feed::contract::Entity;
use crate::generate::render::BatchBuilder;
use crate::generate::simulate::Op;
use crate::store::Location;

/// The export's header, as IBM publishes it.
const HEADER: &[&str] = &[
    "countryCode",
    "customerID",
    "PaperlessDate",
    "invoiceNumber",
    "InvoiceDate",
    "DueDate",
    "InvoiceAmount",
    "Disputed",
    "SettledDate",
    "PaperlessBill",
    "DaysToSettle",
    "DaysLate",
];

/// One invoice of the export.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    /// Its line in the file (1 is the header).
    pub line: usize,
    pub country: String,
    pub customer_id: String,
    pub invoice_id: String,
    pub invoice_date: NaiveDate,
    pub due_date: NaiveDate,
    /// In cents.
    pub amount: i128,
    pub disputed: bool,
    pub settled_date: NaiveDate,
    /// `DaysLate` as the export gives it (not imported: it follows from the dates; kept to
    /// check what arstream computes).
    pub days_late: i64,
}

/// What an import wrote.
#[derive(Debug, Default)]
pub struct Imported {
    pub invoices: usize,
    pub customers: usize,
    pub disputes: usize,
    pub files: usize,
    pub first: Option<NaiveDate>,
    pub last: Option<NaiveDate>,
}

/// The invoices of an export's text; `file` names it in errors. Every line is checked
/// against the feed's rules (`docs/change-feed.md`) before anything is written, so that no
/// month file of the import is quarantined: every bad line is reported, with its field.
/// `today` bounds the commit days (a change cannot be committed in the future).
pub fn parse(file: &str, text: &str, today: NaiveDate) -> Result<Vec<Invoice>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Line ends as `\n` only: the reader counts a `\r\n` end as no line at all.
    let text = text.replace("\r\n", "\n");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let unreadable = |e: csv::Error| ImportError::Read {
        file: file.into(),
        detail: e.to_string(),
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(unreadable)?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(ImportError::Read {
            file: file.into(),
            detail: "the file is empty".into(),
        });
    }
    if header != HEADER {
        return Err(ImportError::Read {
            file: file.into(),
            detail: format!(
                "not IBM's late-payment export: its header is '{}', expected '{}'",
                header.join(","),
                HEADER.join(",")
            ),
        });
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut lines_of: std::collections::HashMap<String, usize> = Default::default();
    for record in reader.records() {
        let record = record.map_err(unreadable)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        match invoice_of(&record, line, today) {
            Ok(invoice) => match lines_of.insert(invoice.invoice_id.clone(), line) {
                Some(first) => errors.push(LineError {
                    line,
                    field: "invoiceNumber".into(),
                    detail: format!("'{}' is also on line {first}", invoice.invoice_id),
                }),
                None => out.push(invoice),
            },
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(out),
        1 => {
            let e = errors.remove(0);
            Err(ImportError::Field {
                file: file.into(),
                line: e.line,
                field: e.field,
                detail: e.detail,
            })
        }
        _ => Err(ImportError::Lines {
            file: file.into(),
            errors,
        }),
    }
}

/// Line `line` of the export, checked.
fn invoice_of(
    record: &csv::StringRecord,
    line: usize,
    today: NaiveDate,
) -> Result<Invoice, LineError> {
    let bad = |field: &str, detail: String| LineError {
        line,
        field: field.into(),
        detail,
    };
    if record.len() != HEADER.len() {
        return Err(bad(
            "(line)",
            format!("{} fields, expected {}", record.len(), HEADER.len()),
        ));
    }
    let get = |name: &str| &record[HEADER.iter().position(|h| *h == name).expect("a column")];
    let text = |name: &str| {
        let v = get(name);
        match v.is_empty() {
            true => Err(bad(name, "empty".into())),
            false => Ok(v.to_string()),
        }
    };
    // The feed's date range, and a commit day no later than tomorrow (its `_ts` rule).
    let (first, last) = (
        NaiveDate::from_ymd_opt(1900, 1, 1).expect("a date"),
        NaiveDate::from_ymd_opt(2199, 12, 31).expect("a date"),
    );
    let date = |name: &str, committed: bool| {
        let day = NaiveDate::parse_from_str(get(name), "%m/%d/%Y")
            .map_err(|_| bad(name, format!("'{}' is not a date (M/D/YYYY)", get(name))))?;
        if day < first || day > last {
            return Err(bad(
                name,
                format!("{day} is outside 1900-01-01 to 2199-12-31"),
            ));
        }
        if committed && day > today + chrono::Days::new(1) {
            return Err(bad(
                name,
                format!("{day} is in the future: a change is committed when it happens"),
            ));
        }
        Ok(day)
    };
    let disputed = match get("Disputed") {
        "Yes" => true,
        "No" => false,
        other => return Err(bad("Disputed", format!("'{other}' is neither Yes nor No"))),
    };
    let amount = cents(get("InvoiceAmount")).ok_or_else(|| {
        bad(
            "InvoiceAmount",
            format!("'{}' is not an amount", get("InvoiceAmount")),
        )
    })?;
    if amount <= 0 {
        return Err(bad(
            "InvoiceAmount",
            format!("{} is not a positive amount", get("InvoiceAmount")),
        ));
    }
    if amount > MAX_CENTS {
        return Err(bad(
            "InvoiceAmount",
            format!("{} is above 999,999,999,999.99", get("InvoiceAmount")),
        ));
    }
    let invoice = Invoice {
        line,
        country: text("countryCode")?,
        customer_id: text("customerID")?,
        invoice_id: text("invoiceNumber")?,
        invoice_date: date("InvoiceDate", true)?,
        due_date: date("DueDate", false)?,
        amount,
        disputed,
        settled_date: date("SettledDate", true)?,
        days_late: get("DaysLate")
            .parse()
            .map_err(|_| bad("DaysLate", format!("'{}' is not a number", get("DaysLate"))))?,
    };
    if invoice.settled_date < invoice.invoice_date {
        return Err(bad("SettledDate", "before the invoice date".into()));
    }
    Ok(invoice)
}

/// The feed's largest amount, in cents (`docs/change-feed.md`).
const MAX_CENTS: i128 = 99_999_999_999_999;

/// What is wrong with one line of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    pub line: usize,
    pub field: String,
    pub detail: String,
}

/// `12.5`, `-3.07`, `100` as cents; `None` for anything else or more than two decimals.
fn cents(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (units, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if units.is_empty() || fraction.len() > 2 {
        return None;
    }
    if !(units.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value =
        units.parse::<i128>().ok()? * 100 + format!("{fraction:0<2}").parse::<i128>().ok()?;
    Some(if negative { -value } else { value })
}

/// Microseconds since 1970 of a day's midnight, UTC, plus `n` µs (rows of one day stay in
/// file order).
fn ts(day: NaiveDate, n: usize) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_micros()
        + n as i64
}

/// Batches of one entity, by commit month.
#[derive(Default)]
struct Months(BTreeMap<(Entity, String), BatchBuilder>);

impl Months {
    /// Start the `seq`-th change of a key, committed on `day`.
    fn row(&mut self, entity: Entity, day: NaiveDate, n: usize, seq: i64) -> &mut BatchBuilder {
        let month = day.format("%Y-%m").to_string();
        let builder = (self.0.entry((entity, month))).or_insert_with(|| BatchBuilder::new(entity));
        let op = if seq == 1 { Op::Create } else { Op::Update };
        builder.row(op, seq, ts(day, n));
        builder
    }
}

/// The invoices as changes, by entity and commit month.
pub fn changes(invoices: &[Invoice], currency: &str) -> Vec<(Entity, String, RecordBatch)> {
    let mut months = Months::default();
    let mut sorted: Vec<&Invoice> = invoices.iter().collect();
    sorted.sort_by_key(|i| (i.invoice_date, i.line));
    let mut customers_seen = std::collections::HashSet::new();
    for (n, inv) in sorted.iter().enumerate() {
        if customers_seen.insert(inv.customer_id.clone()) {
            months
                .row(Entity::Customers, inv.invoice_date, n, 1)
                .text(Some(&inv.customer_id))
                .text(Some(&inv.customer_id))
                .text(Some(&inv.country))
                .text(Some(currency));
        }
        months
            .row(Entity::Invoices, inv.invoice_date, n, 1)
            .text(Some(&inv.invoice_id))
            .text(Some(&inv.customer_id))
            .date(Some(days(inv.invoice_date)))
            .date(Some(days(inv.due_date)))
            .decimal(inv.amount)
            .text(Some(currency))
            .text(Some("posted"));
        months
            .row(Entity::Payments, inv.settled_date, n, 1)
            .text(Some(&format!("P-{}", inv.invoice_id)))
            .text(Some(&inv.customer_id))
            .text(Some(&inv.invoice_id))
            .date(Some(days(inv.settled_date)))
            .decimal(inv.amount)
            .text(Some(currency));
        if inv.disputed {
            // Opened when issued and resolved when settled: the export has only the flag.
            // The resolution is the second change of the dispute's key.
            for (seq, day, status, resolved) in [
                (1, inv.invoice_date, "open", None),
                (
                    2,
                    inv.settled_date,
                    "resolved",
                    Some(days(inv.settled_date)),
                ),
            ] {
                months
                    .row(Entity::Disputes, day, n, seq)
                    .text(Some(&format!("D-{}", inv.invoice_id)))
                    .text(Some(&inv.invoice_id))
                    .text(Some(&inv.customer_id))
                    .date(Some(days(inv.invoice_date)))
                    .decimal(inv.amount)
                    .text(Some(currency))
                    .text(Some("unknown"))
                    .text(Some(status))
                    .date(resolved);
            }
        }
    }
    (months.0.into_iter())
        .map(|((entity, month), b)| (entity, month, b.finish()))
        .collect()
}

/// Import the export at `path` into the feed `feed`, amounts in `currency`.
pub async fn import(
    path: &std::path::Path,
    feed: &Location,
    currency: &str,
) -> Result<Imported, ImportError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::Read {
        file: file.clone(),
        detail: e.to_string(),
    })?;
    let invoices = parse(&file, &text, chrono::Utc::now().date_naive())?;
    let mut imported = Imported {
        invoices: invoices.len(),
        customers: (invoices.iter().map(|i| &i.customer_id))
            .collect::<std::collections::HashSet<_>>()
            .len(),
        disputes: invoices.iter().filter(|i| i.disputed).count(),
        first: invoices.iter().map(|i| i.invoice_date).min(),
        last: invoices.iter().map(|i| i.settled_date).max(),
        ..Imported::default()
    };
    for (entity, month, batch) in changes(&invoices, currency) {
        let relative = format!("{}/month={month}/part-0.parquet", entity.name());
        crate::parquet_io::put(
            feed.store.as_ref(),
            &feed.child(&relative),
            &batch.schema(),
            &[batch],
        )
        .await
        .map_err(|e| ImportError::Write {
            url: feed.url.to_string(),
            detail: format!("{relative}: {e}"),
        })?;
        imported.files += 1;
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_bad_fields_are_read_as_the_export_writes_them() {
        assert_eq!(cents("55.94"), Some(5594));
        assert_eq!(cents("61.7"), Some(6170));
        assert_eq!(cents("100"), Some(10000));
        assert_eq!(cents("-3.07"), Some(-307));
        for bad in ["", ".5", "1.234", "1,5", "abc", "1e3"] {
            assert_eq!(cents(bad), None, "{bad}");
        }
        let header = HEADER.join(",");
        let good = "391,0379-NEVHP,4/6/2013,611365,1/2/2013,2/1/2013,55.94,No,1/15/2013,Paper,13,0";
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let rows = parse("ar.csv", &format!("{header}\r\n{good}\r\n"), today).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].amount, 5594);
        assert_eq!(
            rows[0].due_date,
            NaiveDate::from_ymd_opt(2013, 2, 1).unwrap()
        );
        let error = parse(
            "ar.csv",
            &format!(
                "{header}\n{good}\n{}",
                good.replace("1/15/2013", "13/45/2013")
            ),
            today,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "ar.csv, line 3, field 'SettledDate': '13/45/2013' is not a date (M/D/YYYY)"
        );
        let error = parse("ar.csv", "a,b\n", today).unwrap_err().to_string();
        assert!(
            error.starts_with("ar.csv: not IBM's late-payment export"),
            "{error}"
        );
    }

    #[test]
    fn a_bom_quoted_fields_and_crlf_are_read_and_every_bad_line_is_named() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let header = HEADER.join(",");
        let good = "391,0379-NEVHP,4/6/2013,611365,1/2/2013,2/1/2013,55.94,No,1/15/2013,Paper,13,0";
        // A BOM, a quoted customer id with a comma, CRLF.
        let quoted = good
            .replace("0379-NEVHP", "\"0379,NEVHP\"")
            .replace("611365", "611366");
        let text = format!("\u{feff}{header}\r\n{good}\r\n{quoted}\r\n");
        let rows = parse("ar.csv", &text, today).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].customer_id, "0379,NEVHP");
        assert_eq!((rows[0].line, rows[1].line), (2, 3));
        // Each rule of the feed, checked before anything is written; all lines named.
        let lines = [
            good.replace("55.94", "-5.00").replace("611365", "1"),
            good.replace("55.94", "0").replace("611365", "2"),
            good.replace("1/15/2013", "1/15/2099")
                .replace("611365", "3"),
            good.replace("2/1/2013", "2/1/1899").replace("611365", "4"),
            good.replace("55.94", "1000000000000.00")
                .replace("611365", "5"),
            good.to_string(),
            good.to_string(),
        ];
        let text = format!("{header}\n{}\n", lines.join("\n"));
        let error = parse("ar.csv", &text, today).unwrap_err().to_string();
        assert_eq!(
            error,
            "ar.csv: 6 bad lines, nothing written:\n  \
             line 2, field 'InvoiceAmount': -5.00 is not a positive amount\n  \
             line 3, field 'InvoiceAmount': 0 is not a positive amount\n  \
             line 4, field 'SettledDate': 2099-01-15 is in the future: a change is committed when it happens\n  \
             line 5, field 'DueDate': 1899-02-01 is outside 1900-01-01 to 2199-12-31\n  \
             line 6, field 'InvoiceAmount': 1000000000000.00 is above 999,999,999,999.99\n  \
             line 8, field 'invoiceNumber': '611365' is also on line 7"
        );
    }
}
