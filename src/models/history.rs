//! What the risk model knows of the receivables: every invoice with the day it was paid,
//! disputes with the days they opened and closed, promises with their deadlines and whether
//! they were kept, and each customer's credit limits as they were recorded.
//!
//! Everything here is dated, so the features of any day are computed from the facts dated up
//! to it (see [`super::features`]): that is how the model never learns from the future. The
//! facts come from the views (`invoice_outcomes`, `promise_results`) and tables of an engine
//! whose as-of date is the latest day anything may be known.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type};

use crate::engine::{Engine, EngineError};

/// Days since 1970-01-01 (Arrow's Date32).
pub type Day = i32;

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
}

/// The queries read the as-of date as a literal (`$as_of`, see [`History::read_with`]): a join
/// with the one-row `params` costs a pass over every row at 10 million invoices. Each join has
/// its small side first (DataFusion builds its hash table from the left side, and has no row
/// counts here to swap them by).
const INVOICES: &str = "SELECT o.invoice_id, o.customer_id, o.invoice_date, o.due_date, \
     CAST(o.amount AS DOUBLE) AS amount, o.paid_date, i.currency \
     FROM invoice_outcomes o JOIN invoices i ON i.invoice_id = o.invoice_id";
/// The same invoices without their paid dates, which [`paid_dates`] computes from
/// [`SETTLEMENTS`] as `invoice_outcomes` defines them, in a fraction of the time on a big
/// state (its window over every settlement takes most of a minute at 10 million invoices).
const INVOICES_UNPAID: &str = "SELECT invoice_id, customer_id, invoice_date, due_date, \
     CAST(amount AS DOUBLE) AS amount, CAST(NULL AS DATE) AS paid_date, i.currency \
     FROM invoices i WHERE invoice_date <= $as_of AND status <> 'void'";
/// Payments and adjustments on an invoice dated up to the as-of date, in cents, with the day
/// one that was changed after it was made (cash applied to its invoice days after it came) was
/// first recorded on its invoice. One made on its invoice is taken as known on its date.
const SETTLEMENTS: &str = "WITH updated AS ( \
         SELECT DISTINCT payment_id FROM payments_changes WHERE _op = 'u'), \
     applied AS ( \
         SELECT c.payment_id, c.invoice_id, min(CAST(c._ts AS DATE)) AS applied_on \
         FROM updated u JOIN payments_changes c ON c.payment_id = u.payment_id \
         WHERE c.invoice_id IS NOT NULL GROUP BY c.payment_id, c.invoice_id), \
     adjusted AS ( \
         SELECT DISTINCT adjustment_id FROM adjustments_changes WHERE _op = 'u'), \
     credited AS ( \
         SELECT c.adjustment_id, c.invoice_id, min(CAST(c._ts AS DATE)) AS applied_on \
         FROM adjusted u JOIN adjustments_changes c ON c.adjustment_id = u.adjustment_id \
         WHERE c.invoice_id IS NOT NULL GROUP BY c.adjustment_id, c.invoice_id) \
     SELECT x.invoice_id, x.payment_date AS settled_on, CAST(x.amount * 100 AS BIGINT) AS cents, \
            true AS cash, a.applied_on \
     FROM applied a RIGHT JOIN payments x \
         ON a.payment_id = x.payment_id AND a.invoice_id = x.invoice_id \
     WHERE x.invoice_id IS NOT NULL AND x.payment_date <= $as_of \
     UNION ALL SELECT x.invoice_id, x.adjustment_date, CAST(x.amount * 100 AS BIGINT), false, \
            a.applied_on \
     FROM credited a RIGHT JOIN adjustments x \
         ON a.adjustment_id = x.adjustment_id AND a.invoice_id = x.invoice_id \
     WHERE x.invoice_id IS NOT NULL AND x.adjustment_date <= $as_of";
/// The invoices voided or deleted by the as-of date, with the day that was recorded and their
/// last version before (a delete carries only the key): they were open until then, and
/// count in their customer's record of the days before.
const GONE: &str = "WITH gone AS ( \
         SELECT invoice_id, min(CAST(_ts AS DATE)) AS gone_on \
         FROM invoices_changes \
         WHERE (_op = 'd' OR status = 'void') AND CAST(_ts AS DATE) <= $as_of \
         GROUP BY invoice_id), \
     versions AS ( \
         SELECT c.invoice_id, c.customer_id, c.invoice_date, c.due_date, \
                CAST(c.amount AS DOUBLE) AS amount, c.currency, g.gone_on, \
                row_number() OVER (PARTITION BY c.invoice_id ORDER BY c._ts DESC, c._seq DESC) AS n \
         FROM gone g JOIN invoices_changes c ON c.invoice_id = g.invoice_id \
         WHERE c._op <> 'd' AND (c.status IS NULL OR c.status <> 'void')) \
     SELECT invoice_id, customer_id, invoice_date, due_date, amount, \
            CAST(NULL AS DATE) AS paid_date, currency, gone_on \
     FROM versions WHERE n = 1";
/// Every amount of the invoices whose amount was changed, with the day it was recorded.
const CORRECTIONS: &str = "WITH changed AS ( \
         SELECT invoice_id FROM invoices_changes WHERE _op = 'u' GROUP BY invoice_id) \
     SELECT c.invoice_id, CAST(c._ts AS DATE) AS recorded_on, CAST(c.amount AS DOUBLE) AS amount \
     FROM changed u JOIN invoices_changes c ON c.invoice_id = u.invoice_id \
     WHERE c._op <> 'd' AND c.amount IS NOT NULL AND CAST(c._ts AS DATE) <= $as_of \
     ORDER BY c.invoice_id, c._ts, c._seq";
const DISPUTES: &str = "SELECT customer_id, invoice_id, opened_date, \
     CASE WHEN status = 'open' THEN NULL ELSE resolved_date END AS closed_date \
     FROM disputes WHERE opened_date <= $as_of";
const PROMISES: &str = "SELECT customer_id, deadline, kept FROM promise_results";
const PLEDGES: &str = "SELECT customer_id, invoice_id, created_date, promised_date, \
     CAST(amount AS DOUBLE) FROM promises WHERE created_date <= $as_of";
const RATES: &str = "SELECT f.currency, f.rate_date, CAST(f.rate AS DOUBLE) FROM fx_rates f \
     CROSS JOIN params p WHERE f.rate_date <= p.as_of AND f.currency <> p.rates_currency";
const PARAMS: &str = "SELECT currency, grace_days, rates_currency, as_of FROM params";
/// Credit limits as recorded (`_ts`: when the change was made), the current one for a
/// customer whose changes are not in the feed's log.
const CREDIT_LIMITS: &str = "SELECT customer_id, CAST(_ts AS DATE) AS from_date, \
     CAST(credit_limit AS DOUBLE) AS credit_limit FROM customers_changes \
     WHERE CAST(_ts AS DATE) <= $as_of AND credit_limit IS NOT NULL \
     UNION ALL SELECT c.customer_id, CAST(NULL AS DATE), CAST(c.credit_limit AS DOUBLE) \
     FROM customers c WHERE c.credit_limit IS NOT NULL";

impl History {
    /// Read what `engine` knows at its as-of date. The paid dates are those of
    /// `invoice_outcomes`: computed here as it defines them while the view is the shipped
    /// one, read from the view when a queries folder replaces it.
    pub async fn read(engine: &Engine) -> Result<History, EngineError> {
        let paid = match engine.uses_shipped_view("invoice_outcomes") {
            true => PaidDates::Computed,
            false => PaidDates::FromView,
        };
        History::read_with(engine, paid).await
    }

    /// [`History::read`] with the paid dates from where `paid` says.
    pub async fn read_with(engine: &Engine, paid: PaidDates) -> Result<History, EngineError> {
        let mut history = History::default();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut invoices = Vec::new();
        // Numbered as first seen while reading, renumbered in the order of their ids below.
        let mut seen: HashMap<String, u32, foldhash::fast::RandomState> = HashMap::default();
        let started = std::time::Instant::now();
        // The big queries at once: while one's rows are read here, the others run.
        let invoices_sql = match paid {
            PaidDates::FromView => INVOICES,
            PaidDates::Computed => INVOICES_UNPAID,
        };
        let as_of = history.read_params(engine).await?;
        let query = |sql: &str| {
            let sql = sql.replace("$as_of", &as_of);
            async move { engine.query(&sql).await }
        };
        let (mut batches, gone, settlement_rows, correction_rows) = futures::try_join!(
            query(invoices_sql),
            query(GONE),
            query(SETTLEMENTS),
            query(CORRECTIONS),
        )?;
        let (pledge_rows, dispute_rows, promise_rows, limit_rows) = futures::try_join!(
            query(PLEDGES),
            query(DISPUTES),
            query(PROMISES),
            query(CREDIT_LIMITS),
        )?;
        let invoices_read = started.elapsed();
        batches.extend(gone);
        invoices.reserve_exact(batches.iter().map(|b| b.num_rows()).sum());
        let gone_read = invoices_read;
        for batch in batches {
            let id = strings(&batch, 0)?;
            let customer = strings(&batch, 1)?;
            let (issued, due) = (dates(&batch, 2)?, dates(&batch, 3)?);
            let (amount, paid) = (floats(&batch, 4)?, dates(&batch, 5)?);
            let currency = strings(&batch, 6)?;
            let gone = (batch.num_columns() > 7)
                .then(|| dates(&batch, 7))
                .transpose()?;
            for row in 0..batch.num_rows() {
                let (Some(invoice_id), Some(c)) = (id.value(row), customer.value(row)) else {
                    continue;
                };
                if issued.is_null(row) || due.is_null(row) {
                    continue;
                }
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
                    invoice_date: issued.value(row),
                    due_date: due.value(row),
                    amount: if amount.is_null(row) {
                        0.0
                    } else {
                        amount.value(row)
                    },
                    paid_date: paid.is_valid(row).then(|| paid.value(row)),
                    gone_on: gone
                        .as_ref()
                        .and_then(|g| g.is_valid(row).then(|| g.value(row))),
                    corrections: Vec::new(),
                    currency: history.currency(currency.value(row).unwrap_or("")),
                    paid_known: None,
                });
            }
        }
        // Currencies in the order of their codes, for the same reason as customers below.
        let mut codes: Vec<(String, u16)> = (history.currencies.iter().cloned()).zip(0..).collect();
        codes.sort_unstable();
        let mut recode = vec![0u16; codes.len()];
        for (new, (_, old)) in codes.iter().enumerate() {
            recode[usize::from(*old)] = new as u16;
        }
        history.currencies = codes.into_iter().map(|(code, _)| code).collect();
        for inv in &mut invoices {
            inv.currency = recode[usize::from(inv.currency)];
        }
        // Customers are numbered in the order of their ids, so that the same facts give the
        // same training rows in the same order (and the same model, to the last bit) however
        // the engine ordered its results.
        let mut sorted: Vec<(String, u32)> = seen.into_iter().collect();
        sorted.sort_unstable();
        let mut renumber = vec![0u32; sorted.len()];
        for (c, first_seen) in &sorted {
            renumber[*first_seen as usize] = history.number(&mut ids, c);
        }
        drop(sorted);
        for inv in &mut invoices {
            inv.customer = renumber[inv.customer as usize];
        }
        invoices.sort_unstable_by(|a, b| {
            (a.customer, a.invoice_date)
                .cmp(&(b.customer, b.invoice_date))
                .then_with(|| a.invoice_id.cmp(&b.invoice_id))
        });
        let sorted_at = started.elapsed();
        let mut by_invoice: ById =
            HashMap::with_capacity_and_hasher(invoices.len(), Default::default());
        by_invoice.extend(
            (invoices.iter().enumerate()).map(|(i, inv)| (inv.invoice_id.as_str(), i as u32)),
        );
        let mapped = started.elapsed();
        let (settled, settled_from) = settlements(settlement_rows, &by_invoice)?;
        let settled_at = started.elapsed();
        let paid_on = match paid {
            PaidDates::Computed => paid_dates(&invoices, &settled, &settled_from),
            PaidDates::FromView => Vec::new(),
        };
        let numbered = started.elapsed();
        let mut corrections: Vec<(u32, Day, f64)> = Vec::new();
        for batch in correction_rows {
            let (id, on, amount) = (strings(&batch, 0)?, dates(&batch, 1)?, floats(&batch, 2)?);
            for row in 0..batch.num_rows() {
                let Some(&i) = id.value(row).and_then(|id| by_invoice.get(id)) else {
                    continue;
                };
                if on.is_valid(row) && amount.is_valid(row) {
                    corrections.push((i, on.value(row), amount.value(row)));
                }
            }
        }
        let mut pledges = Vec::new();
        for batch in pledge_rows {
            let (customer, invoice) = (strings(&batch, 0)?, strings(&batch, 1)?);
            let (created, promised) = (dates(&batch, 2)?, dates(&batch, 3)?);
            let amount = floats(&batch, 4)?;
            for row in 0..batch.num_rows() {
                let Some(c) = customer.value(row) else {
                    continue;
                };
                if created.is_null(row) || promised.is_null(row) || amount.is_null(row) {
                    continue;
                }
                let pledge = Pledge {
                    invoice: (invoice.value(row)).and_then(|i| by_invoice.get(i).copied()),
                    created: created.value(row),
                    promised: promised.value(row),
                    amount: amount.value(row),
                };
                pledges.push((history.number(&mut ids, c), pledge));
            }
        }
        let mut disputes = Vec::new();
        let corrected = started.elapsed();
        for batch in dispute_rows {
            let (customer, invoice) = (strings(&batch, 0)?, strings(&batch, 1)?);
            let (opened, closed) = (dates(&batch, 2)?, dates(&batch, 3)?);
            for row in 0..batch.num_rows() {
                let Some(c) = customer.value(row) else {
                    continue;
                };
                if opened.is_null(row) {
                    continue;
                }
                let dispute = Dispute {
                    invoice: (invoice.value(row)).and_then(|i| by_invoice.get(i).copied()),
                    opened: opened.value(row),
                    closed: closed.is_valid(row).then(|| closed.value(row)),
                };
                disputes.push((history.number(&mut ids, c), dispute));
            }
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
        let disputed = started.elapsed();
        for batch in promise_rows {
            let (customer, deadline) = (strings(&batch, 0)?, dates(&batch, 1)?);
            let kept = batch.column(2).as_boolean();
            for row in 0..batch.num_rows() {
                if let (Some(c), true) = (customer.value(row), deadline.is_valid(row)) {
                    let promise = Promise {
                        deadline: deadline.value(row),
                        kept: kept.is_valid(row) && kept.value(row),
                    };
                    promises.push((history.number(&mut ids, c), promise));
                }
            }
        }
        let mut limits = Vec::new();
        let promised = started.elapsed();
        for batch in limit_rows {
            let (customer, from) = (strings(&batch, 0)?, dates(&batch, 1)?);
            let limit = floats(&batch, 2)?;
            for row in 0..batch.num_rows() {
                if let (Some(c), true) = (customer.value(row), limit.is_valid(row)) {
                    // The current limit of a customer with no change in the log counts from
                    // the start.
                    let from = if from.is_valid(row) {
                        from.value(row)
                    } else {
                        Day::MIN
                    };
                    let limit = CreditLimit {
                        from,
                        limit: limit.value(row),
                    };
                    limits.push((history.number(&mut ids, c), limit));
                }
            }
        }
        history.read_rates(engine).await?;
        tracing::debug!(
            queries_s = invoices_read.as_secs_f64(),
            numbered_s = (sorted_at - gone_read).as_secs_f64(),
            id_map_s = (mapped - sorted_at).as_secs_f64(),
            settlements_s = (settled_at - mapped).as_secs_f64(),
            paid_s = (numbered - settled_at).as_secs_f64(),
            corrections_s = (corrected - numbered).as_secs_f64(),
            disputes_s = (disputed - corrected).as_secs_f64(),
            promises_s = (promised - disputed).as_secs_f64(),
            limits_s = (started.elapsed() - promised).as_secs_f64(),
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
    /// as-of date as a SQL literal, for the queries (`$as_of`).
    async fn read_params(&mut self, engine: &Engine) -> Result<String, EngineError> {
        let mut as_of = None;
        for batch in engine.query(PARAMS).await? {
            if batch.num_rows() > 0 {
                self.reporting_currency = strings(&batch, 0)?.value(0).unwrap_or("").into();
                let grace = cast(batch.column(1), &DataType::Int32)?;
                self.grace_days = grace.as_primitive::<arrow::datatypes::Int32Type>().value(0);
                self.rates_currency = strings(&batch, 2)?.value(0).unwrap_or("").into();
                let day = dates(&batch, 3)?;
                as_of = day.is_valid(0).then(|| day.value(0));
            }
        }
        match as_of {
            Some(day) => Ok(format!("DATE '{}'", crate::dates::date(day))),
            None => Err(EngineError::Params("params has no as-of date".into())),
        }
    }

    /// The rates of the currencies (and the reporting currency among them).
    async fn read_rates(&mut self, engine: &Engine) -> Result<(), EngineError> {
        let reporting = self.reporting_currency.clone();
        self.currency(&reporting);
        let mut quotes = Vec::new();
        for batch in engine.query(RATES).await? {
            let (code, on, rate) = (strings(&batch, 0)?, dates(&batch, 1)?, floats(&batch, 2)?);
            for row in 0..batch.num_rows() {
                if let (Some(code), true, true) =
                    (code.value(row), on.is_valid(row), rate.is_valid(row))
                {
                    quotes.push((self.currency(code), on.value(row), rate.value(row)));
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
    /// currency with no quote by then, and for all when the reporting currency has none.
    pub fn rates_on(&self, s: Day) -> Vec<Option<f64>> {
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

/// The settlements of the invoices of `by_invoice` in `rows` (of [`SETTLEMENTS`]), by invoice
/// and oldest first, and where each invoice's begin (see [`History::settled_from`]). The ids
/// are looked up on both cores, half the batches each.
fn settlements(
    rows: Vec<RecordBatch>,
    by_invoice: &ById<'_>,
) -> Result<(Vec<Settlement>, Vec<u32>), EngineError> {
    type Found = Vec<(u32, Settlement)>;
    let look_up = |rows: &[RecordBatch]| -> Result<Found, EngineError> {
        let mut found = Vec::new();
        for batch in rows {
            let (id, on) = (strings(batch, 0)?, dates(batch, 1)?);
            let cents = cast(batch.column(2), &DataType::Int64)?;
            let cents = cents.as_primitive::<arrow::datatypes::Int64Type>();
            let cash = batch.column(3).as_boolean();
            let applied = dates(batch, 4)?;
            for row in 0..batch.num_rows() {
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
    let mut from = vec![0u32; by_invoice.len() + 1];
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
    for i in 0..by_invoice.len() {
        settled[from[i] as usize..from[i + 1] as usize]
            .sort_unstable_by_key(|x| (x.day, x.cents, x.cash, x.known));
    }
    Ok((settled, from))
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

fn group<T>(n: usize, items: Vec<(u32, T)>) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (c, item) in items {
        out[c as usize].push(item);
    }
    out
}

/// A column as text, whatever string type the engine gave it.
pub(crate) struct Strings(arrow::array::ArrayRef);

impl Strings {
    pub(crate) fn value(&self, row: usize) -> Option<&str> {
        let a = self.0.as_string::<i32>();
        a.is_valid(row).then(|| a.value(row))
    }
}

/// Column `i` of `batch` as [`Strings`].
pub(crate) fn strings(batch: &RecordBatch, i: usize) -> Result<Strings, EngineError> {
    Ok(Strings(cast(batch.column(i), &DataType::Utf8)?))
}

fn dates(batch: &RecordBatch, i: usize) -> Result<arrow::array::Date32Array, EngineError> {
    Ok(cast(batch.column(i), &DataType::Date32)?
        .as_primitive::<Date32Type>()
        .clone())
}

fn floats(batch: &RecordBatch, i: usize) -> Result<arrow::array::Float64Array, EngineError> {
    Ok(cast(batch.column(i), &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}
