//! What goes out on a day: the policy's rules over the candidates, less what the ledger has.
//!
//! For each rule, in the policy's order, each invoice its trigger holds for has the latest
//! stage due at its days past due ([`super::policy::Rule::stage_due`]). Such an entry
//! (rule, stage, invoice) is:
//! - left alone when its reader (the customer, or the collector by a channel) already had a
//!   message about the invoice at this stage's day or later ([`Ledger::level`]): stages are
//!   known by their reader and day, not by the policy's names, so renaming a rule or a stage
//!   neither sends a stage again nor stops the next;
//! - skipped, with the reason, when the invoice is suppressed (recorded once per reason);
//! - otherwise due. A customer's due entries make **one message per audience and day**: the
//!   entry of the latest stage (by day; the first rule on a tie) chooses channel and
//!   template, and the message lists all the invoices. A customer written to already that day
//!   waits for the next.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use super::candidates::Candidate;
use super::ledger::{Item, Ledger, Message, Skip, stage_key};
use super::policy::{Audience, Channel, Policy, Slot, Stage};
use super::render::{CollectorView, Context, CustomerView, InvoiceView, Templates};

/// A message decided on: its customer and audience, and its entries (rule, stage and
/// candidate indexes), the lead first.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub customer_id: String,
    pub audience: Audience,
    /// (rule, stage, candidate) indexes; the first is the lead, the rest by due date.
    pub entries: Vec<EntryAt>,
}

impl Draft {
    /// The channel it goes out on: its lead stage's.
    pub fn channel(&self, policy: &Policy) -> Channel {
        let (rule, stage, _) = self.entries[0];
        policy.rules[rule].stages[stage].channel
    }
}

/// (rule, stage, candidate) indexes of one entry.
type EntryAt = (usize, usize, usize);

/// Customers and slots that have a message going out today already (one that waited and goes
/// now, or keeps waiting): their entries wait for the next day.
pub type Held = HashSet<(String, Slot)>;

/// A message made from a draft, and why it cannot go out, if it cannot.
#[derive(Debug, Clone)]
pub struct Composed {
    pub message: Message,
    /// A malformed or missing address, a template that does not render for it: the message
    /// is recorded as failed, alone.
    pub problem: Option<String>,
}

/// A day's decisions.
#[derive(Debug, Default)]
pub struct Plan {
    pub drafts: Vec<Draft>,
    pub skips: Vec<Skip>,
    /// Entries due for customers who already have their message of the day: they go out on
    /// the next day.
    pub deferred: usize,
}

/// Decide `day`'s messages.
/// `held` customers' entries wait for the next day.
pub fn plan(
    policy: &Policy,
    candidates: &[Candidate],
    ledger: &Ledger,
    day: NaiveDate,
    now: DateTime<Utc>,
    held: &Held,
) -> Plan {
    let mut out = Plan::default();
    // (customer, slot) → its due entries, in the order first seen.
    let mut due: Vec<((String, Slot), Vec<EntryAt>)> = Vec::new();
    let mut at: HashMap<(String, Slot), usize> = HashMap::new();
    for (r, rule) in policy.rules.iter().enumerate() {
        for (c, candidate) in candidates.iter().enumerate() {
            if !candidate.triggered[r] {
                continue;
            }
            let Some(stage) = rule.stage_due(candidate.days_past_due) else {
                continue;
            };
            let s = rule
                .stages
                .iter()
                .position(|x| x == stage)
                .expect("a stage of the rule");
            if (ledger.level(&candidate.invoice_id, Slot::of(stage)))
                .is_some_and(|level| level >= stage.day)
            {
                continue;
            }
            // Records written before stages were kept by day: by name, as they were then.
            let recorded = ledger.stages_of(&rule.name, &candidate.invoice_id);
            let later_or_same = |name: &String| {
                (rule.stages.iter())
                    .position(|x| &x.name == name)
                    .is_some_and(|i| i >= s)
            };
            if recorded.iter().any(later_or_same) {
                continue;
            }
            if let Some(reason) = &candidate.suppressed {
                let skip = Skip {
                    day,
                    rule: rule.name.clone(),
                    stage: stage.name.clone(),
                    customer_id: candidate.customer_id.clone(),
                    invoice_id: candidate.invoice_id.clone(),
                    reason: reason.clone(),
                    message_id: None,
                    at: now,
                    stage_key: Some(stage_key(Slot::of(stage), stage.day)),
                };
                if !ledger.has_skip(&skip) {
                    out.skips.push(skip);
                }
                continue;
            }
            // An open amount without a rate counts as its own amount against the minimum.
            let open_rc = candidate.open_amount_rc.unwrap_or(candidate.open_amount);
            if open_rc < rule.min_open_amount {
                continue;
            }
            let key = (candidate.customer_id.clone(), Slot::of(stage));
            if ledger.has_written(day, &key.0, key.1) || held.contains(&key) {
                out.deferred += 1;
                continue;
            }
            let i = *at.entry(key.clone()).or_insert_with(|| {
                due.push((key, Vec::new()));
                due.len() - 1
            });
            due[i].1.push((r, s, c));
        }
    }
    for ((customer_id, slot), mut entries) in due {
        let stage_day = |&(r, s, _): &EntryAt| policy.rules[r].stages[s].day;
        let lead = (0..entries.len())
            .max_by_key(|&i| (stage_day(&entries[i]), std::cmp::Reverse(entries[i].0)))
            .expect("a group has entries");
        let lead = entries.remove(lead);
        entries.sort_by(|a, b| {
            let (ca, cb) = (&candidates[a.2], &candidates[b.2]);
            (ca.due_date, &ca.invoice_id).cmp(&(cb.due_date, &cb.invoice_id))
        });
        // Every entry is recorded; an invoice due in two rules is listed once (compose).
        let mut all = vec![lead];
        all.extend(entries);
        out.drafts.push(Draft {
            customer_id,
            audience: slot.audience,
            entries: all,
        });
    }
    out
}

/// The `Message-ID` of a customer's message of a day to an audience: the same whenever it is
/// made, so a message sent again after a crash carries the id it had.
pub fn message_id(day: NaiveDate, customer: &str, slot: Slot, sender: &str) -> String {
    let safe: String = (customer.chars())
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '_',
            },
        )
        .take(40)
        .collect();
    let hash = twox_hash::XxHash64::oneshot(0, customer.as_bytes());
    let domain = sender
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("arstream.invalid");
    format!(
        "<{day}.{safe}.{:08x}.{}@{domain}>",
        hash as u32,
        slot.name()
    )
}

/// The entries of `draft` as the ledger records them.
pub fn items(policy: &Policy, candidates: &[Candidate], draft: &Draft) -> Vec<Item> {
    (draft.entries.iter())
        .map(|&(r, s, c)| {
            let x = &candidates[c];
            Item {
                rule: policy.rules[r].name.clone(),
                stage: policy.rules[r].stages[s].name.clone(),
                level: Some(policy.rules[r].stages[s].day),
                invoice_id: x.invoice_id.clone(),
                due_date: x.due_date,
                days_past_due: x.days_past_due,
                open_amount: x.open_amount,
                currency: x.currency.clone(),
            }
        })
        .collect()
}

/// Why `address` cannot be an email recipient, if it cannot.
fn email_problem(address: Option<&str>) -> Option<String> {
    match address.map(str::trim).filter(|a| !a.is_empty()) {
        None => Some("no email address".into()),
        Some(a) => a
            .parse::<lettre::Address>()
            .err()
            .map(|e| format!("malformed email address '{a}': {e}")),
    }
}

/// A name on one line: a line break in the feed's text (`Evil Corp\r\nBcc: …`) would end an
/// email's subject, or a line of an SMS, where the template puts it.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `phone` in E.164 as a gateway takes it: `+` and the digits, nothing between them.
fn e164(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    format!("+{digits}")
}

/// Why `phone` cannot be an SMS recipient, if it cannot: E.164, `+` then 7 to 15 digits
/// (spaces, dots, dashes and parentheses are allowed between them).
fn phone_problem(phone: Option<&str>) -> Option<String> {
    let Some(p) = phone.map(str::trim).filter(|p| !p.is_empty()) else {
        return Some("no phone number".into());
    };
    let rest = p.strip_prefix('+');
    let digits = p.chars().filter(|c| c.is_ascii_digit()).count();
    let allowed = p
        .chars()
        .skip(1)
        .all(|c| c.is_ascii_digit() || " .-()".contains(c));
    match rest.is_some() && allowed && (7..=15).contains(&digits) {
        true => None,
        false => Some(format!(
            "malformed phone number '{p}': not +<country code><number>"
        )),
    }
}

/// A draft as a message: its recipient, language and words, and where it is to go (`via`).
pub fn compose(
    policy: &Policy,
    templates: &Templates,
    candidates: &[Candidate],
    draft: &Draft,
    (day, now): (NaiveDate, DateTime<Utc>),
    via: &str,
) -> Composed {
    let (lead_rule, lead_stage, lead_candidate) = draft.entries[0];
    let rule = &policy.rules[lead_rule];
    let stage: &Stage = &rule.stages[lead_stage];
    let first = &candidates[lead_candidate];
    let id = message_id(day, &draft.customer_id, Slot::of(stage), &policy.sender);
    let reader_language = match draft.audience {
        Audience::Customer => first.language.as_deref(),
        // Collectors read the policy's language.
        Audience::Collector => None,
    };
    let language = templates.language_for(&stage.template, reader_language);
    let mut seen = std::collections::HashSet::new();
    let invoices: Vec<InvoiceView> = (draft.entries.iter())
        .filter(|(_, _, c)| seen.insert(*c))
        .map(|&(r, s, c)| {
            let x = &candidates[c];
            InvoiceView {
                invoice_id: x.invoice_id.clone(),
                invoice_date: x.invoice_date,
                due_date: x.due_date,
                amount: x.amount,
                open_amount: x.open_amount,
                currency: x.currency.clone(),
                days_past_due: x.days_past_due,
                rule: policy.rules[r].name.clone(),
                stage: policy.rules[r].stages[s].name.clone(),
            }
        })
        .collect();
    let mut context = Context::new(
        CustomerView {
            id: first.customer_id.clone(),
            name: one_line(&first.customer_name),
            email: first.email.clone(),
            phone: first.phone.clone(),
            country: first.country.clone(),
        },
        CollectorView {
            id: first.collector_id.clone(),
            name: first.collector_name.as_deref().map(one_line),
            email: first.collector_email.clone(),
        },
        invoices,
        (rule.name.clone(), stage.name.clone()),
        day,
        draft.audience.name().into(),
        language.clone(),
        (id.clone(), policy.sender.clone()),
    );
    let rendered = templates.payment_link(&context).and_then(|link| {
        context.payment_link = link;
        templates.render(&stage.template, &context)
    });
    let (to, mut problem) = match (stage.channel, draft.audience) {
        (Channel::Email, Audience::Customer) => {
            (first.email.clone(), email_problem(first.email.as_deref()))
        }
        (Channel::Email, Audience::Collector) => {
            let problem = match &first.collector_email {
                None => Some("the customer has no collector with an email address".into()),
                Some(e) => email_problem(Some(e)),
            };
            (first.collector_email.clone(), problem)
        }
        (Channel::Sms, Audience::Customer) => {
            let problem = phone_problem(first.phone.as_deref());
            let to = match problem {
                None => first.phone.as_deref().map(e164),
                Some(_) => first.phone.clone(),
            };
            (to, problem)
        }
        (Channel::Sms, Audience::Collector) => (
            None,
            Some(
                "collectors have no phone number in the feed: escalate by email or webhook".into(),
            ),
        ),
        (Channel::Webhook, _) => (Some(first.customer_id.clone()), None),
    };
    let (language, subject, body) = match rendered {
        Ok(r) => (r.language, r.subject, r.body),
        Err(e) => {
            problem = problem.or(Some(e.to_string()));
            (language, String::new(), String::new())
        }
    };
    let message = Message {
        id,
        day,
        customer_id: draft.customer_id.clone(),
        audience: draft.audience,
        channel: stage.channel,
        rule: rule.name.clone(),
        stage: stage.name.clone(),
        to: to.map(|t| t.trim().to_string()).unwrap_or_default(),
        language,
        subject,
        body,
        items: items(policy, candidates, draft),
        recorded_at: now,
        via: Some(via.to_string()),
    };
    Composed { message, problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_before_anything_is_sent() {
        assert_eq!(email_problem(Some("ap@acme.example")), None);
        assert!(
            email_problem(Some("ap@@acme"))
                .unwrap()
                .contains("malformed")
        );
        assert_eq!(email_problem(None).unwrap(), "no email address");
        assert_eq!(phone_problem(Some("+1-555-0004")), None);
        assert_eq!(e164("+1-555-0009"), "+15550009");
        assert_eq!(e164("+33 6 12 34 56 78"), "+33612345678");
        assert_eq!(phone_problem(Some("+33 6 12 34 56 78")), None);
        assert!(
            phone_problem(Some("555-0004"))
                .unwrap()
                .contains("malformed")
        );
        assert!(
            phone_problem(Some("+1 call me"))
                .unwrap()
                .contains("malformed")
        );
    }

    #[test]
    fn a_message_id_is_the_same_whenever_it_is_made() {
        let day = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        let customer = Slot {
            audience: Audience::Customer,
            channel: None,
        };
        let a = message_id(day, "C 1", customer, "AR <ar@acme.example>");
        assert_eq!(a, message_id(day, "C 1", customer, "AR <ar@acme.example>"));
        assert!(
            a.starts_with("<2025-12-31.C_1.") && a.ends_with(".customer@acme.example>"),
            "{a}"
        );
        assert_ne!(a, message_id(day, "C_1", customer, "AR <ar@acme.example>"));
        let case = Slot {
            audience: Audience::Collector,
            channel: Some(Channel::Webhook),
        };
        assert!(
            message_id(day, "C 1", case, "ar@acme.example")
                .ends_with(".collector-webhook@acme.example>")
        );
    }
}
