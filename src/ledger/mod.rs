//! The KPI ledger: the amounts behind the KPI summary, kept up to date change by change.
//!
//! Everything in the summary is "as of" a date D, and days past due, buckets and the window
//! all move with D. So the ledger stores no figure for a D: it stores amounts keyed by the
//! dates they depend on (from when an amount is open, when it falls due, when cash came in),
//! summed per currency. The views of `queries/incremental/` turn them into the KPIs for any
//! D; their size follows the number of distinct dates and currencies, not of invoices.
//!
//! A change retracts the contribution of the invoice (or promise, or customer) it touches and
//! adds the new one (`design/incremental.md`): sums stay exact, retractions included. What is
//! not linear is kept apart: an invoice overpaid on some day (its open amount below zero) is
//! listed whole in `ledger_overpaid`, so that `add_weighted` can leave it out on those days;
//! a promise's outcome is decided per promise from the cash of its invoice or customer. The
//! plain views of `queries/` stay the definition, and tests compare the two on random feeds.

mod groups;
mod rows;
mod tables;

use std::hash::BuildHasher;

use arrow::array::RecordBatch;
use hashbrown::HashMap;

use crate::feed::contract::Entity;
use crate::state::table::{Delta, EntityTable};
use groups::{CustomerGroup, Facts, InvoiceGroup, Promise, Settlement};
use rows::{Invoices, Promises, Settlements};

/// Arrow's Date32: days since 1970-01-01.
pub type Day = i32;
/// A Decimal128(18,2) amount in its smallest unit (cents): 18 digits fit an i64.
pub type Money = i64;

/// A sum of amounts and a count of rows, kept under one key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sum {
    pub amount: i128,
    pub count: i64,
}

/// A map of sums that drops a key once its sum is back to zero, so that retractions leave
/// nothing behind.
#[derive(Debug, Clone)]
pub struct Sums<K>(HashMap<K, Sum>);

impl<K> Default for Sums<K> {
    fn default() -> Self {
        Sums(HashMap::new())
    }
}

impl<K: std::hash::Hash + Eq + Copy> Sums<K> {
    fn add(&mut self, key: K, amount: i128, count: i64) {
        let sum = self.0.entry(key).or_default();
        sum.amount += amount;
        sum.count += count;
        if *sum == Sum::default() {
            self.0.remove(&key);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Sum)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Who an invoice's open amount is, as of which days: `(currency, from, due, never
/// overpaid)`. An invoice adds its amount from its invoice date; each settlement subtracts
/// its amount from its own date (or the invoice date, if earlier).
pub type OpenKey = (u16, Day, Option<Day>, bool);

/// An invoice that is overpaid on some day, with its rows of `(from, amount)`.
#[derive(Debug, Clone)]
pub struct Overpaid {
    pub invoice_id: String,
    pub currency: u16,
    pub due: Option<Day>,
    pub rows: Vec<(Day, Money)>,
}

/// The KPI ledger of one state. See the module documentation.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The promise grace days the outcomes were decided with.
    grace_days: i32,
    currencies: Vec<String>,
    currency_ids: HashMap<String, u16>,
    /// Per invoice id (hashed, see [`group_key`]): its settlements and promises.
    invoices: HashMap<u128, InvoiceGroup>,
    /// Per customer with promises made on the account: its payments and those promises.
    customers: HashMap<u128, CustomerGroup>,
    pub open: Sums<OpenKey>,
    /// Credit sales: `(currency, invoice date)`, with the number of invoices.
    pub sales: Sums<(u16, Day)>,
    /// Cash on invoices: `(currency, first day the invoice is past due, payment date)`.
    pub recovery: Sums<(u16, Day, Day)>,
    pub overpaid: HashMap<u128, Overpaid>,
    /// Payments on no invoice: `(currency, payment date)`.
    pub unapplied: Sums<(u16, Day)>,
    /// Write-off adjustments: `(currency, adjustment date)`.
    pub write_offs: Sums<(u16, Day)>,
    /// Promises to pay: `(promised date, kept)`, counted.
    pub promises: Sums<(Day, bool)>,
}

/// Two seeded 64-bit hashes of an id. Keying groups by this instead of the id string keeps
/// ten million invoices in a few hundred megabytes; two ids share a key with a probability
/// of about 10^-25 at that size.
fn group_key(id: &str) -> u128 {
    const A: foldhash::quality::FixedState = foldhash::quality::FixedState::with_seed(0x5eed_0001);
    const B: foldhash::quality::FixedState = foldhash::quality::FixedState::with_seed(0x5eed_0002);
    ((A.hash_one(id) as u128) << 64) | B.hash_one(id) as u128
}

impl Ledger {
    /// Build the ledger from the current state in one pass per entity.
    pub fn build(
        tables: &std::collections::BTreeMap<Entity, EntityTable>,
        grace_days: i32,
    ) -> Ledger {
        let mut ledger = Ledger {
            grace_days,
            ..Ledger::default()
        };
        let table = |e: Entity| &tables[&e];
        for (batch, rows) in table(Entity::Promises).current_rows() {
            let promises = Promises::new(batch);
            for r in rows {
                ledger.file_promise(&promises.row(r), 1);
            }
        }
        for entity in [Entity::Payments, Entity::Adjustments] {
            let is_cash = entity == Entity::Payments;
            for (batch, rows) in table(entity).current_rows() {
                let settlements = Settlements::new(batch, is_cash);
                for r in rows {
                    ledger.file_settlement(&settlements.row(r), is_cash, 1);
                }
            }
        }
        for (batch, rows) in table(Entity::Invoices).current_rows() {
            let invoices = Invoices::new(batch);
            for r in rows {
                let image = invoices.row(r);
                if let Some(facts) = ledger.facts(&image) {
                    let key = group_key(image.invoice_id);
                    let group = ledger.invoices.remove(&key).unwrap_or_default();
                    ledger.add_balance(key, &facts, &group, 1);
                    ledger.invoices.insert(key, group);
                }
            }
        }
        let keys: Vec<u128> = ledger.invoices.keys().copied().collect();
        for key in keys {
            let group = ledger.invoices.remove(&key).expect("key listed");
            ledger.add_promise_outcomes(&group.promises, &group.cash(), 1);
            ledger.invoices.insert(key, group);
        }
        let keys: Vec<u128> = ledger.customers.keys().copied().collect();
        for key in keys {
            let group = ledger.customers.remove(&key).expect("key listed");
            ledger.add_promise_outcomes(&group.promises, &group.payments, 1);
            ledger.customers.insert(key, group);
        }
        ledger
    }

    pub fn grace_days(&self) -> i32 {
        self.grace_days
    }

    /// The currency codes, by the ids the sums use.
    pub fn currency(&self, id: u16) -> &str {
        &self.currencies[id as usize]
    }

    /// The ledger as tables for the engine (`ledger_open`, `ledger_sales`, …).
    pub fn tables(&self) -> Vec<(&'static str, RecordBatch)> {
        tables::to_batches(self)
    }

    /// Bring the ledger up to date with what one applied batch of `entity` changed.
    /// `invoices` is the invoices table after the batch was applied (read for the invoice a
    /// settlement belongs to); `payments` the payments table (read when a customer makes its
    /// first promise on the account).
    pub fn apply(
        &mut self,
        entity: Entity,
        delta: &Delta,
        invoices: &EntityTable,
        payments: &EntityTable,
    ) {
        match entity {
            Entity::Invoices => self.apply_invoices(delta),
            Entity::Payments | Entity::Adjustments => {
                self.apply_settlements(delta, entity == Entity::Payments, invoices)
            }
            Entity::Promises => self.apply_promises(delta, payments),
            _ => {}
        }
    }

    fn apply_invoices(&mut self, delta: &Delta) {
        let mut before: HashMap<u128, Facts> = HashMap::new();
        let mut after: HashMap<u128, Facts> = HashMap::new();
        for (batch, into) in [
            (&delta.retracted, &mut before),
            (&delta.inserted, &mut after),
        ] {
            let invoices = Invoices::new(batch);
            for r in 0..batch.num_rows() {
                let image = invoices.row(r);
                if let Some(facts) = self.facts(&image) {
                    into.insert(group_key(image.invoice_id), facts);
                }
            }
        }
        let touched: Vec<u128> = before.keys().chain(after.keys()).copied().collect();
        for key in touched {
            let (old, new) = (before.remove(&key), after.remove(&key));
            if old.is_none() && new.is_none() {
                continue;
            }
            let group = self.invoices.remove(&key).unwrap_or_default();
            if let Some(old) = &old {
                self.add_balance(key, old, &group, -1);
            }
            if let Some(new) = &new {
                self.add_balance(key, new, &group, 1);
            }
            self.keep_group(key, group);
        }
    }

    fn apply_settlements(&mut self, delta: &Delta, is_cash: bool, invoices: &EntityTable) {
        // Every invoice and customer group the batch touches: retract it whole, change it,
        // add it back.
        let mut touched_invoices: HashMap<u128, Option<Facts>> = HashMap::new();
        let mut touched_customers: Vec<u128> = Vec::new();
        for batch in [&delta.retracted, &delta.inserted] {
            let settlements = Settlements::new(batch, is_cash);
            for r in 0..batch.num_rows() {
                let image = settlements.row(r);
                if let Some(id) = image.invoice_id {
                    touched_invoices.entry(group_key(id)).or_insert_with(|| {
                        let (batch, row) = invoices.get(id)?;
                        self.facts(&Invoices::new(batch).row(row))
                    });
                }
                if let Some(id) = image.customer_id.filter(|_| is_cash) {
                    let key = group_key(id);
                    if self.customers.contains_key(&key) && !touched_customers.contains(&key) {
                        touched_customers.push(key);
                    }
                }
            }
        }
        for (key, facts) in &touched_invoices {
            let group = self.invoices.remove(key).unwrap_or_default();
            if let Some(facts) = facts {
                self.add_balance(*key, facts, &group, -1);
            }
            self.add_promise_outcomes(&group.promises, &group.cash(), -1);
            self.invoices.insert(*key, group);
        }
        for key in &touched_customers {
            let group = self
                .customers
                .remove(key)
                .expect("touched customers have a group");
            self.add_promise_outcomes(&group.promises, &group.payments, -1);
            self.customers.insert(*key, group);
        }
        for (batch, sign) in [(&delta.retracted, -1), (&delta.inserted, 1)] {
            let settlements = Settlements::new(batch, is_cash);
            for r in 0..batch.num_rows() {
                self.file_settlement(&settlements.row(r), is_cash, sign);
            }
        }
        for (key, facts) in &touched_invoices {
            let group = self.invoices.remove(key).unwrap_or_default();
            if let Some(facts) = facts {
                self.add_balance(*key, facts, &group, 1);
            }
            self.add_promise_outcomes(&group.promises, &group.cash(), 1);
            self.keep_group(*key, group);
        }
        for key in &touched_customers {
            let group = self
                .customers
                .remove(key)
                .expect("touched customers have a group");
            self.add_promise_outcomes(&group.promises, &group.payments, 1);
            self.customers.insert(*key, group);
        }
    }

    fn apply_promises(&mut self, delta: &Delta, payments: &EntityTable) {
        for (batch, sign) in [(&delta.retracted, -1), (&delta.inserted, 1)] {
            let promises = Promises::new(batch);
            for r in 0..batch.num_rows() {
                let image = promises.row(r);
                let Some(promise) = Promise::of(&image) else {
                    continue;
                };
                match (image.invoice_id, image.customer_id) {
                    (Some(id), _) => {
                        let key = group_key(id);
                        let mut group = self.invoices.remove(&key).unwrap_or_default();
                        let cash = group.cash();
                        self.add_promise_outcomes(&group.promises, &cash, -1);
                        group.change_promise(promise, sign);
                        self.add_promise_outcomes(&group.promises, &cash, 1);
                        self.keep_group(key, group);
                    }
                    (None, Some(id)) => {
                        let key = group_key(id);
                        let mut group = match self.customers.remove(&key) {
                            Some(group) => group,
                            None => CustomerGroup::from_payments(id, payments),
                        };
                        self.add_promise_outcomes(&group.promises, &group.payments, -1);
                        group.change_promise(promise, sign);
                        self.add_promise_outcomes(&group.promises, &group.payments, 1);
                        self.customers.insert(key, group);
                    }
                    (None, None) => self.add_promise_outcomes(&[promise], &[], sign),
                }
            }
        }
    }

    /// Record one settlement (or take it back, `sign` −1) in its invoice's group, its
    /// customer's group, and the unapplied-cash and write-off sums.
    fn file_settlement(&mut self, image: &rows::SettlementImage, is_cash: bool, sign: i64) {
        let currency = self.currency_id(image.currency);
        if let (Some(day), Some(amount)) = (image.day, image.amount) {
            if is_cash && image.invoice_id.is_none() {
                self.unapplied
                    .add((currency, day), sign as i128 * amount as i128, sign);
            }
            if image.write_off {
                self.write_offs
                    .add((currency, day), sign as i128 * amount as i128, sign);
            }
        }
        let Some(day) = image.day else { return };
        let settlement = Settlement {
            day,
            amount: image.amount,
            is_cash,
        };
        if let Some(id) = image.invoice_id {
            let key = group_key(id);
            let mut group = self.invoices.remove(&key).unwrap_or_default();
            group.change_settlement(settlement, sign);
            self.keep_group(key, group);
        }
        if let Some(id) = image.customer_id.filter(|_| is_cash)
            && let Some(group) = self.customers.get_mut(&group_key(id))
        {
            group.change_payment(settlement, sign);
        }
    }

    /// Record a promise in its invoice's or customer's group (when building).
    fn file_promise(&mut self, image: &rows::PromiseImage, sign: i64) {
        let Some(promise) = Promise::of(image) else {
            return;
        };
        match (image.invoice_id, image.customer_id) {
            (Some(id), _) => {
                let key = group_key(id);
                let mut group = self.invoices.remove(&key).unwrap_or_default();
                group.change_promise(promise, sign);
                self.keep_group(key, group);
            }
            (None, Some(id)) => {
                let group = self.customers.entry(group_key(id)).or_default();
                group.change_promise(promise, sign);
            }
            (None, None) => self.add_promise_outcomes(&[promise], &[], sign),
        }
    }

    /// Keep a group unless it holds nothing.
    fn keep_group(&mut self, key: u128, group: InvoiceGroup) {
        if !group.is_empty() {
            self.invoices.insert(key, group);
        }
    }

    fn currency_id(&mut self, code: &str) -> u16 {
        if let Some(id) = self.currency_ids.get(code) {
            return *id;
        }
        let id = self.currencies.len() as u16;
        self.currencies.push(code.to_string());
        self.currency_ids.insert(code.to_string(), id);
        id
    }

    /// What of an invoice image the balances depend on, if it exists (dated, not void).
    fn facts(&mut self, image: &rows::InvoiceImage) -> Option<Facts> {
        let (Some(invoice_date), Some(true)) = (image.invoice_date, image.not_void) else {
            return None;
        };
        Some(Facts {
            invoice_id: image.invoice_id.to_string(),
            currency: self.currency_id(image.currency),
            invoice_date,
            due_date: image.due_date,
            amount: image.amount,
        })
    }

    /// Add (`sign` 1) or retract (−1) what an existing invoice and its settlements contribute
    /// to the open, sales and recovery sums.
    fn add_balance(&mut self, key: u128, facts: &Facts, group: &InvoiceGroup, sign: i64) {
        let s = sign as i128;
        let ccy = facts.currency;
        let rows = groups::open_rows(facts, group);
        let never_overpaid = groups::never_negative(&rows);
        for (n, (from, amount)) in rows.iter().enumerate() {
            let count = if n == 0 { sign } else { 0 };
            let amount = amount.map_or(0, |a| a as i128);
            self.open.add(
                (ccy, *from, facts.due_date, never_overpaid),
                s * amount,
                count,
            );
        }
        self.sales.add(
            (ccy, facts.invoice_date),
            s * facts.amount.unwrap_or(0) as i128,
            sign,
        );
        if let Some(due) = facts.due_date {
            let past_due_from = facts.invoice_date.max(due + 1);
            for st in group.settlements.iter().filter(|st| st.is_cash) {
                if let Some(amount) = st.amount {
                    self.recovery
                        .add((ccy, past_due_from, st.day), s * amount as i128, sign);
                }
            }
        }
        if !never_overpaid {
            if sign > 0 {
                let rows = rows.iter().map(|(d, a)| (*d, a.unwrap_or(0))).collect();
                let overpaid = Overpaid {
                    invoice_id: facts.invoice_id.clone(),
                    currency: ccy,
                    due: facts.due_date,
                    rows,
                };
                self.overpaid.insert(key, overpaid);
            } else {
                self.overpaid.remove(&key);
            }
        }
    }

    /// Add or retract the outcome of each promise, decided on `cash` (the payments on its
    /// invoice, or on its customer).
    fn add_promise_outcomes(&mut self, promises: &[Promise], cash: &[Settlement], sign: i64) {
        for p in promises {
            let kept = p.kept(cash, self.grace_days);
            self.promises.add((p.promised, kept), 0, sign);
        }
    }
}
