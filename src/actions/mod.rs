//! What collectors record after working a customer: a contact and its outcome, a promise to
//! pay, a dispute opened or closed. Each is checked against the current state
//! ([`check`]), then written as change-feed rows of the contract's own entities
//! (`activities`, `promises`, `disputes`) into the actions feed ([`write`]), which the state
//! applies like any feed file: exactly once, then visible in every table, KPI and view. The
//! ERP's feed is never written.

pub mod check;
pub mod write;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One thing a collector recorded, as typed on the command line or as one line of a
/// JSON-lines file (`{"action": "promise", "customer": "C1", "amount": "120.00", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A contact with the customer and how it went.
    Contact {
        customer: String,
        outcome: Outcome,
        #[serde(default)]
        channel: Channel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A promise to pay `amount` by `date`, on some of the customer's open invoices (oldest
    /// due first) or, with none named, on the account.
    Promise {
        customer: String,
        amount: Money,
        date: NaiveDate,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        invoices: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A dispute opened on one invoice, for `amount` (its whole open amount when not given).
    Dispute {
        customer: String,
        invoice: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The customer on hold: no reminders and no calls, until `until` (none: until
    /// released).
    Hold {
        customer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<NaiveDate>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The customer opted out of outreach (no reminders; collectors still call).
    OptOut {
        customer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The customer's hold or opt-out ended.
    Release {
        customer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A dispute handed to another team than its routing rule's (`dispute_teams`).
    Reassign {
        dispute: String,
        team: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A dispute closed: resolved (the default) or rejected.
    Resolve {
        dispute: String,
        #[serde(default)]
        rejected: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

impl Action {
    /// Its name, as the `action` of a JSON line and in `actions_log`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Contact { .. } => "contact",
            Action::Promise { .. } => "promise",
            Action::Dispute { .. } => "dispute",
            Action::Hold { .. } => "hold",
            Action::OptOut { .. } => "opt_out",
            Action::Release { .. } => "release",
            Action::Reassign { .. } => "reassign",
            Action::Resolve { .. } => "resolve",
        }
    }

    pub fn note(&self) -> Option<&str> {
        match self {
            Action::Contact { note, .. }
            | Action::Promise { note, .. }
            | Action::Dispute { note, .. }
            | Action::Hold { note, .. }
            | Action::OptOut { note, .. }
            | Action::Release { note, .. }
            | Action::Reassign { note, .. }
            | Action::Resolve { note, .. } => note.as_deref(),
        }
    }
}

/// What prefixes every id arstream gives an action (see
/// [`crate::feed::validate::ACTION_ID_PREFIX`]).
pub use crate::feed::validate::ACTION_ID_PREFIX;

/// New ids for one command's actions: `arstream:<kind>:<time>-<random>-<n>`, unique across
/// processes and never an ERP id (the ERP's feed may not use the prefix).
pub struct Ids {
    stem: String,
    next: usize,
}

impl Ids {
    pub fn new(now: chrono::DateTime<chrono::Utc>) -> Ids {
        use std::hash::{BuildHasher, Hasher};
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u32(std::process::id());
        // The time in microseconds in base 36, then 24 random bits: short enough to read and
        // type, and unique across processes.
        let mut micros = now.timestamp_micros().max(0) as u64;
        let mut time = Vec::new();
        while micros > 0 {
            time.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(micros % 36) as usize]);
            micros /= 36;
        }
        time.reverse();
        let time = String::from_utf8(time).unwrap_or_default();
        let stem = format!("{time}-{:06x}", random.finish() & 0xff_ffff);
        Ids { stem, next: 0 }
    }

    /// What names the files of this command's actions (unique, as the ids are).
    pub fn file_name(&self) -> String {
        format!("{}.parquet", self.stem)
    }

    pub fn next(&mut self, kind: &str) -> String {
        self.next += 1;
        format!("{ACTION_ID_PREFIX}{kind}:{}-{}", self.stem, self.next)
    }
}

/// Check every action against the engine's state (dated `as_of`), then, only if all pass,
/// write them into the actions feed `to`. The state applies them at its next catch-up (the
/// command's own, or the service's, which watches the actions feed). Returns what was
/// recorded and the files written.
pub async fn record(
    engine: &crate::engine::Engine,
    as_of: NaiveDate,
    actions: Vec<Action>,
    by: &write::RecordedBy,
    to: &crate::store::Location,
) -> Result<(Vec<check::Recorded>, Vec<String>), ActionError> {
    check_who(&by.who)?;
    let checker = check::Checker { engine, as_of };
    let mut ids = Ids::new(by.at);
    let mut recorded = Vec::with_capacity(actions.len());
    let numbered = actions.len() > 1;
    // A dispute changed twice in one go would be two changes of one key at once.
    let mut changed = std::collections::HashSet::new();
    for (i, action) in actions.into_iter().enumerate() {
        let checked = match &action {
            Action::Resolve { dispute, .. } | Action::Reassign { dispute, .. }
                if !changed.insert(dispute.clone()) =>
            {
                Err(ActionError::Invalid(format!(
                    "dispute '{dispute}' is changed by an earlier line already: record this change after that one is applied (in a file of its own)"
                )))
            }
            _ => checker.check(action, &mut ids).await,
        };
        match checked {
            Ok(one) => recorded.push(one),
            Err(error) if numbered => {
                return Err(ActionError::Line {
                    line: i + 1,
                    error: Box::new(error),
                });
            }
            Err(error) => return Err(error),
        }
    }
    let files = write::write(to, &recorded, by, &ids.file_name()).await?;
    Ok((recorded, files))
}

/// A collector id as `--as` gives it: letters, digits and `. _ @ -`, 64 at most.
fn check_who(who: &str) -> Result<(), ActionError> {
    let fine = !who.is_empty()
        && who.len() <= 64
        && (who.bytes()).all(|b| b.is_ascii_alphanumeric() || b".-_@".contains(&b));
    match fine {
        true => Ok(()),
        false => Err(ActionError::Invalid(format!(
            "--as '{who}' is not a collector id (letters, digits, '.', '_', '@' and '-', at most 64)"
        ))),
    }
}

/// Read a JSON-lines file of actions (blank lines skipped); an error names its line.
pub fn parse_lines(text: &str) -> Result<Vec<Action>, ActionError> {
    let mut actions = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let action = serde_json::from_str(line).map_err(|e| ActionError::Line {
            line: i + 1,
            error: Box::new(ActionError::Invalid(e.to_string())),
        })?;
        actions.push(action);
    }
    Ok(actions)
}

/// How a contact went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Outcome {
    Reached,
    LeftMessage,
    NoAnswer,
    WrongNumber,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reached => "reached",
            Outcome::LeftMessage => "left_message",
            Outcome::NoAnswer => "no_answer",
            Outcome::WrongNumber => "wrong_number",
        }
    }
}

/// The channel of a contact (the contract's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Call,
    Email,
    Sms,
    Letter,
    Portal,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Call => "call",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Letter => "letter",
            Channel::Portal => "portal",
        }
    }
}

/// An amount of money above zero with at most two decimals, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "String")]
pub struct Money(pub i128);

impl std::str::FromStr for Money {
    type Err = String;

    fn from_str(text: &str) -> Result<Money, String> {
        let text = text.trim();
        if text.contains(',') {
            return Err(format!(
                "'{text}' is not an amount: write it with a point for decimals and no thousands separator (like 1200.50)"
            ));
        }
        let bad = || {
            format!("'{text}' is not an amount above zero with at most two decimals (like 1200.50)")
        };
        let (whole, cents) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (!cents.is_empty() && !digits(cents)) || cents.len() > 2 {
            return Err(bad());
        }
        if whole.trim_start_matches('0').len() > 15 {
            return Err(format!(
                "'{text}' is more than any amount the feed holds (15 digits before the point)"
            ));
        }
        let whole: i128 = whole.parse().map_err(|_| bad())?;
        let cents: i128 = format!("{cents:0<2}").parse().map_err(|_| bad())?;
        match whole * 100 + cents {
            0 => Err(bad()),
            amount => Ok(Money(amount)),
        }
    }
}

impl TryFrom<serde_json::Value> for Money {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Money, String> {
        match value {
            serde_json::Value::String(s) => s.parse(),
            serde_json::Value::Number(n) => n.to_string().parse(),
            other => Err(format!("{other} is not an amount")),
        }
    }
}

impl From<Money> for String {
    fn from(money: Money) -> String {
        money.to_string()
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Why an action was not recorded: a sentence naming what is wrong. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Invalid(String),
    #[error("line {line}: {error}")]
    Line {
        line: usize,
        error: Box<ActionError>,
    },
    #[error("cannot check the action against the state: {0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("cannot write the action to '{url}': {source}")]
    Write {
        url: String,
        source: object_store::Error,
    },
    #[error("cannot encode the action's rows: {0}")]
    Encode(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_above_zero_with_two_decimals_at_most() {
        assert_eq!("1200.5".parse::<Money>(), Ok(Money(120_050)));
        assert_eq!("7".parse::<Money>(), Ok(Money(700)));
        for bad in ["0", "-3", "1.234", "abc", "", "1e3", "0.00"] {
            assert!(bad.parse::<Money>().is_err(), "{bad}");
        }
        let line = r#"{"action":"promise","customer":"C1","amount":120.5,"date":"2026-12-20"}"#;
        let action: Action = serde_json::from_str(line).unwrap();
        assert!(matches!(
            action,
            Action::Promise {
                amount: Money(12_050),
                ..
            }
        ));
    }
}
