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

mod aging;
mod groups;
mod rows;
mod sharded;
mod tables;

pub use tables::TABLES;

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use arrow::array::RecordBatch;
use hashbrown::HashMap;

use crate::feed::contract::Entity;
use crate::state::table::{Delta, EntityTable};
pub use aging::PinnedAging;
use groups::{CustomerGroup, Facts, Promise, Promises, Settlement, Settlements};
use rows::Invoices;
use sharded::{Sharded, shard_of};

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

/// The sums of the ledger: what its tables show.
#[derive(Debug, Default)]
pub struct Totals {
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
    /// Per customer, currency and due date, at one as-of date (see [`PinnedAging`]).
    pub aging: Option<PinnedAging>,
}

/// Currency codes as small numbers, so that sums are keyed by two bytes.
#[derive(Debug, Default)]
struct Currencies {
    codes: Vec<String>,
    ids: HashMap<String, u16>,
    last: Option<u16>,
}

impl Currencies {
    fn id(&mut self, code: &str) -> u16 {
        // Rows of a file mostly share a currency: try the last one first.
        if let Some(last) = self.last
            && self.codes[last as usize] == code
        {
            return last;
        }
        let id = self.id_of(code);
        self.last = Some(id);
        id
    }

    fn id_of(&mut self, code: &str) -> u16 {
        if let Some(id) = self.ids.get(code) {
            return *id;
        }
        let id = self.codes.len() as u16;
        self.codes.push(code.to_string());
        self.ids.insert(code.to_string(), id);
        id
    }

    /// What of an invoice image the balances depend on, if it exists (dated, not void).
    fn facts<'a>(&mut self, image: &rows::InvoiceImage<'a>) -> Option<Facts<'a>> {
        let (Some(invoice_date), Some(true)) = (image.invoice_date, image.not_void) else {
            return None;
        };
        Some(Facts {
            invoice_id: image.invoice_id,
            customer_id: image.customer_id,
            currency: self.id(image.currency),
            invoice_date,
            due_date: image.due_date,
            amount: image.amount,
        })
    }
}

/// The KPI ledger of one state. See the module documentation.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The promise grace days the outcomes were decided with.
    grace_days: i32,
    currencies: Currencies,
    /// Per invoice id (hashed, see [`group_key`]): its payments and adjustments.
    settlements: Sharded<Settlements>,
    /// Per invoice id: the promises made on it.
    promises: Sharded<Promises>,
    /// Per customer with promises made on the account: its payments and those promises.
    customers: Sharded<CustomerGroup>,
    pub totals: Totals,
    /// While building on two threads: the half of the keys this part fills.
    building: Option<usize>,
}

/// Two seeded 64-bit hashes of an id. Keying groups by this instead of the id string keeps
/// ten million invoices in a few hundred megabytes; two ids share a key with a probability
/// of about 10^-25 at that size.
fn group_key(id: &str) -> u128 {
    const A: foldhash::quality::FixedState = foldhash::quality::FixedState::with_seed(0x5eed_0001);
    const B: foldhash::quality::FixedState = foldhash::quality::FixedState::with_seed(0x5eed_0002);
    ((A.hash_one(id) as u128) << 64) | B.hash_one(id) as u128
}

/// The list filed under `key`, empty when there is none.
fn list<'a, A: smallvec::Array>(
    map: &'a Sharded<smallvec::SmallVec<A>>,
    key: &u128,
) -> &'a [A::Item] {
    map.get(key).map_or(&[], |l| l.as_slice())
}

impl Ledger {
    /// Build the ledger from the current state, on two threads (each files the groups of
    /// half the keys), in one pass per entity each.
    pub fn build(tables: &BTreeMap<Entity, EntityTable>, grace_days: i32) -> Ledger {
        let mut halves: Vec<Ledger> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|half| scope.spawn(move || Ledger::build_half(tables, grace_days, half)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a ledger build thread panicked"))
                .collect()
        });
        let mut second = halves.pop().expect("two halves");
        let mut ledger = halves.pop().expect("two halves");
        ledger.settlements.take_half(&mut second.settlements, 1);
        ledger.promises.take_half(&mut second.promises, 1);
        ledger.customers.take_half(&mut second.customers, 1);
        let ids: Vec<u16> = (second.currencies.codes.iter())
            .map(|code| ledger.currencies.id(code))
            .collect();
        ledger.totals.absorb(second.totals, &ids);
        ledger.building = None;
        tracing::debug!(
            invoices = ledger.settlements.len(),
            open = ledger.totals.open.len(),
            recovery = ledger.totals.recovery.len(),
            sales = ledger.totals.sales.len(),
            overpaid = ledger.totals.overpaid.len(),
            "ledger built"
        );
        ledger
    }

    /// The part of the ledger for the keys of one half (the sums without a key go with half 0).
    fn build_half(tables: &BTreeMap<Entity, EntityTable>, grace_days: i32, half: usize) -> Ledger {
        let mut ledger = Ledger {
            grace_days,
            building: Some(half),
            ..Ledger::default()
        };
        let table = |e: Entity| &tables[&e];
        ledger
            .settlements
            .reserve(table(Entity::Invoices).live_rows());
        ledger.promises.reserve(table(Entity::Promises).live_rows());
        for (batch, rows) in table(Entity::Promises).current_rows() {
            let promises = rows::Promises::new(batch);
            for r in rows {
                ledger.file_promise(&promises.row(r));
            }
        }
        for entity in [Entity::Payments, Entity::Adjustments] {
            let is_cash = entity == Entity::Payments;
            for (batch, rows) in table(entity).current_rows() {
                let settlements = rows::Settlements::new(batch, is_cash);
                for r in rows {
                    ledger.file_settlement(&settlements.row(r), is_cash, 1);
                }
            }
        }
        for (batch, rows) in table(Entity::Invoices).current_rows() {
            let invoices = Invoices::new(batch);
            for r in rows {
                let image = invoices.row(r);
                let key = group_key(image.invoice_id);
                if !ledger.files(key) {
                    continue;
                }
                if let Some(facts) = ledger.currencies.facts(&image) {
                    let settlements = list(&ledger.settlements, &key);
                    ledger.totals.add_balance(key, &facts, settlements, 1);
                }
            }
        }
        for (key, promises) in ledger.promises.iter() {
            let settlements = list(&ledger.settlements, key);
            (ledger.totals).add_promise_outcomes(promises, settlements, grace_days, 1);
        }
        for (_, group) in ledger.customers.iter() {
            (ledger.totals).add_promise_outcomes(&group.promises, &group.payments, grace_days, 1);
        }
        ledger
    }

    /// Whether this (part of the) ledger files the group of `key`.
    fn files(&self, key: u128) -> bool {
        self.building.is_none_or(|half| shard_of(key) == half)
    }

    /// Whether this (part of the) ledger keeps the sums that belong to no group.
    fn files_keyless(&self) -> bool {
        self.building.is_none_or(|half| half == 0)
    }

    pub fn grace_days(&self) -> i32 {
        self.grace_days
    }

    /// Keep per-customer aging at `as_of` from now on: a pass over the invoices when the
    /// ledger keeps it at another date (or none), nothing when it is at this one already.
    pub fn pin_aging(&mut self, as_of: Day, invoices: &EntityTable) {
        if self.totals.aging.as_ref().is_some_and(|a| a.as_of == as_of) {
            return;
        }
        let mut aging = PinnedAging::new(as_of);
        for (batch, rows) in invoices.current_rows() {
            let invoices = Invoices::new(batch);
            for r in rows {
                let image = invoices.row(r);
                if let Some(facts) = self.currencies.facts(&image) {
                    let key = group_key(image.invoice_id);
                    aging.add(&facts, list(&self.settlements, &key), 1);
                }
            }
        }
        tracing::debug!(rows = aging.sums.len(), "aging pinned");
        self.totals.aging = Some(aging);
    }

    /// The as-of date per-customer aging is kept at, if any.
    pub fn aging_as_of(&self) -> Option<Day> {
        self.totals.aging.as_ref().map(|a| a.as_of)
    }

    /// The currency code of a currency id of the sums.
    pub fn currency(&self, id: u16) -> &str {
        &self.currencies.codes[id as usize]
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

    /// An invoice changed: retract what its old image contributed, add its new one (its
    /// settlements and promises stay as they are).
    fn apply_invoices(&mut self, delta: &Delta) {
        for (batch, sign) in [(&delta.retracted, -1), (&delta.inserted, 1)] {
            let invoices = Invoices::new(batch);
            for r in 0..batch.num_rows() {
                let image = invoices.row(r);
                if let Some(facts) = self.currencies.facts(&image) {
                    let key = group_key(image.invoice_id);
                    let settlements = list(&self.settlements, &key);
                    self.totals.add_balance(key, &facts, settlements, sign);
                }
            }
        }
    }

    /// Payments or adjustments changed: every invoice and customer they touch is retracted
    /// whole, changed, and added back.
    fn apply_settlements(&mut self, delta: &Delta, is_cash: bool, invoices: &EntityTable) {
        let mut touched_invoices: HashMap<u128, Option<Facts>> = HashMap::new();
        let mut touched_customers: Vec<u128> = Vec::new();
        for batch in [&delta.retracted, &delta.inserted] {
            let settlements = rows::Settlements::new(batch, is_cash);
            for r in 0..batch.num_rows() {
                let image = settlements.row(r);
                if let Some(id) = image.invoice_id {
                    let currencies = &mut self.currencies;
                    touched_invoices.entry(group_key(id)).or_insert_with(|| {
                        let (batch, row) = invoices.get(id)?;
                        currencies.facts(&Invoices::new(batch).row(row))
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
        for sign in [-1, 1] {
            if sign > 0 {
                for (batch, sign) in [(&delta.retracted, -1), (&delta.inserted, 1)] {
                    let settlements = rows::Settlements::new(batch, is_cash);
                    for r in 0..batch.num_rows() {
                        self.file_settlement(&settlements.row(r), is_cash, sign);
                    }
                }
            }
            for (key, facts) in &touched_invoices {
                let settlements = list(&self.settlements, key);
                if let Some(facts) = facts {
                    self.totals.add_balance(*key, facts, settlements, sign);
                }
                let promises = list(&self.promises, key);
                (self.totals).add_promise_outcomes(promises, settlements, self.grace_days, sign);
            }
            for key in &touched_customers {
                let group = self
                    .customers
                    .get(key)
                    .expect("touched customers have a group");
                (self.totals).add_promise_outcomes(
                    &group.promises,
                    &group.payments,
                    self.grace_days,
                    sign,
                );
            }
        }
    }

    /// Promises changed: each is judged again on the cash of its invoice or customer.
    fn apply_promises(&mut self, delta: &Delta, payments: &EntityTable) {
        let grace = self.grace_days;
        for (batch, sign) in [(&delta.retracted, -1), (&delta.inserted, 1)] {
            let promises = rows::Promises::new(batch);
            for r in 0..batch.num_rows() {
                let image = promises.row(r);
                let Some(promise) = Promise::of(&image) else {
                    continue;
                };
                match (image.invoice_id, image.customer_id) {
                    (Some(id), _) => {
                        let key = group_key(id);
                        let settlements = list(&self.settlements, &key);
                        self.totals
                            .add_promise_outcomes(&[promise], settlements, grace, sign);
                        let list = self.promises.entry(key).or_default();
                        groups::change(list, promise, sign);
                        if list.is_empty() {
                            self.promises.remove(&key);
                        }
                    }
                    (None, Some(id)) => {
                        let group = self
                            .customers
                            .entry(group_key(id))
                            .or_insert_with(|| CustomerGroup::from_payments(id, payments));
                        (self.totals).add_promise_outcomes(
                            &[promise],
                            &group.payments,
                            grace,
                            sign,
                        );
                        groups::change(&mut group.promises, promise, sign);
                    }
                    (None, None) => {
                        (self.totals).add_promise_outcomes(&[promise], &[], grace, sign)
                    }
                }
            }
        }
    }

    /// Record one settlement (or take it back, `sign` −1) under its invoice, its customer
    /// (when that customer has promises on the account), and in the unapplied-cash and
    /// write-off sums.
    fn file_settlement(&mut self, image: &rows::SettlementImage, is_cash: bool, sign: i64) {
        let currency = self.currencies.id(image.currency);
        if let (Some(day), Some(amount), true) = (image.day, image.amount, self.files_keyless()) {
            let amount = sign as i128 * amount as i128;
            if is_cash && image.invoice_id.is_none() {
                self.totals.unapplied.add((currency, day), amount, sign);
            }
            if image.write_off {
                self.totals.write_offs.add((currency, day), amount, sign);
            }
        }
        // Without a date a settlement counts on no day.
        let Some(day) = image.day else { return };
        let settlement = Settlement {
            day,
            is_cash,
            amount: image.amount.unwrap_or(0),
        };
        if let Some(id) = image.invoice_id
            && let key = group_key(id)
            && self.files(key)
        {
            let list = self.settlements.entry(key).or_default();
            groups::change(list, settlement, sign);
            if list.is_empty() {
                self.settlements.remove(&key);
            }
        }
        // Most customers make no promise on the account: no group to look for.
        if let Some(id) = image
            .customer_id
            .filter(|_| is_cash && !self.customers.is_empty())
            && let Some(group) = self.customers.get_mut(&group_key(id))
        {
            groups::change(&mut group.payments, settlement, sign);
        }
    }

    /// Record a promise under its invoice or customer (when building; outcomes are added
    /// once all the cash is in).
    fn file_promise(&mut self, image: &rows::PromiseImage) {
        let Some(promise) = Promise::of(image) else {
            return;
        };
        match (image.invoice_id, image.customer_id) {
            (Some(id), _) => {
                let key = group_key(id);
                if self.files(key) {
                    self.promises.entry(key).or_default().push(promise);
                }
            }
            (None, Some(id)) => {
                let key = group_key(id);
                if self.files(key) {
                    self.customers
                        .entry(key)
                        .or_default()
                        .promises
                        .push(promise);
                }
            }
            (None, None) if self.files_keyless() => {
                (self.totals).add_promise_outcomes(&[promise], &[], self.grace_days, 1)
            }
            (None, None) => {}
        }
    }
}

impl Totals {
    /// Add the sums of another part of the ledger, whose currency ids map to `ids`.
    fn absorb(&mut self, other: Totals, ids: &[u16]) {
        let id = |c: u16| ids[c as usize];
        for ((c, from, due, never), s) in other.open.0 {
            self.open.add((id(c), from, due, never), s.amount, s.count);
        }
        for (sums, theirs) in [
            (&mut self.sales, other.sales),
            (&mut self.unapplied, other.unapplied),
            (&mut self.write_offs, other.write_offs),
        ] {
            for ((c, day), s) in theirs.0 {
                sums.add((id(c), day), s.amount, s.count);
            }
        }
        for ((c, from, paid), s) in other.recovery.0 {
            self.recovery.add((id(c), from, paid), s.amount, s.count);
        }
        for (key, mut overpaid) in other.overpaid {
            overpaid.currency = id(overpaid.currency);
            self.overpaid.insert(key, overpaid);
        }
        for (key, s) in other.promises.0 {
            self.promises.add(key, s.amount, s.count);
        }
    }

    /// Add (`sign` 1) or retract (−1) what an existing invoice and its settlements contribute
    /// to the open, sales and recovery sums.
    fn add_balance(&mut self, key: u128, facts: &Facts, settlements: &[Settlement], sign: i64) {
        if let Some(aging) = &mut self.aging {
            aging.add(facts, settlements, sign);
        }
        let s = sign as i128;
        let ccy = facts.currency;
        self.sales.add(
            (ccy, facts.invoice_date),
            s * facts.amount.unwrap_or(0) as i128,
            sign,
        );
        let Some(amount) = facts.amount else {
            // An unknown amount leaves the open amount unknown: it counts nowhere.
            return;
        };
        let never_overpaid = groups::never_overpaid(amount, facts.invoice_date, settlements);
        let key_of = |from: Day| (ccy, from, facts.due_date, never_overpaid);
        self.open
            .add(key_of(facts.invoice_date), s * amount as i128, sign);
        for st in settlements {
            let from = st.day.max(facts.invoice_date);
            self.open.add(key_of(from), -s * st.amount as i128, 0);
        }
        if let Some(due) = facts.due_date {
            let past_due_from = facts.invoice_date.max(due + 1);
            for st in settlements.iter().filter(|st| st.is_cash) {
                self.recovery
                    .add((ccy, past_due_from, st.day), s * st.amount as i128, sign);
            }
        }
        if !never_overpaid {
            if sign > 0 {
                let overpaid = Overpaid {
                    invoice_id: facts.invoice_id.to_string(),
                    currency: ccy,
                    due: facts.due_date,
                    rows: groups::open_rows(amount, facts.invoice_date, settlements),
                };
                self.overpaid.insert(key, overpaid);
            } else {
                self.overpaid.remove(&key);
            }
        }
    }

    /// Add or retract the outcome of each promise, decided on the cash among `settlements`
    /// (the payments on its invoice, or on its customer).
    fn add_promise_outcomes(
        &mut self,
        promises: &[Promise],
        settlements: &[Settlement],
        grace_days: i32,
        sign: i64,
    ) {
        for p in promises {
            let kept = p.kept(settlements, grace_days);
            self.promises.add((p.promised, kept), 0, sign);
        }
    }
}
