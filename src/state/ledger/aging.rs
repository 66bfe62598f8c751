//! Per-customer aging at one pinned as-of date: what is open per customer, currency and due
//! date, kept up to date change by change (`ledger_aging`, read by `queries/incremental/aging.sql`).
//!
//! Unlike the other sums of the ledger, an invoice's open amount per customer cannot be kept
//! for every as-of date at once without a row per invoice and settlement (tens of millions).
//! So these sums are pinned to the as-of date of the last refresh: a change retracts and adds
//! the invoices it touches at that date, and a new as-of date (once a day when it follows the
//! feed or the clock) costs one pass over the invoices. At any other as-of date the engine
//! uses the plain `aging` view.

use hashbrown::HashMap;

use super::groups::{Facts, Settlement};
use super::{Day, Sums};

/// Customer ids as small numbers (`None` for an invoice without a customer), so that the sums
/// are keyed by a few bytes.
#[derive(Debug, Default)]
struct CustomerIds {
    ids: HashMap<String, u32>,
    names: Vec<Option<String>>,
}

impl CustomerIds {
    fn id(&mut self, customer_id: Option<&str>) -> u32 {
        let Some(customer_id) = customer_id else {
            return u32::MAX;
        };
        if let Some(id) = self.ids.get(customer_id) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(Some(customer_id.to_string()));
        self.ids.insert(customer_id.to_string(), id);
        id
    }

    fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).and_then(|n| n.as_deref())
    }
}

/// What is open at `as_of` per `(customer, currency, due date)`, over the invoices with
/// something open that day; the count is the number of such invoices.
#[derive(Debug, Default)]
pub struct PinnedAging {
    pub as_of: Day,
    customers: CustomerIds,
    pub sums: Sums<(u32, u16, Day)>,
}

impl PinnedAging {
    pub fn new(as_of: Day) -> Self {
        PinnedAging {
            as_of,
            ..PinnedAging::default()
        }
    }

    /// Add (`sign` 1) or retract (−1) an existing invoice: its open amount at the pinned date
    /// (amount − settlements dated up to it), when it is issued by then, has a due date and an
    /// amount, and something is open (the rules of `queries/aging.sql`).
    pub fn add(&mut self, facts: &Facts, settlements: &[Settlement], sign: i64) {
        let (Some(amount), Some(due)) = (facts.amount, facts.due_date) else {
            return;
        };
        if facts.invoice_date > self.as_of {
            return;
        }
        let settled: i128 = (settlements.iter())
            .filter(|s| s.day <= self.as_of)
            .map(|s| s.amount as i128)
            .sum();
        let open = amount as i128 - settled;
        if open == 0 {
            return;
        }
        let customer = self.customers.id(facts.customer_id);
        (self.sums).add((customer, facts.currency, due), sign as i128 * open, sign);
    }

    /// The customer id of a customer number of the sums.
    pub fn customer(&self, id: u32) -> Option<&str> {
        self.customers.name(id)
    }
}
