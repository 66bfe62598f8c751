//! What the risk model knows of the receivables: every invoice with the day it was paid,
//! disputes with the days they opened and closed, promises with their deadlines and whether
//! they were kept, and each customer's credit limits as they were recorded.
//!
//! Everything here is dated, so the features of any day are computed from the facts dated up
//! to it (see [`super::features`]): that is how the model never learns from the future. The
//! facts come from the views (`invoice_outcomes`, `promise_results`) and tables of an engine
//! whose as-of date is the latest day anything may be known.

use std::collections::HashMap;

use arrow::array::{Array, RecordBatch};

use super::as_of_views::{AsOfViews, Read};
use super::facts::{self, Customers, Fact, date_at, float_at};
use crate::engine::{Engine, EngineError};

pub use crate::dates::Day;

/// One invoice, as the engine's as-of date knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub invoice_id: String,
    /// Index into [`History::customers`].
    pub customer: u32,
    pub invoice_date: Day,
    pub due_date: Day,
    /// In the invoice's currency.
    pub amount: f64,
    /// The first day its settlements covered it; `None` while unpaid.
    pub paid_date: Option<Day>,
    /// The day it was voided or deleted (recorded: `_ts`), if it was by the as-of date.
    pub gone_on: Option<Day>,
    /// For an invoice whose amount was corrected: each amount from the day it was recorded,
    /// oldest first (`amount` is the latest).
    pub corrections: Vec<(Day, f64)>,
    /// Index into [`History::currencies`].
    pub currency: u16,
    /// The day its payment in full was known: the settlements that paid it dated and applied
    /// to it by then (see [`Settlement::known`]); `None` while unpaid.
    pub paid_known: Option<Day>,
}

impl Invoice {
    /// Whether it existed on day `s`: issued by then, and not yet voided or deleted.
    pub fn exists_on(&self, s: Day) -> bool {
        self.invoice_date <= s && self.gone_on.is_none_or(|g| g > s)
    }

    /// Its amount as recorded by day `s` (the first recorded, for a day before that).
    pub fn amount_on(&self, s: Day) -> f64 {
        match self
            .corrections
            .iter()
            .take_while(|(from, _)| *from <= s)
            .last()
        {
            Some(&(_, amount)) => amount,
            None => self.corrections.first().map_or(self.amount, |&(_, a)| a),
        }
    }

    /// Its paid date, if its payment in full was known by day `s` (a payment recorded late
    /// counts from the day it was recorded, though dated earlier).
    pub fn paid_by(&self, s: Day) -> Option<Day> {
        self.paid_date
            .filter(|_| self.paid_known.is_some_and(|k| k <= s))
    }

    /// Whether it was open on day `s`: existed, and not yet paid.
    pub fn open_on(&self, s: Day) -> bool {
        self.exists_on(s) && self.paid_date.is_none_or(|p| p > s)
    }
}

/// A dispute on an invoice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dispute {
    pub invoice: Option<u32>,
    pub opened: Day,
    /// `None` while open.
    pub closed: Option<Day>,
}

/// A promise to pay whose outcome is known: kept or broken, as of its deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Promise {
    pub deadline: Day,
    pub kept: bool,
}

/// A promise to pay as it was made (open or not): on an invoice, or on the account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pledge {
    pub invoice: Option<u32>,
    pub created: Day,
    pub promised: Day,
    /// In the invoice's currency.
    pub amount: f64,
}

/// A payment (cash) or adjustment (credit) dated `day`, on an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub day: Day,
    pub cents: i64,
    pub cash: bool,
    /// The day it was known on the invoice: its date, or the day it was applied to the
    /// invoice when that was recorded later (`_ts` of the change that applied it: cash that
    /// came without remittance advice is applied days after it came).
    pub known: Day,
}

/// A customer's credit limit from the day it was recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CreditLimit {
    pub from: Day,
    pub limit: f64,
}

/// Everything known, grouped by customer.
#[derive(Debug, Default)]
pub struct History {
    /// Customer ids; the index is the customer's number everywhere else.
    pub customers: Vec<String>,
    /// Ordered by customer, then invoice date, then id.
    pub invoices: Vec<Invoice>,
    /// `invoices[by_customer[c].clone()]` are customer `c`'s.
    pub by_customer: Vec<std::ops::Range<usize>>,
    pub disputes: Vec<Vec<Dispute>>,
    pub promises: Vec<Vec<Promise>>,
    /// Oldest first.
    pub credit_limits: Vec<Vec<CreditLimit>>,
    /// Every promise made by the as-of date, by customer, in the order made.
    pub pledges: Vec<Vec<Pledge>>,
    /// Settlements by invoice, oldest first: invoice `i`'s are
    /// `settlements[settled_from[i]..settled_from[i + 1]]`.
    pub settlements: Vec<Settlement>,
    pub settled_from: Vec<u32>,
    /// Currency codes; the index is [`Invoice::currency`].
    pub currencies: Vec<String>,
    /// Each currency's rates in the feed's quote currency, oldest first (none for the quote
    /// currency itself, which is 1).
    pub quotes: Vec<Vec<(Day, f64)>>,
    /// The reporting currency, the currency the rates are quoted in, and the grace days
    /// after a promised date (`params`).
    pub reporting_currency: String,
    pub rates_currency: String,
    pub grace_days: i32,
    /// The engine's as-of date: the latest day anything may be known.
    pub as_of: Day,
    /// The views a queries folder replaced, as of that day (see [`super::as_of_views`]).
    pub views: AsOfViews,
}

impl History {
    /// Read what `engine` knows at its as-of date. The paid dates are those of
    /// `invoice_outcomes`: computed here as it defines them while the view is the shipped
    /// one, read from the view when a queries folder replaces it.
    pub async fn read(engine: &Engine) -> Result<History, EngineError> {
        History::read_of(engine, Customers::All).await
    }

    /// [`History::read`] of `customers` only: what their invoices' scores are made from
    /// (a customer's features read its own facts, and the rates), so that the scores of the
    /// customers a refresh touched are made without reading everyone's.
    pub async fn read_of(
        engine: &Engine,
        customers: Customers<'_>,
    ) -> Result<History, EngineError> {
        let paid = match engine.uses_shipped_view("invoice_outcomes") {
            true => PaidDates::Computed,
            false => PaidDates::FromView,
        };
        let mut history = History::read_with(engine, paid, customers).await?;
        history.views = history.views_of(engine, Read::Replaced).await?;
        Ok(history)
    }

    /// [`History::read_of`] with the paid dates from where `paid` says: each fact read by
    /// its reader ([`super::facts`]), then put together.
    pub async fn read_with(
        engine: &Engine,
        paid: PaidDates,
        customers: Customers<'_>,
    ) -> Result<History, EngineError> {
        let started = std::time::Instant::now();
        let mut history = History::default();
        let as_of = history.read_params(engine).await?;
        history.as_of = as_of;
        let read = |fact: Fact| fact.read_for(engine, as_of, customers);
        let invoices_fact = match paid {
            PaidDates::FromView => facts::INVOICES,
            PaidDates::Computed => facts::INVOICES_UNPAID,
        };
        // The big queries at once: while one's rows are read here, the others run.
        let (invoice_rows, gone_rows, settlement_rows, correction_rows) = futures::try_join!(
            read(invoices_fact),
            read(facts::GONE),
            read(facts::SETTLEMENTS),
            read(facts::CORRECTIONS),
        )?;
        let (pledge_rows, dispute_rows, promise_rows, limit_rows) = futures::try_join!(
            read(facts::PLEDGES),
            read(facts::DISPUTES),
            read(facts::PROMISES),
            read(facts::CREDIT_LIMITS),
        )?;
        let queried = started.elapsed();
        // Customers are numbered as first seen while reading, renumbered below.
        let mut seen: HashMap<String, u32, foldhash::fast::RandomState> = HashMap::default();
        let mut invoices = Vec::with_capacity(
            (invoice_rows.iter().chain(&gone_rows))
                .map(|b| b.num_rows())
                .sum(),
        );
        // The voided or deleted first: a replaced `invoice_outcomes` that keeps void invoices
        // has them too, and each invoice is read once.
        history.read_invoices(facts::GONE, &gone_rows, &mut seen, &mut invoices)?;
        let gone: HashSet<String> = invoices.iter().map(|i| i.invoice_id.clone()).collect();
        history.read_invoices(invoices_fact, &invoice_rows, &mut seen, &mut invoices)?;
        if !gone.is_empty() {
            let mut read_once: HashSet<String> = HashSet::default();
            invoices.retain(|i| {
                !gone.contains(&i.invoice_id) || read_once.insert(i.invoice_id.clone())
            });
        }
        drop((invoice_rows, gone_rows));
        let mut ids: HashMap<String, u32> = HashMap::new();
        history.number_in_order(seen, &mut ids, &mut invoices);
        let numbered = started.elapsed();
        let mut by_invoice: ById =
            HashMap::with_capacity_and_hasher(invoices.len(), Default::default());
        by_invoice.extend(
            (invoices.iter().enumerate()).map(|(i, inv)| (inv.invoice_id.as_str(), i as u32)),
        );
        let (settled, settled_from) = settlements(settlement_rows, &by_invoice, invoices.len())?;
        let settled_at = started.elapsed();
        let paid_on = match paid {
            PaidDates::Computed => paid_dates(&invoices, &settled, &settled_from),
            PaidDates::FromView => Vec::new(),
        };
        let corrections = corrections(&correction_rows, &by_invoice)?;
        let mut pledges = Vec::new();
        for batch in &pledge_rows {
            pledges.extend(history.pledges_of(batch, &mut ids, &by_invoice)?);
        }
        let mut disputes = Vec::new();
        for batch in &dispute_rows {
            disputes.extend(history.disputes_of(batch, &mut ids, &by_invoice)?);
        }
        drop(by_invoice);
        for (i, day) in paid_on {
            invoices[i as usize].paid_date = Some(day);
        }
        paid_known(&mut invoices, &settled, &settled_from);
        // In the order recorded (the query's order), each change of amount once.
        for (i, on, amount) in corrections {
            let versions = &mut invoices[i as usize].corrections;
            if versions.last().is_none_or(|&(_, a)| a != amount) {
                versions.push((on, amount));
            }
        }
        let mut promises = Vec::new();
        for batch in &promise_rows {
            promises.extend(history.promises_of(batch, &mut ids)?);
        }
        let mut limits = Vec::new();
        for batch in &limit_rows {
            limits.extend(history.credit_limits_of(batch, &mut ids)?);
        }
        history.read_rates(engine, as_of).await?;
        tracing::debug!(
            queries_s = queried.as_secs_f64(),
            invoices_s = (numbered - queried).as_secs_f64(),
            settlements_s = (settled_at - numbered).as_secs_f64(),
            rest_s = (started.elapsed() - settled_at).as_secs_f64(),
            "risk history read"
        );
        let n = history.customers.len();
        history.by_customer = vec![0..0; n];
        let mut start = 0;
        while start < invoices.len() {
            let c = invoices[start].customer;
            let end = start + invoices[start..].partition_point(|i| i.customer == c);
            history.by_customer[c as usize] = start..end;
            start = end;
        }
        history.invoices = invoices;
        history.disputes = group(n, disputes);
        history.promises = group(n, promises);
        history.credit_limits = group(n, limits);
        history.pledges = group(n, pledges);
        // In the order they were made, whatever order the engine gave them in.
        for pledges in &mut history.pledges {
            pledges.sort_by(|a, b| {
                (a.created, a.promised, a.invoice)
                    .cmp(&(b.created, b.promised, b.invoice))
                    .then(a.amount.total_cmp(&b.amount))
            });
        }
        history.settlements = settled;
        history.settled_from = settled_from;
        for limits in &mut history.credit_limits {
            limits.sort_by_key(|l| l.from);
            // A customer with a change in the log has its current limit twice: keep the
            // dated ones.
            if limits.len() > 1 && limits[0].from == Day::MIN {
                limits.remove(0);
            }
        }
        Ok(history)
    }

    /// The invoices of `rows` (of [`facts::INVOICES`], [`facts::INVOICES_UNPAID`] or
    /// [`facts::GONE`]), their customers numbered as first seen in `seen`.
    fn read_invoices(
        &mut self,
        fact: Fact,
        rows: &[RecordBatch],
        seen: &mut HashMap<String, u32, foldhash::fast::RandomState>,
        invoices: &mut Vec<Invoice>,
    ) -> Result<(), EngineError> {
        for batch in rows {
            let columns = fact.columns(batch);
            let id = columns.strings("invoice_id")?;
            let customer = columns.strings("customer_id")?;
            let (issued, due) = (columns.dates("invoice_date")?, columns.dates("due_date")?);
            let (amount, paid) = (columns.floats("amount")?, columns.dates("paid_date")?);
            let currency = columns.strings("currency")?;
            let gone = match columns.has("gone_on") {
                true => Some(columns.dates("gone_on")?),
                false => None,
            };
            for row in 0..columns.rows() {
                let (Some(invoice_id), Some(c)) = (id.value(row), customer.value(row)) else {
                    continue;
                };
                let (Some(invoice_date), Some(due_date)) =
                    (date_at(&issued, row), date_at(&due, row))
                else {
                    continue;
                };
                let first_seen = match seen.get(c) {
                    Some(&n) => n,
                    None => {
                        let n = seen.len() as u32;
                        seen.insert(c.to_string(), n);
                        n
                    }
                };
                invoices.push(Invoice {
                    invoice_id: invoice_id.to_string(),
                    customer: first_seen,
                    invoice_date,
                    due_date,
                    amount: float_at(&amount, row).unwrap_or(0.0),
                    paid_date: date_at(&paid, row),
                    gone_on: gone.as_ref().and_then(|g| date_at(g, row)),
                    corrections: Vec::new(),
                    currency: self.currency(currency.value(row).unwrap_or("")),
                    paid_known: None,
                });
            }
        }
        Ok(())
    }

    /// Currencies in the order of their codes and customers in the order of their ids, so
    /// that the same facts give the same training rows in the same order (and the same model,
    /// to the last bit) however the engine ordered its results; then the invoices by
    /// customer, date and id.
    fn number_in_order(
        &mut self,
        seen: HashMap<String, u32, foldhash::fast::RandomState>,
        ids: &mut HashMap<String, u32>,
        invoices: &mut [Invoice],
    ) {
        let mut codes: Vec<(String, u16)> = (self.currencies.iter().cloned()).zip(0..).collect();
        codes.sort_unstable();
        let mut recode = vec![0u16; codes.len()];
        for (new, (_, old)) in codes.iter().enumerate() {
            recode[usize::from(*old)] = new as u16;
        }
        self.currencies = codes.into_iter().map(|(code, _)| code).collect();
        let mut sorted: Vec<(String, u32)> = seen.into_iter().collect();
        sorted.sort_unstable();
        let mut renumber = vec![0u32; sorted.len()];
        for (c, first_seen) in &sorted {
            renumber[*first_seen as usize] = self.number(ids, c);
        }
        for inv in invoices.iter_mut() {
            inv.currency = recode[usize::from(inv.currency)];
            inv.customer = renumber[inv.customer as usize];
        }
        invoices.sort_unstable_by(|a, b| {
            (a.customer, a.invoice_date)
                .cmp(&(b.customer, b.invoice_date))
                .then_with(|| a.invoice_id.cmp(&b.invoice_id))
        });
    }

    /// The promises of one batch of [`facts::PLEDGES`], by customer.
    fn pledges_of(
        &mut self,
        batch: &RecordBatch,
        ids: &mut HashMap<String, u32>,
        by_invoice: &ById,
    ) -> Result<Vec<(u32, Pledge)>, EngineError> {
        let columns = facts::PLEDGES.columns(batch);
        let (customer, invoice) = (
            columns.strings("customer_id")?,
            columns.strings("invoice_id")?,
        );
        let created = columns.dates("created_date")?;
        let promised = columns.dates("promised_date")?;
        let amount = columns.floats("amount")?;
        let mut out = Vec::new();
        for row in 0..columns.rows() {
            let (Some(c), Some(created), Some(promised), Some(amount)) = (
                customer.value(row),
                date_at(&created, row),
                date_at(&promised, row),
                float_at(&amount, row),
            ) else {
                continue;
            };
            let pledge = Pledge {
                invoice: (invoice.value(row)).and_then(|i| by_invoice.get(i).copied()),
                created,
                promised,
                amount,
            };
            out.push((self.number(ids, c), pledge));
        }
        Ok(out)
    }

    /// The disputes of one batch of [`facts::DISPUTES`], by customer.
    fn disputes_of(
        &mut self,
        batch: &RecordBatch,
        ids: &mut HashMap<String, u32>,
        by_invoice: &ById,
    ) -> Result<Vec<(u32, Dispute)>, EngineError> {
        let columns = facts::DISPUTES.columns(batch);
        let (customer, invoice) = (
            columns.strings("customer_id")?,
            columns.strings("invoice_id")?,
        );
        let (opened, closed) = (columns.dates("opened_date")?, columns.dates("closed_date")?);
        let mut out = Vec::new();
        for row in 0..columns.rows() {
            let (Some(c), Some(opened)) = (customer.value(row), date_at(&opened, row)) else {
                continue;
            };
            let dispute = Dispute {
                invoice: (invoice.value(row)).and_then(|i| by_invoice.get(i).copied()),
                opened,
                closed: date_at(&closed, row),
            };
            out.push((self.number(ids, c), dispute));
        }
        Ok(out)
    }

    /// The promise outcomes of one batch of [`facts::PROMISES`], by customer.
    fn promises_of(
        &mut self,
        batch: &RecordBatch,
        ids: &mut HashMap<String, u32>,
    ) -> Result<Vec<(u32, Promise)>, EngineError> {
        let columns = facts::PROMISES.columns(batch);
        let (customer, deadline) = (columns.strings("customer_id")?, columns.dates("deadline")?);
        let kept = columns.bools("kept")?;
        let mut out = Vec::new();
        for row in 0..columns.rows() {
            if let (Some(c), Some(deadline)) = (customer.value(row), date_at(&deadline, row)) {
                let promise = Promise {
                    deadline,
                    kept: kept.is_valid(row) && kept.value(row),
                };
                out.push((self.number(ids, c), promise));
            }
        }
        Ok(out)
    }

    /// The credit limits of one batch of [`facts::CREDIT_LIMITS`], by customer.
    fn credit_limits_of(
        &mut self,
        batch: &RecordBatch,
        ids: &mut HashMap<String, u32>,
    ) -> Result<Vec<(u32, CreditLimit)>, EngineError> {
        let columns = facts::CREDIT_LIMITS.columns(batch);
        let (customer, from) = (columns.strings("customer_id")?, columns.dates("from_date")?);
        let limit = columns.floats("credit_limit")?;
        let mut out = Vec::new();
        for row in 0..columns.rows() {
            if let (Some(c), Some(limit)) = (customer.value(row), float_at(&limit, row)) {
                // The current limit of a customer with no change in the log counts from the
                // start.
                let limit = CreditLimit {
                    from: date_at(&from, row).unwrap_or(Day::MIN),
                    limit,
                };
                out.push((self.number(ids, c), limit));
            }
        }
        Ok(out)
    }

    /// The views `read` says, as of the history's as-of date and by its numbering.
    pub async fn views_of(&self, engine: &Engine, read: Read) -> Result<AsOfViews, EngineError> {
        let ids = self.invoices.iter().map(|i| i.invoice_id.as_str());
        AsOfViews::read(engine, self.as_of, &self.currencies, ids, read).await
    }

    fn number(&mut self, ids: &mut HashMap<String, u32>, customer: &str) -> u32 {
        if let Some(&n) = ids.get(customer) {
            return n;
        }
        let n = self.customers.len() as u32;
        self.customers.push(customer.to_string());
        ids.insert(customer.to_string(), n);
        n
    }

    fn currency(&mut self, code: &str) -> u16 {
        match self.currencies.iter().position(|c| c == code) {
            Some(i) => i as u16,
            None => {
                self.currencies.push(code.to_string());
                (self.currencies.len() - 1) as u16
            }
        }
    }

    /// The reporting currency, the rates' currency and the promise grace days; returns the
    /// as-of date, for the other facts (`$as_of`).
    async fn read_params(&mut self, engine: &Engine) -> Result<Day, EngineError> {
        let mut as_of = None;
        for batch in engine.query(facts::PARAMS.sql).await? {
            let columns = facts::PARAMS.columns(&batch);
            if columns.rows() > 0 {
                self.reporting_currency =
                    columns.strings("currency")?.value(0).unwrap_or("").into();
                self.grace_days = columns.ints("grace_days")?.value(0);
                self.rates_currency = (columns.strings("rates_currency")?.value(0))
                    .unwrap_or("")
                    .into();
                as_of = date_at(&columns.dates("as_of")?, 0);
            }
        }
        as_of.ok_or_else(|| EngineError::Params("params has no as-of date".into()))
    }

    /// The rates of the currencies (and the reporting currency among them).
    async fn read_rates(&mut self, engine: &Engine, as_of: Day) -> Result<(), EngineError> {
        let reporting = self.reporting_currency.clone();
        self.currency(&reporting);
        let mut quotes = Vec::new();
        for batch in facts::RATES.read(engine, as_of).await? {
            let columns = facts::RATES.columns(&batch);
            let (code, on) = (columns.strings("currency")?, columns.dates("rate_date")?);
            let rate = columns.floats("rate")?;
            for row in 0..columns.rows() {
                if let (Some(code), Some(on), Some(rate)) =
                    (code.value(row), date_at(&on, row), float_at(&rate, row))
                {
                    quotes.push((self.currency(code), on, rate));
                }
            }
        }
        quotes.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
        self.quotes = vec![Vec::new(); self.currencies.len()];
        for (c, on, rate) in quotes {
            self.quotes[usize::from(c)].push((on, rate));
        }
        Ok(())
    }

    /// Each currency's closing rate on day `s` in the reporting currency, as `fx_closing`
    /// makes it (the latest quote dated by then, through the quote currency); `None` for a
    /// currency with no quote by then, and for all when the reporting currency has none. On
    /// the as-of date, a replaced `fx_closing`'s rates.
    pub fn rates_on(&self, s: Day) -> Vec<Option<f64>> {
        if let (true, Some(rates)) = (s == self.as_of, &self.views.rates) {
            return rates.clone();
        }
        let quote = |c: usize| -> Option<f64> {
            if self.currencies[c] == self.rates_currency {
                return Some(1.0);
            }
            let q = &self.quotes[c];
            let at = q.partition_point(|&(on, _)| on <= s);
            (at > 0).then(|| q[at - 1].1)
        };
        let reporting = self
            .currencies
            .iter()
            .position(|c| *c == self.reporting_currency);
        let Some(reporting) = reporting.and_then(quote) else {
            return vec![None; self.currencies.len()];
        };
        (0..self.currencies.len())
            .map(|c| quote(c).map(|q| q / reporting))
            .collect()
    }

    /// Invoice `i`'s settlements, oldest first.
    pub fn settlements_of(&self, i: usize) -> &[Settlement] {
        match (self.settled_from.get(i), self.settled_from.get(i + 1)) {
            (Some(&from), Some(&to)) => &self.settlements[from as usize..to as usize],
            _ => &[],
        }
    }

    /// What is still open on invoice `i` on day `s`, in its currency: its amount then less
    /// its settlements dated and known by then.
    pub fn balance_on(&self, i: usize, s: Day) -> f64 {
        let settled: i64 = (self.settlements_of(i).iter())
            .take_while(|x| x.day <= s)
            .filter(|x| x.known <= s)
            .map(|x| x.cents)
            .sum();
        self.invoices[i].amount_on(s) - settled as f64 / 100.0
    }

    /// Customer `c`'s invoices.
    pub fn invoices_of(&self, c: usize) -> &[Invoice] {
        &self.invoices[self.by_customer[c].clone()]
    }

    /// The first day anything happened (an invoice was issued).
    pub fn first_day(&self) -> Option<Day> {
        self.invoices.iter().map(|i| i.invoice_date).min()
    }
}

/// Where [`History::read_with`] takes the paid dates from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaidDates {
    /// The view `invoice_outcomes` (whatever the queries folder makes it).
    FromView,
    /// Computed from the settlements as the shipped view defines them.
    Computed,
}

/// The settlements of the invoices of `by_invoice` in `rows` (of [`facts::SETTLEMENTS`]), by invoice
/// and oldest first, and where each invoice's begin (see [`History::settled_from`]). The ids
/// are looked up on both cores, half the batches each.
fn settlements(
    rows: Vec<RecordBatch>,
    by_invoice: &ById<'_>,
    invoices: usize,
) -> Result<(Vec<Settlement>, Vec<u32>), EngineError> {
    type Found = Vec<(u32, Settlement)>;
    let look_up = |rows: &[RecordBatch]| -> Result<Found, EngineError> {
        let mut found = Vec::new();
        for batch in rows {
            let columns = facts::SETTLEMENTS.columns(batch);
            let (id, on) = (columns.strings("invoice_id")?, columns.dates("settled_on")?);
            let (cents, cash) = (columns.bigints("cents")?, columns.bools("cash")?);
            let applied = columns.dates("applied_on")?;
            for row in 0..columns.rows() {
                let Some(&i) = id.value(row).and_then(|id| by_invoice.get(id)) else {
                    continue;
                };
                if on.is_valid(row) && cents.is_valid(row) {
                    let day = on.value(row);
                    let known = match applied.is_valid(row) {
                        true => applied.value(row).max(day),
                        false => day,
                    };
                    let settlement = Settlement {
                        day,
                        cents: cents.value(row),
                        cash: cash.is_valid(row) && cash.value(row),
                        known,
                    };
                    found.push((i, settlement));
                }
            }
        }
        Ok(found)
    };
    let (first, second) = rows.split_at(rows.len() / 2);
    let (first, second) = std::thread::scope(|s| {
        let other = s.spawn(|| look_up(second));
        let first = look_up(first);
        (first, other.join().expect("a settlements look-up panicked"))
    });
    let (first, second) = (first?, second?);
    // Counted by invoice, then each put in its invoice's place, then each invoice's sorted.
    let mut from = vec![0u32; invoices + 1];
    for &(i, _) in first.iter().chain(&second) {
        from[i as usize + 1] += 1;
    }
    for i in 1..from.len() {
        from[i] += from[i - 1];
    }
    let empty = Settlement {
        day: 0,
        cents: 0,
        cash: false,
        known: 0,
    };
    let mut settled = vec![empty; from[from.len() - 1] as usize];
    let mut next = from.clone();
    for (i, settlement) in first.into_iter().chain(second) {
        settled[next[i as usize] as usize] = settlement;
        next[i as usize] += 1;
    }
    for i in 0..invoices {
        settled[from[i] as usize..from[i + 1] as usize]
            .sort_unstable_by_key(|x| (x.day, x.cents, x.cash, x.known));
    }
    Ok((settled, from))
}

/// The amounts of the invoices of `by_invoice` in `rows` (of [`facts::CORRECTIONS`]), with
/// the day each was recorded, in the order recorded.
fn corrections(
    rows: &[RecordBatch],
    by_invoice: &ById,
) -> Result<Vec<(u32, Day, f64)>, EngineError> {
    let mut out = Vec::new();
    for batch in rows {
        let columns = facts::CORRECTIONS.columns(batch);
        let (id, on) = (
            columns.strings("invoice_id")?,
            columns.dates("recorded_on")?,
        );
        let amount = columns.floats("amount")?;
        for row in 0..columns.rows() {
            let Some(&i) = id.value(row).and_then(|id| by_invoice.get(id)) else {
                continue;
            };
            if let (Some(on), Some(amount)) = (date_at(&on, row), float_at(&amount, row)) {
                out.push((i, on, amount));
            }
        }
    }
    Ok(out)
}

/// The day each invoice's payment in full was known (see [`Invoice::paid_known`]): the first
/// day by which the settlements dated and known by then add up to its amount, and not before
/// its paid date.
fn paid_known(invoices: &mut [Invoice], settled: &[Settlement], from: &[u32]) {
    let mut mine: Vec<(Day, i64)> = Vec::new();
    for (i, inv) in invoices.iter_mut().enumerate() {
        let Some(paid) = inv.paid_date else {
            continue;
        };
        mine.clear();
        mine.extend(
            (settled[from[i] as usize..from[i + 1] as usize].iter())
                .map(|x| (x.known.max(x.day), x.cents)),
        );
        mine.sort_unstable();
        let owed = (inv.amount * 100.0).round() as i64;
        let mut total = 0i64;
        let mut known = None;
        for &(day, cents) in &mine {
            total += cents;
            if total >= owed {
                known = Some(day.max(paid));
                break;
            }
        }
        // Paid as the view says, though the settlements do not add up: known on its date.
        inv.paid_known = Some(known.unwrap_or(paid));
    }
}

/// `invoice_outcomes`' paid date of each invoice: the first day its settlements dated up to
/// then add up to its amount (`tests/risk.rs` holds the two to the same dates).
fn paid_dates(invoices: &[Invoice], settled: &[Settlement], from: &[u32]) -> Vec<(u32, Day)> {
    let mut paid = Vec::new();
    for (i, inv) in invoices.iter().enumerate() {
        let mine = &settled[from[i] as usize..from[i + 1] as usize];
        // Void or deleted: not in `invoice_outcomes`, never paid.
        if mine.is_empty() || inv.gone_on.is_some() {
            continue;
        }
        let owed = (inv.amount * 100.0).round() as i64;
        let mut total = 0i64;
        let mut k = 0;
        while k < mine.len() {
            let day = mine[k].day;
            while k < mine.len() && mine[k].day == day {
                total += mine[k].cents;
                k += 1;
            }
            if total >= owed {
                paid.push((i as u32, day));
                break;
            }
        }
    }
    paid
}

/// Invoice ids to their index, with a fast hash (10 million of them at scale).
type ById<'a> = HashMap<&'a str, u32, foldhash::fast::RandomState>;

/// Ids looked up once per invoice, with the same fast hash.
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

fn group<T>(n: usize, items: Vec<(u32, T)>) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (c, item) in items {
        out[c as usize].push(item);
    }
    out
}
