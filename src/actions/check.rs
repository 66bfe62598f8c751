//! Checking an action against the current state, as a collector would expect: the customer
//! exists, the invoices are this customer's and open, an amount is not more than what is
//! open, a promised date is not in the past, a dispute closed is open. What passes becomes
//! the rows it adds ([`Recorded`]).

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use chrono::NaiveDate;

use super::{Action, ActionError, Money};
use crate::engine::Engine;

/// An action checked: the rows it adds and a sentence for people.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub action: Action,
    /// The key of what it made (or, for a dispute closed, of that dispute).
    pub id: String,
    pub customer_id: String,
    pub summary: String,
    pub rows: Vec<Row>,
}

/// One change row an action adds, in the contract.
#[derive(Debug, Clone)]
pub enum Row {
    Activity {
        id: String,
        customer_id: String,
        /// When the contact was (`activity_ts`).
        at: chrono::DateTime<chrono::Utc>,
        /// None for a change of the customer's status (a hold, an opt-out).
        channel: Option<&'static str>,
        outcome: &'static str,
        /// The end of a hold.
        hold_until: Option<NaiveDate>,
    },
    Promise {
        id: String,
        customer_id: String,
        invoice_id: Option<String>,
        created: NaiveDate,
        promised: NaiveDate,
        cents: i128,
        currency: String,
    },
    Dispute {
        id: String,
        invoice_id: String,
        customer_id: String,
        opened: NaiveDate,
        cents: i128,
        currency: String,
        reason: String,
        status: &'static str,
        resolved: Option<NaiveDate>,
        /// A dispute's earlier change: the new row must come after it.
        after_seq: Option<i64>,
        /// The team it was reassigned to.
        team: Option<String>,
    },
}

/// Checks actions against one engine's state, dated `as_of` (the business day the
/// collector works: a promise may not fall before it).
pub struct Checker<'a> {
    pub engine: &'a Engine,
    pub as_of: NaiveDate,
}

/// An open invoice of a customer.
struct OpenInvoice {
    id: String,
    cents: i128,
    currency: String,
}

impl Checker<'_> {
    /// Check `action`; its new key from `ids`.
    pub async fn check(
        &self,
        action: Action,
        ids: &mut super::Ids,
    ) -> Result<Recorded, ActionError> {
        check_note(action.note())?;
        match &action {
            Action::Contact {
                customer,
                outcome,
                channel,
                ..
            } => {
                self.customer(customer).await?;
                let id = ids.next("activity");
                let summary = format!(
                    "contact with {customer} ({}, {})",
                    channel.as_str(),
                    outcome.as_str()
                );
                let rows = vec![Row::Activity {
                    id: id.clone(),
                    customer_id: customer.clone(),
                    at: self.now(),
                    channel: Some(channel.as_str()),
                    outcome: outcome.as_str(),
                    hold_until: None,
                }];
                Ok(recorded(action.clone(), id, customer, summary, rows))
            }
            Action::Hold {
                customer, until, ..
            } => {
                self.customer(customer).await?;
                if let Some(until) = until
                    && *until < self.as_of
                {
                    return invalid(format!(
                        "the hold's end {until} is in the past (the as-of date is {})",
                        self.as_of
                    ));
                }
                let summary = match until {
                    Some(until) => format!("{customer} on hold until {until}"),
                    None => format!("{customer} on hold until released"),
                };
                Ok(self.status(action.clone(), ids, customer, "on_hold", *until, summary))
            }
            Action::OptOut { customer, .. } => {
                self.customer(customer).await?;
                let summary = format!("{customer} opted out of outreach");
                Ok(self.status(action.clone(), ids, customer, "opted_out", None, summary))
            }
            Action::Release { customer, .. } => {
                self.customer(customer).await?;
                let sql = format!(
                    "SELECT status FROM customer_holds WHERE customer_id = {}",
                    literal(customer)
                );
                if text_rows(self.engine, &sql).await?.is_empty() {
                    return invalid(format!(
                        "customer '{customer}' is neither on hold nor opted out"
                    ));
                }
                let summary = format!("{customer} released (no longer on hold or opted out)");
                Ok(self.status(action.clone(), ids, customer, "released", None, summary))
            }
            Action::Promise {
                customer,
                amount,
                date,
                invoices,
                ..
            } => {
                let currency = self.customer(customer).await?;
                if *date < self.as_of {
                    return invalid(format!(
                        "the promised date {date} is in the past (the as-of date is {})",
                        self.as_of
                    ));
                }
                if *date > self.as_of + chrono::Days::new(366) {
                    return invalid(format!("the promised date {date} is more than a year away"));
                }
                let id = ids.next("promise");
                let rows = self
                    .promise_rows(&id, customer, &currency, *amount, *date, invoices)
                    .await?;
                let on = match (invoices.len(), rows.len()) {
                    (0, _) => "the account".to_string(),
                    (_, 1) => match &rows[0] {
                        Row::Promise {
                            invoice_id: Some(invoice),
                            ..
                        } => format!("invoice {invoice}"),
                        _ => "1 invoice".to_string(),
                    },
                    (_, n) => format!("{n} invoices"),
                };
                let summary = format!("promise by {customer} to pay {amount} by {date} on {on}");
                Ok(recorded(action.clone(), id, customer, summary, rows))
            }
            Action::Dispute {
                customer,
                invoice,
                reason,
                amount,
                ..
            } => {
                self.customer(customer).await?;
                let reason_ok = !reason.is_empty()
                    && reason.len() <= 40
                    && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                if !reason_ok {
                    return invalid(format!(
                        "reason '{reason}' is not a word in lower case (like pricing, damaged_goods, billing_error)"
                    ));
                }
                let open = self.open_invoices(customer).await?;
                let Some(found) = open.iter().find(|i| &i.id == invoice) else {
                    return invalid(format!(
                        "invoice '{invoice}' is not an open invoice of customer '{customer}'"
                    ));
                };
                let sql = format!(
                    "SELECT CAST(round(coalesce(sum(amount), 0) * 100) AS BIGINT) FROM disputes WHERE invoice_id = {} AND status = 'open'",
                    literal(invoice)
                );
                let disputed: i128 = (text_rows(self.engine, &sql).await?.first())
                    .and_then(|r| r[0].as_ref()?.parse().ok())
                    .unwrap_or(0);
                let undisputed = (found.cents - disputed).max(0);
                let cents = amount.map_or(undisputed, |a| a.0);
                if cents > undisputed {
                    let already = match disputed {
                        0 => String::new(),
                        d => format!(
                            " ({} of its {} disputed already)",
                            Money(d),
                            Money(found.cents)
                        ),
                    };
                    return invalid(format!(
                        "the disputed amount {} is more than the {} open and not yet disputed on invoice {invoice}{already}",
                        Money(cents),
                        Money(undisputed)
                    ));
                }
                if cents == 0 {
                    return invalid(format!("invoice {invoice} is disputed in full already"));
                }
                let id = ids.next("dispute");
                let summary = format!(
                    "dispute on {invoice} of {customer}: {reason}, {} {}",
                    Money(cents),
                    found.currency
                );
                let rows = vec![Row::Dispute {
                    id: id.clone(),
                    invoice_id: invoice.clone(),
                    customer_id: customer.clone(),
                    opened: self.as_of,
                    cents,
                    currency: found.currency.clone(),
                    reason: reason.clone(),
                    status: "open",
                    resolved: None,
                    after_seq: None,
                    team: None,
                }];
                Ok(recorded(action.clone(), id, customer, summary, rows))
            }
            Action::Resolve {
                dispute, rejected, ..
            } => {
                let mut row = self.open_dispute(dispute).await?;
                let status = if *rejected { "rejected" } else { "resolved" };
                if let Row::Dispute {
                    status: s,
                    resolved,
                    ..
                } = &mut row
                {
                    *s = status;
                    *resolved = Some(self.as_of);
                }
                Ok(dispute_changed(&action, dispute, row, status))
            }
            Action::Reassign { dispute, team, .. } => {
                let teams =
                    text_rows(self.engine, "SELECT team FROM dispute_teams ORDER BY team").await?;
                let teams: Vec<String> = teams.into_iter().filter_map(|r| r[0].clone()).collect();
                if !teams.contains(team) {
                    return invalid(format!(
                        "team '{team}' is not in dispute_teams ({})",
                        teams.join(", ")
                    ));
                }
                let mut row = self.open_dispute(dispute).await?;
                if let Row::Dispute { team: t, .. } = &mut row {
                    *t = Some(team.clone());
                }
                Ok(dispute_changed(
                    &action,
                    dispute,
                    row,
                    &format!("reassigned to {team}"),
                ))
            }
        }
    }

    /// Now, on the as-of date's day when that is earlier (a state looked at as of a past
    /// day), so that what is recorded falls in that day's views.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let now = chrono::Utc::now();
        match self.as_of < now.date_naive() {
            true => self.as_of.and_time(now.time()).and_utc(),
            false => now,
        }
    }

    /// A change of the customer's status (a hold, an opt-out, a release), as an activity.
    fn status(
        &self,
        action: Action,
        ids: &mut super::Ids,
        customer: &str,
        outcome: &'static str,
        hold_until: Option<NaiveDate>,
        summary: String,
    ) -> Recorded {
        let id = ids.next("activity");
        let rows = vec![Row::Activity {
            id: id.clone(),
            customer_id: customer.to_string(),
            at: self.now(),
            channel: None,
            outcome,
            hold_until,
        }];
        recorded(action, id, customer, summary, rows)
    }

    /// The open dispute `dispute` as it is, as the row of its next change.
    async fn open_dispute(&self, dispute: &str) -> Result<Row, ActionError> {
        let sql = format!(
            "SELECT invoice_id, customer_id, CAST(opened_date AS VARCHAR), CAST(round(amount * 100) AS BIGINT), currency, reason, status FROM disputes WHERE dispute_id = {}",
            literal(dispute)
        );
        let found = text_rows(self.engine, &sql).await?;
        let Some(d) = found.first() else {
            return invalid(format!("dispute '{dispute}' is not in the state"));
        };
        let field = |i: usize| d[i].clone().unwrap_or_default();
        if field(6) != "open" {
            return invalid(format!("dispute '{dispute}' is {} already", field(6)));
        }
        let seq = format!(
            "SELECT CAST(max(_seq) AS VARCHAR) FROM disputes_changes WHERE dispute_id = {}",
            literal(dispute)
        );
        let after_seq =
            (text_rows(self.engine, &seq).await?.first()).and_then(|r| r[0].as_ref()?.parse().ok());
        Ok(Row::Dispute {
            id: dispute.to_string(),
            invoice_id: field(0),
            customer_id: field(1),
            opened: field(2).parse().unwrap_or(self.as_of),
            cents: field(3).parse().unwrap_or_default(),
            currency: field(4),
            reason: field(5),
            status: "open",
            resolved: None,
            after_seq,
            team: None,
        })
    }

    /// The customer's currency; an error when there is no such customer.
    async fn customer(&self, customer: &str) -> Result<String, ActionError> {
        let sql = format!(
            "SELECT currency FROM customers WHERE customer_id = {}",
            literal(customer)
        );
        let found = text_rows(self.engine, &sql).await?;
        match found.first() {
            Some(row) => Ok(row[0].clone().unwrap_or_default()),
            None => invalid(format!("customer '{customer}' is not in the state")),
        }
    }

    /// The customer's open invoices, oldest due first.
    async fn open_invoices(&self, customer: &str) -> Result<Vec<OpenInvoice>, ActionError> {
        let sql = format!(
            "SELECT invoice_id, CAST(round(open_amount * 100) AS BIGINT), currency FROM open_items WHERE customer_id = {} AND open_amount > 0 ORDER BY due_date, invoice_id",
            literal(customer)
        );
        let rows = text_rows(self.engine, &sql).await?;
        Ok(rows
            .into_iter()
            .map(|r| OpenInvoice {
                id: r[0].clone().unwrap_or_default(),
                cents: r[1]
                    .as_deref()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_default(),
                currency: r[2].clone().unwrap_or_default(),
            })
            .collect())
    }

    /// A promise on the account (one row), or on the invoices named, spread over them oldest
    /// due first, each up to what is open on it.
    async fn promise_rows(
        &self,
        id: &str,
        customer: &str,
        currency: &str,
        amount: Money,
        date: NaiveDate,
        invoices: &[String],
    ) -> Result<Vec<Row>, ActionError> {
        let row = |n: usize, invoice: Option<&OpenInvoice>, cents: i128| Row::Promise {
            id: if n == 0 {
                id.to_string()
            } else {
                format!("{id}-{n}")
            },
            customer_id: customer.to_string(),
            invoice_id: invoice.map(|i| i.id.clone()),
            created: self.as_of,
            promised: date,
            cents,
            currency: invoice.map_or(currency.to_string(), |i| i.currency.clone()),
        };
        if invoices.is_empty() {
            return Ok(vec![row(0, None, amount.0)]);
        }
        let open = self.open_invoices(customer).await?;
        let mut named = Vec::new();
        for invoice in invoices {
            match open.iter().find(|i| &i.id == invoice) {
                Some(found) => named.push(found),
                None => {
                    return invalid(format!(
                        "invoice '{invoice}' is not an open invoice of customer '{customer}'"
                    ));
                }
            }
        }
        named.sort_by_key(|i| open.iter().position(|o| o.id == i.id));
        named.dedup_by_key(|i| i.id.clone());
        if named.iter().any(|i| i.currency != named[0].currency) {
            return invalid("the invoices of one promise must be in one currency".to_string());
        }
        let total: i128 = named.iter().map(|i| i.cents).sum();
        if amount.0 > total {
            return invalid(format!(
                "the promised {amount} is more than the {} open on those invoices",
                Money(total)
            ));
        }
        let mut left = amount.0;
        let mut rows = Vec::new();
        for invoice in named {
            if left == 0 {
                break;
            }
            let cents = left.min(invoice.cents);
            rows.push(row(rows.len(), Some(invoice), cents));
            left -= cents;
        }
        Ok(rows)
    }
}

/// A note people can read: no control characters but line ends and tabs, 2,000 characters
/// at most.
fn check_note(note: Option<&str>) -> Result<(), ActionError> {
    let Some(note) = note else { return Ok(()) };
    if note.chars().count() > 2000 {
        return invalid(format!(
            "the note has {} characters; 2000 at most",
            note.chars().count()
        ));
    }
    if let Some(c) = note
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return invalid(format!(
            "the note has a control character ({:?}); write it as text",
            c
        ));
    }
    Ok(())
}

/// A change of dispute `dispute` (closed, reassigned): its one row, and what it did.
fn dispute_changed(action: &Action, dispute: &str, row: Row, what: &str) -> Recorded {
    let customer = customer_of(&row);
    let summary = format!("dispute {dispute} of {customer} {what}");
    recorded(
        action.clone(),
        dispute.to_string(),
        &customer,
        summary,
        vec![row],
    )
}

fn customer_of(row: &Row) -> String {
    match row {
        Row::Activity { customer_id, .. }
        | Row::Promise { customer_id, .. }
        | Row::Dispute { customer_id, .. } => customer_id.clone(),
    }
}

fn recorded(
    action: Action,
    id: String,
    customer: &str,
    summary: String,
    rows: Vec<Row>,
) -> Recorded {
    Recorded {
        action,
        id,
        customer_id: customer.to_string(),
        summary,
        rows,
    }
}

fn invalid<T>(why: String) -> Result<T, ActionError> {
    Err(ActionError::Invalid(why))
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The rows of `sql`, every value as text.
async fn text_rows(engine: &Engine, sql: &str) -> Result<Vec<Vec<Option<String>>>, ActionError> {
    let batches = engine.query(sql).await?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(as_text(batch)?);
    }
    Ok(rows)
}

fn as_text(batch: &RecordBatch) -> Result<Vec<Vec<Option<String>>>, ActionError> {
    let columns = (batch.columns().iter())
        .map(|c| arrow::compute::cast(c, &DataType::Utf8))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ActionError::Encode(e.to_string()))?;
    Ok((0..batch.num_rows())
        .map(|row| {
            (columns.iter())
                .map(|c| (!c.is_null(row)).then(|| c.as_string::<i32>().value(row).to_string()))
                .collect()
        })
        .collect())
}
