//! Collector assignment: who works each customer of the worklist.
//!
//! The rules, in order:
//! 1. A collector works only customers whose language they speak (`collectors.languages`, a
//!    comma-separated list; a tag matches on its primary language, so `en-GB` matches `en`).
//! 2. No collector gets more accounts than their `capacity`.
//! 3. A customer keeps its current owner (`customers.collector_id`) where rules 1 and 2
//!    allow: owners are served first, in worklist order.
//! 4. The others go, in worklist order (highest expected amount at risk first), to the
//!    collector who may take them and carries the least expected amount at risk so far.
//! 5. A customer no collector may take has none, and the reason says why.

use std::collections::HashMap;

/// A customer of the worklist, in worklist order.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub customer_id: String,
    pub language: Option<String>,
    pub owner: Option<String>,
    pub expected_at_risk: f64,
}

/// A collector, with what they speak and how many accounts they can work.
#[derive(Debug, Clone, PartialEq)]
pub struct Collector {
    pub collector_id: String,
    pub languages: Vec<String>,
    pub capacity: u32,
}

/// Who works an account, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub customer_id: String,
    pub collector_id: Option<String>,
    pub reason: String,
}

/// The primary language of a tag, lower case: `en-GB` → `en`.
fn primary(tag: &str) -> String {
    let tag = tag.trim();
    tag.split(['-', '_'])
        .next()
        .unwrap_or(tag)
        .to_ascii_lowercase()
}

impl Collector {
    /// From the `collectors` table's columns.
    pub fn new(collector_id: &str, languages: Option<&str>, capacity: Option<i32>) -> Collector {
        Collector {
            collector_id: collector_id.to_string(),
            languages: (languages.unwrap_or_default().split(','))
                .map(primary)
                .filter(|l| !l.is_empty())
                .collect(),
            capacity: capacity.unwrap_or(0).max(0) as u32,
        }
    }

    fn speaks(&self, language: &str) -> bool {
        self.languages.iter().any(|l| *l == language)
    }
}

/// Assign `accounts` (in worklist order) to `collectors`; one assignment per account, in the
/// same order.
pub fn assign(accounts: &[Account], collectors: &[Collector]) -> Vec<Assignment> {
    assign_onto(accounts, collectors, &[])
}

/// [`assign`] onto collectors who already carry the accounts `kept` (collector id, expected
/// amount at risk): between two full assignments, the customers a refresh touched are
/// assigned this way, and the others keep their collector.
pub fn assign_onto(
    accounts: &[Account],
    collectors: &[Collector],
    kept: &[(&str, f64)],
) -> Vec<Assignment> {
    let mut load = vec![(0u32, 0.0f64); collectors.len()];
    let index: HashMap<&str, usize> = (collectors.iter().enumerate())
        .map(|(i, c)| (c.collector_id.as_str(), i))
        .collect();
    for (collector, at_risk) in kept {
        if let Some(&c) = index.get(collector) {
            load[c].0 += 1;
            load[c].1 += at_risk;
        }
    }
    let language = |a: &Account| a.language.as_deref().map(primary).unwrap_or_default();
    let mut out: Vec<Option<Assignment>> = vec![None; accounts.len()];
    // Rule 3: owners first.
    for (slot, account) in out.iter_mut().zip(accounts) {
        let Some(&c) = account.owner.as_deref().and_then(|o| index.get(o)) else {
            continue;
        };
        let collector = &collectors[c];
        if collector.speaks(&language(account)) && load[c].0 < collector.capacity {
            load[c].0 += 1;
            load[c].1 += account.expected_at_risk;
            *slot = Some(Assignment {
                customer_id: account.customer_id.clone(),
                collector_id: Some(collector.collector_id.clone()),
                reason: "current owner kept".into(),
            });
        }
    }
    // Rule 4: the rest, balanced.
    for (slot, account) in out.iter_mut().zip(accounts) {
        if slot.is_some() {
            continue;
        }
        let lang = language(account);
        let speakers: Vec<usize> = (0..collectors.len())
            .filter(|&c| collectors[c].speaks(&lang))
            .collect();
        let least_loaded = (speakers.iter().copied())
            .filter(|&c| load[c].0 < collectors[c].capacity)
            .min_by(|&a, &b| {
                (load[a].1.total_cmp(&load[b].1))
                    .then(load[a].0.cmp(&load[b].0))
                    .then(collectors[a].collector_id.cmp(&collectors[b].collector_id))
            });
        let why_not_owner = match account.owner.as_deref() {
            None => "no current owner".to_string(),
            Some(owner) => match index.get(owner) {
                None => format!("owner {owner} is not a collector"),
                Some(&c) if !collectors[c].speaks(&lang) => {
                    format!("owner {owner} does not speak '{lang}'")
                }
                Some(&c) => format!(
                    "owner {owner} is at capacity ({} accounts)",
                    collectors[c].capacity
                ),
            },
        };
        *slot = Some(match least_loaded {
            Some(c) => {
                load[c].0 += 1;
                load[c].1 += account.expected_at_risk;
                Assignment {
                    customer_id: account.customer_id.clone(),
                    collector_id: Some(collectors[c].collector_id.clone()),
                    reason: format!("{why_not_owner}: least expected amount at risk"),
                }
            }
            None => Assignment {
                customer_id: account.customer_id.clone(),
                collector_id: None,
                reason: match (lang.is_empty(), speakers.is_empty()) {
                    (true, _) => "no language on the customer record".into(),
                    (false, true) => format!("no collector speaks '{lang}'"),
                    (false, false) => {
                        format!("every collector who speaks '{lang}' is at capacity")
                    }
                },
            },
        });
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, language: &str, owner: Option<&str>, at_risk: f64) -> Account {
        Account {
            customer_id: id.into(),
            language: Some(language.into()),
            owner: owner.map(str::to_string),
            expected_at_risk: at_risk,
        }
    }

    fn collector_of<'a>(out: &'a [Assignment], id: &str) -> (Option<&'a str>, &'a str) {
        let a = out.iter().find(|a| a.customer_id == id).unwrap();
        (a.collector_id.as_deref(), a.reason.as_str())
    }

    #[test]
    fn language_capacity_owners_balance_and_the_unassignable() {
        let collectors = [
            Collector::new("ANNA", Some("en,de"), Some(2)),
            Collector::new("BEN", Some("en-US"), Some(3)),
            Collector::new("CHIE", Some(" ja , en"), Some(1)),
        ];
        let accounts = [
            account("C1", "de-DE", Some("BEN"), 900.0), // BEN speaks no German
            account("C2", "en-GB", Some("BEN"), 800.0), // kept
            account("C3", "en-US", None, 700.0),
            account("C4", "ja-JP", Some("CHIE"), 600.0), // kept
            account("C5", "ja", None, 500.0),            // CHIE full
            account("C6", "fr-FR", Some("ANNA"), 400.0), // nobody speaks French
            account("C7", "de", None, 300.0),            // ANNA full after C1 and C3? see below
            account("C8", "en", Some("ANNA"), 200.0),    // owner kept
        ];
        let out = assign(&accounts, &collectors);
        assert_eq!(out.len(), accounts.len());
        assert_eq!(
            collector_of(&out, "C2"),
            (Some("BEN"), "current owner kept")
        );
        assert_eq!(
            collector_of(&out, "C4"),
            (Some("CHIE"), "current owner kept")
        );
        assert_eq!(
            collector_of(&out, "C8"),
            (Some("ANNA"), "current owner kept")
        );
        // C1 must go to the only German speaker.
        assert_eq!(
            collector_of(&out, "C1"),
            (
                Some("ANNA"),
                "owner BEN does not speak 'de': least expected amount at risk"
            )
        );
        // ANNA now has C8 and C1 (full); C3 goes to BEN (800) rather than CHIE (full).
        assert_eq!(collector_of(&out, "C3").0, Some("BEN"));
        assert_eq!(
            collector_of(&out, "C5"),
            (None, "every collector who speaks 'ja' is at capacity")
        );
        assert_eq!(collector_of(&out, "C6"), (None, "no collector speaks 'fr'"));
        assert_eq!(
            collector_of(&out, "C7"),
            (None, "every collector who speaks 'de' is at capacity")
        );
        for (i, c) in collectors.iter().enumerate() {
            let n = (out.iter())
                .filter(|a| a.collector_id.as_deref() == Some(c.collector_id.as_str()))
                .count();
            assert!(n as u32 <= c.capacity, "collector {i} over capacity");
        }
    }

    #[test]
    fn accounts_are_assigned_onto_the_loads_collectors_carry() {
        let collectors = [
            Collector::new("A", Some("en"), Some(2)),
            Collector::new("B", Some("en"), Some(2)),
        ];
        // A carries two accounts already (at capacity), B one worth less than the new one.
        let kept = [("A", 500.0), ("A", 100.0), ("B", 50.0)];
        let out = assign_onto(
            &[
                account("N1", "en", Some("A"), 80.0),
                account("N2", "en", None, 10.0),
            ],
            &collectors,
            &kept,
        );
        assert_eq!(
            collector_of(&out, "N1"),
            (
                Some("B"),
                "owner A is at capacity (2 accounts): least expected amount at risk"
            )
        );
        assert_eq!(collector_of(&out, "N2").0, None);
        assert_eq!(
            collector_of(&out, "N2").1,
            "every collector who speaks 'en' is at capacity"
        );
    }

    #[test]
    fn the_rest_is_balanced_by_expected_amount_at_risk() {
        let collectors = [
            Collector::new("A", Some("en"), Some(10)),
            Collector::new("B", Some("en"), Some(10)),
        ];
        let accounts: Vec<Account> = [1000.0, 600.0, 500.0, 100.0]
            .iter()
            .enumerate()
            .map(|(i, &r)| account(&format!("C{i}"), "en", None, r))
            .collect();
        let out = assign(&accounts, &collectors);
        let who: Vec<Option<&str>> = out.iter().map(|a| a.collector_id.as_deref()).collect();
        // 1000 → A; 600 → B; 500 → B (600 < 1000); 100 → A (1000 < 1100).
        assert_eq!(who, [Some("A"), Some("B"), Some("B"), Some("A")]);
        assert!(out[0].reason.starts_with("no current owner"));
    }
}
