//! The 13-week cash forecast: for each invoice open on a day, the chance of its balance coming
//! in on each of the next 91 days, summed by week in the reporting currency, with an 80 % band.
//!
//! An invoice's days come from its customer's payment delays and the population's
//! ([`super::delays`]), given that it is unpaid through its age today. An invoice with an open
//! dispute pays as the invoices disputed before it paid (their delays, the customer's and
//! everyone's, given its age): on IBM's histories that is 26.7 % rolling WAPE where holding it
//! until the dispute's typical resolution and then applying the customer's delays on top gave
//! 38.6 %, counting the dispute's time twice. With too few disputed invoices to learn from
//! (100 due in the year), it is held until the dispute is expected to be resolved (the typical
//! duration of the disputes resolved so far, given how long this one has been open) and paid
//! as the customer pays from then. An active promise to pay puts the promised
//! amount on the promised day, as likely as the customer keeps its promises, and the rest after
//! the promise's deadline. Everything is read as known on the forecast day, so a forecast of a
//! past day is what it would have said then (`tests/forecast.rs`).
//!
//! The band is measured, not assumed: the forecasts of earlier days (every 13 days over the
//! quarter before) against the receipts that came in since, their actual ÷ forecast ratios'
//! 10th and 90th percentiles (weighted by the forecast, so weeks with almost nothing forecast
//! do not set the band) around today's forecast, per span of weeks. A span with too few ratios
//! of its own takes all spans' together, and at least the spread the invoices' own chances
//! give (as if independent); with too few ratios in all (a short history), that spread alone.

use std::collections::HashMap;

use super::as_of_views::OpenItem;
use super::delays::{CustomerDelays, Population, paid_on_days};
use super::history::{Day, History, Pledge};

/// Weeks forecast, and their days.
pub const WEEKS: usize = 13;
pub const HORIZON: Day = 7 * WEEKS as Day;
/// The band's calibration: forecasts this many days apart…
const CALIBRATE_EVERY: Day = 13;
/// …this many of them, at most.
const CALIBRATION_ORIGINS: Day = 7;
/// Ratios needed to trust their percentiles (of a span of weeks, or all).
const MIN_RATIOS: usize = 10;
/// A promise is kept as the customer's kept share, smoothed towards everyone's as if by this
/// many promises.
const PROMISE_PRIOR: f64 = 2.0;
/// Disputed invoices due in the year before needed to learn how disputed invoices pay.
const MIN_DISPUTED: usize = 100;
/// Days a dispute open longer than any resolved so far is still expected to take.
const DISPUTE_FALLBACK_DAYS: Day = 30;
/// A balance below this (in its currency) is paid.
const PAID: f64 = 0.005;

/// Why an invoice's receipt is expected when it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Basis {
    /// The customer's payment delays.
    Pattern,
    /// An open dispute: the delays of the invoices disputed before (the customer's and
    /// everyone's).
    Disputed,
    /// An open dispute, expected to be resolved on this day (too few invoices were disputed
    /// before to learn how disputed invoices pay).
    Dispute(Day),
    /// A promise to pay on this day.
    Promise(Day),
}

impl Basis {
    pub fn describe(self) -> String {
        let date = crate::dates::date;
        match self {
            Basis::Pattern => "payment pattern".into(),
            Basis::Disputed => "open dispute: as disputed invoices were paid".into(),
            Basis::Dispute(d) => format!("held: open dispute, resolution expected {}", date(d)),
            Basis::Promise(d) => format!("promised for {}", date(d)),
        }
    }
}

/// One open invoice's forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceForecast {
    /// Index into [`History::invoices`].
    pub invoice: usize,
    /// What is open on it, and what is expected in the 13 weeks, in the reporting currency.
    pub open: f64,
    pub expected: f64,
    /// The expected day of receipt within the 13 weeks (`None`: nothing expected in them).
    pub expected_day: Option<Day>,
    pub basis: Basis,
    /// What of `expected` falls in each week.
    pub weeks: [f64; WEEKS],
}

/// One week's receipts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Week {
    pub start: Day,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
}

/// The forecast of a day.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub as_of: Day,
    pub weeks: Vec<Week>,
    pub invoices: Vec<InvoiceForecast>,
    /// Open invoices left out: their currency has no closing rate.
    pub unconverted: usize,
    /// How the band was made.
    pub band: Band,
}

/// How a forecast's band was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Band {
    /// From the actual ÷ forecast ratios of earlier forecasts, for each span of weeks.
    Measured([Percentiles; SPANS.len()]),
    /// From the invoices' chances, as if independent.
    Chances,
}

/// The band's spans of weeks: 1–4, 5–8, 9–13.
const SPANS: [std::ops::Range<usize>; 3] = [0..4, 4..8, 8..WEEKS];

fn span_of(week: usize) -> usize {
    SPANS.iter().position(|r| r.contains(&week)).unwrap_or(0)
}

/// The 10th and 90th percentiles of actual ÷ forecast ratios, each ratio weighing as much as
/// the forecast it divides (a week forecast at 5 dollars says little of one at 5,000), and how
/// many there were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub low: f64,
    pub high: f64,
    pub ratios: usize,
    /// Made from all spans' ratios together (this span had too few of its own).
    pub pooled: bool,
}

impl Percentiles {
    /// Of (ratio, weight) pairs; `None` for fewer than are needed to trust them.
    fn of(mut ratios: Vec<(f64, f64)>) -> Option<Percentiles> {
        if ratios.len() < MIN_RATIOS {
            return None;
        }
        ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = ratios.iter().map(|r| r.1).sum();
        let at = |q: f64| {
            let mut acc = 0.0;
            for r in &ratios {
                acc += r.1;
                if acc >= q * total {
                    return r.0;
                }
            }
            ratios[ratios.len() - 1].0
        };
        Some(Percentiles {
            low: at(0.1),
            high: at(0.9),
            ratios: ratios.len(),
            pooled: false,
        })
    }
}

/// Why there is no forecast.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    #[error(
        "no invoice due in the year to {0} was paid by then: nothing to learn payment delays from"
    )]
    NoPayments(chrono::NaiveDate),
}

/// The week sums of a forecast before its band: expected, and the variance the invoices'
/// chances give.
#[derive(Debug, Clone)]
struct Sums {
    expected: [f64; WEEKS],
    variance: [f64; WEEKS],
}

/// Forecasts of several days from one history, each made once.
pub struct Forecaster<'h> {
    history: &'h History,
    sums: HashMap<Day, Option<Sums>>,
}

impl<'h> Forecaster<'h> {
    pub fn new(history: &'h History) -> Forecaster<'h> {
        Forecaster {
            history,
            sums: HashMap::new(),
        }
    }

    pub fn history(&self) -> &'h History {
        self.history
    }

    /// The forecast of day `s`, its band measured on what was known by `s`.
    pub fn forecast(&mut self, s: Day) -> Result<Forecast, ForecastError> {
        self.prepare(&self.calibration_origins(s));
        let (invoices, sums, unconverted) = invoice_forecasts(self.history, s, true)
            .ok_or(ForecastError::NoPayments(crate::dates::date(s)))?;
        self.sums.insert(s, Some(sums.clone()));
        let band = self.band(s);
        let z = 1.2816; // the normal's 90th percentile: an 80 % band
        let weeks = (0..WEEKS)
            .map(|w| {
                let expected = sums.expected[w];
                let spread = z * sums.variance[w].sqrt();
                let chances = ((expected - spread).max(0.0), expected + spread);
                // A span's own measured band; one borrowed from all spans' ratios (too few of
                // its own) is at least as wide as the invoices' own chances make it. (Flooring
                // every span at the chances held 87-92 % of IBM's weeks, too wide.)
                let (low, high) = match band {
                    Band::Measured(spans) if !spans[span_of(w)].pooled => {
                        let p = spans[span_of(w)];
                        (expected * p.low, expected * p.high)
                    }
                    Band::Measured(spans) => {
                        let p = spans[span_of(w)];
                        (
                            (expected * p.low).min(chances.0),
                            (expected * p.high).max(chances.1),
                        )
                    }
                    Band::Chances => chances,
                };
                Week {
                    start: s + 1 + 7 * w as Day,
                    expected,
                    low,
                    high,
                }
            })
            .collect();
        Ok(Forecast {
            as_of: s,
            weeks,
            invoices,
            unconverted,
            band,
        })
    }

    /// The band for a forecast of `s`: the ratios of the forecasts of the days before against
    /// the receipts known by `s`, week by week in three spans of the horizon (further weeks
    /// are forecast less surely), all weeks together for a span with too few.
    fn band(&mut self, s: Day) -> Band {
        let mut ratios: [Vec<(f64, f64)>; SPANS.len()] = Default::default();
        for o in self.calibration_origins(s) {
            let history = self.history;
            let Some(sums) = self.sums_of(o) else {
                continue;
            };
            let actual = receipts(history, o, s);
            for w in 0..WEEKS {
                if let Some(a) = actual[w]
                    && sums.expected[w] > 0.0
                {
                    ratios[span_of(w)].push((a / sums.expected[w], sums.expected[w]));
                }
            }
        }
        let all: Vec<(f64, f64)> = ratios.iter().flatten().copied().collect();
        let Some(pooled) = Percentiles::of(all) else {
            return Band::Chances;
        };
        let pooled = Percentiles {
            pooled: true,
            ..pooled
        };
        Band::Measured(ratios.map(|r| Percentiles::of(r).unwrap_or(pooled)))
    }

    fn sums_of(&mut self, o: Day) -> Option<&Sums> {
        self.prepare(&[o]);
        self.sums.get(&o).and_then(Option::as_ref)
    }

    /// The days whose forecasts measure the band of a forecast of `s` (those with 91 days of
    /// history before them).
    fn calibration_origins(&self, s: Day) -> Vec<Day> {
        let first = self.history.first_day().unwrap_or(s);
        (1..=CALIBRATION_ORIGINS)
            .map(|k| s - k * CALIBRATE_EVERY)
            .take_while(|&o| o >= first + HORIZON)
            .collect()
    }

    /// The week sums of the forecasts of `origins` not made yet, on all cores.
    pub fn prepare(&mut self, origins: &[Day]) {
        let missing: Vec<Day> = (origins.iter().copied())
            .filter(|o| !self.sums.contains_key(o))
            .collect();
        if missing.is_empty() {
            return;
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let history = self.history;
        let made: Vec<(Day, Option<Sums>)> = std::thread::scope(|scope| {
            let chunks = missing.chunks(missing.len().div_ceil(threads));
            let handles: Vec<_> = chunks
                .map(|chunk| {
                    scope.spawn(move || {
                        (chunk.iter())
                            .map(|&o| (o, invoice_forecasts(history, o, false).map(|f| f.1)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            (handles.into_iter())
                .flat_map(|h| h.join().expect("a forecast thread panicked"))
                .collect()
        });
        self.sums.extend(made);
    }
}

/// Whether invoice `i` is open on day `s`, and its balance then (on the as-of date, a
/// replaced `open_items`' open amount).
pub(crate) fn open_balance(history: &History, i: usize, s: Day) -> Option<f64> {
    if let (true, Some(items)) = (s == history.as_of, &history.views.open_items) {
        let open = items.get(&(i as u32))?.open;
        return (open > PAID).then_some(open);
    }
    let inv = &history.invoices[i];
    if !inv.exists_on(s) || inv.paid_by(s).is_some() {
        return None;
    }
    let balance = history.balance_on(i, s);
    (balance > PAID).then_some(balance)
}

/// The cash received on the invoices open on day `o` in each of the 13 weeks after it, in the
/// reporting currency at the closing rates of `o` (as the forecast of `o` converts); `None` for
/// a week not over by `known_by`.
pub fn receipts(history: &History, o: Day, known_by: Day) -> [Option<f64>; WEEKS] {
    let mut out = [None; WEEKS];
    for (w, week) in out.iter_mut().enumerate() {
        if o + 7 * (w as Day + 1) <= known_by {
            *week = Some(0.0);
        }
    }
    let rates = history.rates_on(o);
    for i in 0..history.invoices.len() {
        let Some(rate) = rate_of(history, &rates, i) else {
            continue;
        };
        if open_balance(history, i, o).is_none() {
            continue;
        }
        for x in history.settlements_of(i) {
            if !x.cash || x.day <= o || x.day > o + HORIZON || x.known > known_by {
                continue;
            }
            if let Some(sum) = &mut out[((x.day - o - 1) / 7) as usize] {
                *sum += x.cents as f64 / 100.0 * rate;
            }
        }
    }
    out
}

/// Invoice `i`'s rate of `rates` (a day's, from [`History::rates_on`]).
pub(crate) fn rate_of(history: &History, rates: &[Option<f64>], i: usize) -> Option<f64> {
    rates
        .get(usize::from(history.invoices[i].currency))
        .copied()
        .flatten()
}

/// The invoices with a dispute raised by day `s`.
fn disputed_by(history: &History, s: Day) -> std::collections::HashSet<usize> {
    (history.disputes.iter().flatten())
        .filter(|d| d.opened <= s)
        .filter_map(|d| Some(d.invoice? as usize))
        .collect()
}

/// When the disputes open on day `s` are expected to be resolved: by invoice.
fn dispute_holds(history: &History, s: Day) -> HashMap<u32, Day> {
    let mut durations: Vec<Day> = (history.disputes.iter().flatten())
        .filter_map(|d| Some(d.closed.filter(|&c| c <= s)? - d.opened))
        .collect();
    durations.sort_unstable();
    let mut holds = HashMap::new();
    for d in history.disputes.iter().flatten() {
        let (Some(invoice), true) = (d.invoice, d.opened <= s) else {
            continue;
        };
        if d.closed.is_some_and(|c| c <= s) {
            continue;
        }
        let open_for = s - d.opened;
        // The median of what the disputes resolved so far took beyond this one's age.
        let longer = &durations[durations.partition_point(|&x| x <= open_for)..];
        let left = match longer.len() {
            0 => DISPUTE_FALLBACK_DAYS,
            n => longer[n / 2] - open_for,
        };
        let until = s + left.max(1);
        let hold = holds.entry(invoice).or_insert(until);
        *hold = (*hold).max(until);
    }
    // On the as-of date, a replaced `open_items` says which invoices are in dispute.
    if let (true, Some(items)) = (s == history.as_of, &history.views.open_items) {
        holds.retain(|i, _| items.get(i).is_some_and(|o| o.in_dispute));
        for (&i, item) in items {
            if item.in_dispute {
                holds.entry(i).or_insert(s + DISPUTE_FALLBACK_DAYS);
            }
        }
    }
    holds
}

/// Whether promise `p` is active on day `s`: made by then, and its promised date plus the
/// grace days not yet past.
fn is_active(p: &Pledge, s: Day, grace: Day) -> bool {
    p.created <= s && p.promised + grace >= s
}

/// `invoice_status` of day `s` as the forecast's rules make it: each invoice that exists then,
/// its open amount, whether it is in dispute, and the promised date of an active promise on
/// it (`tests/mirrors.rs` holds it to the view).
pub fn open_items_on(history: &History, s: Day) -> HashMap<u32, OpenItem> {
    let holds = dispute_holds(history, s);
    let mut items = HashMap::new();
    for (i, inv) in history.invoices.iter().enumerate() {
        if !inv.exists_on(s) {
            continue;
        }
        let promised = (history.pledges[inv.customer as usize].iter())
            .filter(|p| p.invoice == Some(i as u32) && is_active(p, s, history.grace_days))
            .map(|p| p.promised)
            .max();
        let item = OpenItem {
            open: history.balance_on(i, s),
            in_dispute: holds.contains_key(&(i as u32)),
            promised,
        };
        items.insert(i as u32, item);
    }
    items
}

/// The promises active on day `s` of customer `c` (made by then, and their promised day plus
/// the grace days not yet past), as (invoice, promised day, amount): a promise on the account
/// goes to its open invoices, the oldest due first. In the order made: the last made for an
/// invoice is the one that counts.
fn active_promises(
    history: &History,
    c: usize,
    s: Day,
    open: &[(usize, f64)],
) -> Vec<(usize, Day, f64)> {
    let mut out: Vec<(usize, Day, f64)> = Vec::new();
    let grace = history.grace_days;
    // On the as-of date, a replaced `open_items` gives the promises on invoices.
    let view = (s == history.as_of)
        .then_some(())
        .and(history.views.open_items.as_ref());
    let active = (history.pledges[c].iter()).filter(|p| is_active(p, s, grace));
    for p in active {
        match p.invoice {
            Some(_) if view.is_some() => {}
            Some(i) => {
                let i = i as usize;
                // Kept already: paid since it was made, as much as promised.
                let paid: i64 = (history.settlements_of(i).iter())
                    .filter(|x| x.cash && x.day >= p.created && x.day <= s && x.known <= s)
                    .map(|x| x.cents)
                    .sum();
                if (paid as f64) / 100.0 + PAID < p.amount && open.iter().any(|o| o.0 == i) {
                    out.push((i, p.promised, p.amount));
                }
            }
            None => {
                let mut left = p.amount;
                let mut by_due: Vec<&(usize, f64)> = open.iter().collect();
                by_due.sort_by_key(|(i, _)| history.invoices[*i].due_date);
                for &&(i, balance) in &by_due {
                    if left <= PAID {
                        break;
                    }
                    if out.iter().any(|o| o.0 == i) {
                        continue;
                    }
                    out.push((i, p.promised, left.min(balance)));
                    left -= balance;
                }
            }
        }
    }
    if let Some(items) = view {
        for &(i, balance) in open {
            if let Some(promised) = items.get(&(i as u32)).and_then(|o| o.promised) {
                out.push((i, promised, balance));
            }
        }
    }
    out
}

/// The share of promises kept of customer `c`, smoothed towards `everyone`, of those whose
/// outcome was known on day `s`.
fn kept_share(history: &History, c: usize, s: Day, everyone: f64) -> f64 {
    let known = history.promises[c].iter().filter(|p| p.deadline <= s);
    let (kept, all) = known.fold((0.0, 0.0), |(k, n), p| {
        (k + f64::from(u8::from(p.kept)), n + 1.0)
    });
    (kept + PROMISE_PRIOR * everyone) / (all + PROMISE_PRIOR)
}

/// Every open invoice's forecast on day `s` (with `keep_invoices`; none without) and the week
/// sums; `None` without a paid invoice to learn from.
fn invoice_forecasts(
    history: &History,
    s: Day,
    keep_invoices: bool,
) -> Option<(Vec<InvoiceForecast>, Sums, usize)> {
    let population = Population::learn(history, s)?;
    let rates = history.rates_on(s);
    let holds = dispute_holds(history, s);
    // Disputed invoices pay as the disputed invoices before them paid, where there were enough
    // (learned only when a dispute is open).
    let disputed = disputed_by(history, s);
    let disputed_population = (!holds.is_empty())
        .then(|| Population::learn_from(history, s, disputed.iter().copied()))
        .flatten()
        .filter(|p| p.invoices >= MIN_DISPUTED);
    let (kept, decided) = (history.promises.iter().flatten())
        .filter(|p| p.deadline <= s)
        .fold((0.0, 0.0), |(k, n), p| {
            (k + f64::from(u8::from(p.kept)), n + 1.0)
        });
    let everyone_keeps = if decided > 0.0 { kept / decided } else { 0.5 };
    let mut sums = Sums {
        expected: [0.0; WEEKS],
        variance: [0.0; WEEKS],
    };
    let mut invoices = Vec::new();
    let mut unconverted = 0;
    let mut days = vec![0.0; HORIZON as usize];
    let mut scratch = vec![0.0; HORIZON as usize];
    for c in 0..history.customers.len() {
        let range = history.by_customer[c].clone();
        let open: Vec<(usize, f64)> = range
            .filter_map(|i| Some((i, open_balance(history, i, s)?)))
            .collect();
        if open.is_empty() {
            continue;
        }
        let delays = CustomerDelays::learn(history, c, s);
        // Learned only for a customer with an invoice in dispute.
        let disputed_pattern = (disputed_population.as_ref())
            .filter(|_| open.iter().any(|(i, _)| holds.contains_key(&(*i as u32))))
            .map(|population| {
                let delays = CustomerDelays::learn_from(history, c, s, |i| disputed.contains(&i));
                (population, delays)
            });
        let promises = active_promises(history, c, s, &open);
        let keeps = if promises.is_empty() {
            0.0
        } else {
            kept_share(history, c, s, everyone_keeps)
        };
        for &(i, balance) in &open {
            let Some(rate) = rate_of(history, &rates, i) else {
                unconverted += 1;
                continue;
            };
            let due = history.invoices[i].due_date;
            let due_month = super::delays::month(due);
            // Paid on day `s + 1 + j` with chance `days[j]`, unpaid through `through`.
            let mut from = |through: Day,
                            share: f64,
                            (population, delays): (&Population, &CustomerDelays),
                            days: &mut [f64]| {
                let skip = (through - s).clamp(0, HORIZON) as usize;
                let n = days.len() - skip;
                paid_on_days(
                    population,
                    delays,
                    due_month,
                    through - due,
                    &mut scratch[..n],
                );
                for (d, p) in days[skip..].iter_mut().zip(&scratch[..n]) {
                    *d += share * p;
                }
            };
            days.fill(0.0);
            let pattern = (&population, &delays);
            let basis = if let Some(&until) = holds.get(&(i as u32)) {
                match &disputed_pattern {
                    Some((population, delays)) => {
                        from(s, 1.0, (population, delays), &mut days);
                        Basis::Disputed
                    }
                    None => {
                        from(until - 1, 1.0, pattern, &mut days);
                        Basis::Dispute(until)
                    }
                }
            } else if let Some(&(_, promised, amount)) = promises.iter().rfind(|p| p.0 == i) {
                let on = promised.max(s + 1);
                let share = keeps * (amount / balance).min(1.0);
                if on <= s + HORIZON {
                    days[(on - s - 1) as usize] += share;
                }
                let deadline = (promised + history.grace_days).max(s);
                from(deadline, 1.0 - share, pattern, &mut days);
                Basis::Promise(promised)
            } else {
                from(s, 1.0, pattern, &mut days);
                Basis::Pattern
            };
            // Cash only: what credits and write-offs settle brings none.
            for (j, p) in days.iter_mut().enumerate() {
                *p *= population.cash_share(s + 1 + j as Day - due);
            }
            let open_rc = balance * rate;
            let (mut total, mut weighted) = (0.0, 0.0);
            let mut weeks = [0.0; WEEKS];
            for (w, week) in days.chunks(7).enumerate() {
                let p: f64 = week.iter().sum();
                weeks[w] = p * open_rc;
                sums.expected[w] += p * open_rc;
                sums.variance[w] += open_rc * open_rc * p * (1.0 - p);
            }
            for (j, p) in days.iter().enumerate() {
                total += p;
                weighted += p * j as f64;
            }
            if !keep_invoices {
                continue;
            }
            invoices.push(InvoiceForecast {
                invoice: i,
                open: open_rc,
                expected: total * open_rc,
                expected_day: (total > 1e-9).then(|| s + 1 + (weighted / total).round() as Day),
                basis,
                weeks,
            });
        }
    }
    Some((invoices, sums, unconverted))
}
