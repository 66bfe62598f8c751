//! The small forms a collector fills in a customer's drill-down: log a contact, record a
//! promise, open a dispute, close one. Each field is checked as it is typed (an amount, a
//! date not before the as-of date, an invoice or dispute of this customer) and says what is
//! wrong; a form whose fields all pass becomes an [`Action`], which the state checks again
//! when it is recorded.

use chrono::NaiveDate;

use crate::actions::{Action, Channel, Money, Outcome};

/// What a form records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    Contact,
    Promise,
    Dispute,
    Resolve,
    Hold,
    OptOut,
    Release,
}

impl FormKind {
    pub fn title(self) -> &'static str {
        match self {
            FormKind::Contact => "Log a contact",
            FormKind::Promise => "Record a promise to pay",
            FormKind::Dispute => "Open a dispute",
            FormKind::Resolve => "Close a dispute",
            FormKind::Hold => "Put the customer on hold",
            FormKind::OptOut => "Opt the customer out of outreach",
            FormKind::Release => "End the customer's hold or opt-out",
        }
    }
}

/// One field: its label, what is typed, and the values it takes when it is a choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
    pub choices: &'static [&'static str],
    pub optional: bool,
    pub hint: &'static str,
}

/// What a form checks its fields against: the customer's drill-down as shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    pub as_of: Option<NaiveDate>,
    /// The customer's open invoices and what is open on each.
    pub invoices: Vec<(String, f64)>,
    /// The customer's open disputes.
    pub disputes: Vec<String>,
}

/// A form being filled.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub kind: FormKind,
    pub customer_id: String,
    pub fields: Vec<Field>,
    pub focus: usize,
    pub known: Known,
    /// Why the last attempt to record it failed (the state's own check).
    pub refused: Option<String>,
    /// Sent to be recorded; waiting for the answer.
    pub sending: bool,
}

const OUTCOMES: &[&str] = &["reached", "left_message", "no_answer", "wrong_number"];
const CLOSINGS: &[&str] = &["resolved", "rejected"];
const REASONS: &[&str] = &[
    "pricing",
    "quantity",
    "damaged_goods",
    "missing_goods",
    "not_received",
    "billing_error",
    "duplicate_billing",
];

fn field(label: &'static str, hint: &'static str) -> Field {
    Field {
        label,
        value: String::new(),
        choices: &[],
        optional: false,
        hint,
    }
}

fn choice(label: &'static str, choices: &'static [&'static str]) -> Field {
    Field {
        value: choices[0].to_string(),
        choices,
        ..field(label, "←/→ to choose")
    }
}

fn optional(mut f: Field) -> Field {
    f.optional = true;
    f
}

impl Form {
    pub fn new(kind: FormKind, customer_id: String, known: Known) -> Form {
        let fields = match kind {
            FormKind::Contact => vec![
                choice("outcome", OUTCOMES),
                optional(field("note", "what was said")),
            ],
            FormKind::Promise => vec![
                field("amount", "like 1200.50"),
                field("date", "YYYY-MM-DD, not before the as-of date"),
                optional(field("invoices", "ids, space-separated; none: the account")),
                optional(field("note", "")),
            ],
            FormKind::Dispute => vec![
                field("invoice", "an open invoice of this customer"),
                Field {
                    value: String::new(),
                    ..choice("reason", REASONS)
                },
                optional(field("amount", "empty: what is open on the invoice")),
                optional(field("note", "")),
            ],
            FormKind::Resolve => vec![
                field("dispute", "an open dispute of this customer"),
                choice("as", CLOSINGS),
                optional(field("note", "")),
            ],
            FormKind::Hold => vec![
                optional(field(
                    "until",
                    "YYYY-MM-DD, the last day; empty: until released",
                )),
                optional(field("note", "why")),
            ],
            FormKind::OptOut | FormKind::Release => vec![optional(field("note", "why"))],
        };
        let mut form = Form {
            kind,
            customer_id,
            fields,
            focus: 0,
            known,
            refused: None,
            sending: false,
        };
        // The only candidate is filled in.
        let only = |items: Vec<String>| (items.len() == 1).then(|| items[0].clone());
        match kind {
            FormKind::Dispute => {
                let ids = form
                    .known
                    .invoices
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect();
                form.fields[0].value = only(ids).unwrap_or_default();
            }
            FormKind::Resolve => {
                form.fields[0].value = only(form.known.disputes.clone()).unwrap_or_default();
            }
            _ => {}
        }
        form
    }

    fn value(&self, label: &str) -> &str {
        (self.fields.iter())
            .find(|f| f.label == label)
            .map_or("", |f| f.value.trim())
    }

    /// What is wrong with each field as typed (`None`: nothing).
    pub fn problems(&self) -> Vec<Option<String>> {
        (self.fields.iter()).map(|f| self.problem(f)).collect()
    }

    fn problem(&self, f: &Field) -> Option<String> {
        let value = f.value.trim();
        if value.is_empty() {
            return (!f.optional).then(|| format!("{} is needed", f.label));
        }
        if !f.choices.is_empty() && !f.choices.contains(&value) {
            return Some(format!("one of {}", f.choices.join(", ")));
        }
        let open_on = |invoice: &str| {
            (self.known.invoices.iter())
                .find(|(id, _)| id == invoice)
                .map(|(_, open)| *open)
        };
        match (self.kind, f.label) {
            (_, "amount") => {
                let amount = match value.parse::<Money>() {
                    Ok(amount) => amount,
                    Err(e) => return Some(e),
                };
                let cap = match self.kind {
                    FormKind::Dispute => open_on(self.value("invoice")),
                    _ => None,
                };
                match cap {
                    Some(open) if amount.0 as f64 > (open * 100.0).round() => {
                        Some(format!("more than the {open:.2} open on the invoice"))
                    }
                    _ => None,
                }
            }
            (_, "date") | (_, "until") => match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
                Err(_) => Some(format!("'{value}' is not a date (YYYY-MM-DD)")),
                Ok(date) => match self.known.as_of {
                    Some(as_of) if date < as_of => {
                        Some(format!("{date} is in the past (the as-of date is {as_of})"))
                    }
                    _ => None,
                },
            },
            (_, "invoice") | (_, "invoices") => value
                .split([' ', ','])
                .filter(|id| !id.is_empty())
                .find(|id| open_on(id).is_none())
                .map(|id| format!("'{id}' is not an open invoice of this customer")),
            (_, "dispute") => (!self.known.disputes.iter().any(|d| d == value))
                .then(|| format!("'{value}' is not an open dispute of this customer")),
            (_, "reason") => (!value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                .then(|| "a word in lower case, like pricing".to_string()),
            _ => None,
        }
    }

    /// Typing into the field in focus.
    pub fn type_char(&mut self, c: char) {
        self.refused = None;
        self.fields[self.focus].value.push(c);
    }

    pub fn backspace(&mut self) {
        self.refused = None;
        self.fields[self.focus].value.pop();
    }

    /// ←/→ on a choice: the previous or next value.
    pub fn cycle(&mut self, by: isize) {
        let f = &mut self.fields[self.focus];
        if f.choices.is_empty() {
            return;
        }
        let at = f.choices.iter().position(|c| *c == f.value).unwrap_or(0) as isize;
        let n = f.choices.len() as isize;
        f.value = f.choices[(at + by).rem_euclid(n) as usize].to_string();
        self.refused = None;
    }

    pub fn move_focus(&mut self, by: isize) {
        let n = self.fields.len() as isize;
        self.focus = (self.focus as isize + by).rem_euclid(n) as usize;
    }

    /// The action, when every field passes.
    pub fn action(&self) -> Option<Action> {
        if self.problems().iter().any(Option::is_some) {
            return None;
        }
        let note = Some(self.value("note").to_string()).filter(|n| !n.is_empty());
        let customer = self.customer_id.clone();
        Some(match self.kind {
            FormKind::Contact => Action::Contact {
                customer,
                outcome: match self.value("outcome") {
                    "left_message" => Outcome::LeftMessage,
                    "no_answer" => Outcome::NoAnswer,
                    "wrong_number" => Outcome::WrongNumber,
                    _ => Outcome::Reached,
                },
                channel: Channel::Call,
                note,
            },
            FormKind::Promise => Action::Promise {
                customer,
                amount: self.value("amount").parse().ok()?,
                date: self.value("date").parse().ok()?,
                invoices: (self.value("invoices").split([' ', ',']))
                    .filter(|id| !id.is_empty())
                    .map(str::to_string)
                    .collect(),
                note,
            },
            FormKind::Dispute => Action::Dispute {
                customer,
                invoice: self.value("invoice").to_string(),
                reason: self.value("reason").to_string(),
                amount: Some(self.value("amount"))
                    .filter(|a| !a.is_empty())
                    .and_then(|a| a.parse().ok()),
                note,
            },
            FormKind::Resolve => Action::Resolve {
                dispute: self.value("dispute").to_string(),
                rejected: self.value("as") == "rejected",
                note,
            },
            FormKind::Hold => Action::Hold {
                customer,
                until: self.value("until").parse().ok(),
                note,
            },
            FormKind::OptOut => Action::OptOut { customer, note },
            FormKind::Release => Action::Release { customer, note },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            as_of: NaiveDate::from_ymd_opt(2025, 12, 31),
            invoices: vec![("I1".into(), 100.0), ("I2".into(), 50.0)],
            disputes: vec!["D1".into()],
        }
    }

    #[test]
    fn each_field_says_what_is_wrong_as_it_is_typed() {
        let mut form = Form::new(FormKind::Promise, "C1".into(), known());
        for c in "12,5".chars() {
            form.type_char(c);
        }
        let problems = form.problems();
        assert!(
            problems[0].as_deref().unwrap().contains("not an amount"),
            "{problems:?}"
        );
        assert_eq!(problems[1].as_deref(), Some("date is needed"));
        form.fields[0].value = "120.50".into();
        form.fields[1].value = "2025-12-01".into();
        assert!(
            form.problems()[1]
                .as_deref()
                .unwrap()
                .contains("in the past")
        );
        form.fields[1].value = "2026-01-15".into();
        form.fields[2].value = "I2 I9".into();
        assert_eq!(
            form.problems()[2].as_deref(),
            Some("'I9' is not an open invoice of this customer")
        );
        assert!(form.action().is_none());
        form.fields[2].value = "I2".into();
        let action = form.action().unwrap();
        assert!(
            matches!(action, Action::Promise { amount: Money(12_050), ref invoices, .. } if invoices == &["I2"])
        );
    }

    #[test]
    fn a_dispute_is_at_most_what_is_open_on_its_invoice() {
        let mut form = Form::new(FormKind::Dispute, "C1".into(), known());
        form.fields[0].value = "I2".into();
        form.fields[1].value = "pricing".into();
        form.fields[2].value = "60".into();
        assert!(
            form.problems()[2]
                .as_deref()
                .unwrap()
                .contains("more than the 50.00")
        );
        form.fields[2].value = String::new();
        assert!(form.action().is_some());
        let resolve = Form::new(FormKind::Resolve, "C1".into(), known());
        assert_eq!(resolve.fields[0].value, "D1");
    }
}
