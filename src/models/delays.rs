//! How many days after its due date an invoice gets paid, as learned on a day from what was
//! known that day: over all customers, and per customer.
//!
//! The population's delays are a Kaplan–Meier estimate over the invoices due in the year
//! before the day: a paid invoice is a payment at its delay, one still open is known only to
//! be paid later than its age, so the slow payers of the last months are not left out. Where
//! too few invoices are left to estimate a day's chance of payment (the long tail), one
//! chance for all the days from there on. A customer's own delays are those of its latest
//! paid invoices; an invoice's delay is a mixture of the two, the customer's weighing more
//! the more invoices it has paid.

use super::history::{Day, History};

/// Delays are counted from this many days before due (earlier payments count as this)…
pub const EARLIEST: Day = -120;
/// …to this many after; later days share the tail's chance of payment.
pub const LATEST: Day = 730;
/// The population learns from the invoices due in these days before the day.
const WINDOW_DAYS: Day = 365;
/// A day's chance of payment needs this many invoices still open at that delay.
const MIN_AT_RISK: f64 = 30.0;
/// The customer's delays weigh `n / (n + PRIOR_INVOICES)` for `n` paid invoices (recent ones:
/// see [`HALF_LIFE_DAYS`]).
const PRIOR_INVOICES: f64 = 3.0;
/// A payment this many days old counts half as much as one of today…
const HALF_LIFE_DAYS: f64 = 90.0;
/// …but one due in the same month of the year as the invoice forecast counts at least this…
const SAME_MONTH_WEIGHT: f64 = 0.5;
/// …of the invoices issued in these days before.
const REACH_DAYS: Day = 400;

/// The population's chance of payment on each day of delay, for an invoice unpaid until then.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    /// `hazard[d - EARLIEST]` for `d` in `EARLIEST..=LATEST`.
    hazard: Vec<f64>,
    /// The chance on every later day.
    tail: f64,
    /// `survival[d - EARLIEST]`: the chance of being unpaid after day `d`.
    survival: Vec<f64>,
    /// The mean delay of the invoices paid (for the average-delay baseline of a new customer).
    pub mean_paid_delay: f64,
    /// Of what settled the invoices at each span of delay (see [`CASH_SPANS`]), the share
    /// that came in cash: the rest are credits and write-offs, which bring no cash.
    cash_share: [f64; CASH_SPANS.len()],
    /// The invoices learned from: those due in the year before the day, paid or not.
    pub invoices: usize,
}

/// The spans of delay with a cash share of their own: up to 30 days after due, up to 90, up to
/// 180, later (write-offs come late).
const CASH_SPANS: [Day; 4] = [30, 90, 180, Day::MAX];

fn cash_span(d: Day) -> usize {
    CASH_SPANS.iter().position(|&up_to| d <= up_to).unwrap_or(0)
}

fn index(d: Day) -> usize {
    (d.clamp(EARLIEST, LATEST) - EARLIEST) as usize
}

impl Population {
    /// Learn on day `s` from what the history knew then; `None` if no invoice was paid.
    pub fn learn(history: &History, s: Day) -> Option<Population> {
        Population::learn_from(history, s, 0..history.invoices.len())
    }

    /// [`Population::learn`] from the invoices `among` (indexes into [`History::invoices`],
    /// each once): a few disputed ones cost a pass over them, not over every invoice.
    pub fn learn_from(
        history: &History,
        s: Day,
        among: impl IntoIterator<Item = usize>,
    ) -> Option<Population> {
        let n = (LATEST - EARLIEST + 1) as usize;
        let (mut paid, mut open_until) = (vec![0f64; n], vec![0f64; n]);
        let (mut delay_sum, mut paid_count) = (0f64, 0f64);
        let mut invoices = 0;
        let (mut cash, mut settled) = ([0i64; CASH_SPANS.len()], [0i64; CASH_SPANS.len()]);
        for i in among {
            let inv = &history.invoices[i];
            if inv.due_date > s || inv.due_date < s - WINDOW_DAYS || !inv.exists_on(s) {
                continue;
            }
            invoices += 1;
            for x in history
                .settlements_of(i)
                .iter()
                .take_while(|x| x.day <= s)
                .filter(|x| x.known <= s)
            {
                let span = cash_span(x.day - inv.due_date);
                settled[span] += x.cents;
                if x.cash {
                    cash[span] += x.cents;
                }
            }
            match inv.paid_by(s) {
                Some(p) => {
                    paid[index(p - inv.due_date)] += 1.0;
                    delay_sum += f64::from(p - inv.due_date);
                    paid_count += 1.0;
                }
                // Known to be unpaid through its age today. (A void's balance is nothing to
                // wait for: it exists only until it was voided.)
                None if history.balance_on(i, s) > 0.005 => {
                    open_until[index(s - inv.due_date)] += 1.0
                }
                None => {}
            }
        }
        if paid_count == 0.0 {
            return None;
        }
        // At risk on day d: paid on d or later, or open through d or later.
        let mut hazard = vec![0f64; n];
        let mut at_risk = 0f64;
        let mut tail_from = n;
        let mut at_risk_by_day = vec![0f64; n];
        for k in (0..n).rev() {
            at_risk += paid[k] + open_until[k];
            at_risk_by_day[k] = at_risk;
        }
        for k in 0..n {
            if at_risk_by_day[k] < MIN_AT_RISK && k >= index(0) {
                tail_from = k;
                break;
            }
            hazard[k] = match at_risk_by_day[k] {
                0.0 => 0.0,
                r => paid[k] / r,
            };
        }
        // The tail: payments over days at risk from where the estimate thins out.
        let (events, exposure) = (tail_from..n).fold((0f64, 0f64), |(e, x), k| {
            (e + paid[k], x + at_risk_by_day[k])
        });
        let tail = if exposure > 0.0 && events > 0.0 {
            events / exposure
        } else {
            // No payment seen that late: a small chance still, so nothing is certain.
            0.002
        };
        for h in &mut hazard[tail_from..] {
            *h = tail;
        }
        let mut survival = vec![0f64; n];
        let mut alive = 1.0;
        for k in 0..n {
            alive *= 1.0 - hazard[k];
            survival[k] = alive;
        }
        let cash_share = std::array::from_fn(|k| match settled[k] {
            ..=0 => 1.0,
            all => (cash[k] as f64 / all as f64).clamp(0.0, 1.0),
        });
        Some(Population {
            hazard,
            tail,
            survival,
            mean_paid_delay: delay_sum / paid_count,
            cash_share,
            invoices,
        })
    }

    /// The share of a settlement at delay `d` that comes in cash.
    pub fn cash_share(&self, d: Day) -> f64 {
        self.cash_share[cash_span(d)]
    }

    /// The chance of payment on day of delay `d`, unpaid until then.
    fn hazard(&self, d: Day) -> f64 {
        if d > LATEST {
            self.tail
        } else {
            self.hazard[index(d)]
        }
    }

    /// The chance of still being unpaid after day of delay `d`.
    fn survival(&self, d: Day) -> f64 {
        if d < EARLIEST {
            1.0
        } else if d > LATEST {
            self.survival[index(LATEST)] * (1.0 - self.tail).powi(d - LATEST)
        } else {
            self.survival[index(d)]
        }
    }
}

/// A customer's delays as known on a day: those of its paid invoices of the last year and a
/// bit, each weighing less the longer ago it was paid (a customer whose payments slow down is
/// forecast as it pays now, not as it paid last year), except those due in the same month of
/// the year as the invoice forecast (a customer slow every December is slow this December).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerDelays {
    /// (delay, weight by recency, month due 1–12), by delay.
    delays: Vec<(Day, f64, u8)>,
}

impl CustomerDelays {
    /// Customer `c`'s, on day `s`.
    pub fn learn(history: &History, c: usize, s: Day) -> CustomerDelays {
        CustomerDelays::learn_from(history, c, s, |_| true)
    }

    /// [`CustomerDelays::learn`] from the invoices `include` takes (by index into
    /// [`History::invoices`]).
    pub fn learn_from(
        history: &History,
        c: usize,
        s: Day,
        include: impl Fn(usize) -> bool,
    ) -> CustomerDelays {
        let mut delays: Vec<(Day, f64, u8)> = (history.by_customer[c].clone().rev())
            .map(|i| (i, &history.invoices[i]))
            .take_while(|(_, inv)| inv.invoice_date >= s - REACH_DAYS)
            .filter(|&(i, inv)| inv.exists_on(s) && include(i))
            .filter_map(|(_, inv)| {
                let paid = inv.paid_by(s)?;
                let weight = 0.5f64.powf(f64::from(s - paid) / HALF_LIFE_DAYS);
                let delay = (paid - inv.due_date).clamp(EARLIEST, LATEST);
                Some((delay, weight, month(inv.due_date)))
            })
            .collect();
        delays.sort_unstable_by_key(|d| d.0);
        CustomerDelays { delays }
    }

    /// The delays of all of customer `c`'s invoices paid by day `s`, alike (for the
    /// average-delay baseline).
    pub fn learn_all(history: &History, c: usize, s: Day) -> CustomerDelays {
        let delays = (history.invoices_of(c).iter())
            .filter(|inv| inv.exists_on(s))
            .filter_map(|inv| Some((inv.paid_by(s)? - inv.due_date, 1.0, 0)))
            .collect();
        CustomerDelays { delays }
    }

    /// Their mean, each weighing as [`CustomerDelays::weight`] for an invoice due in month
    /// `due_month` (`None` without any).
    pub fn mean(&self, due_month: u8) -> Option<f64> {
        let (sum, weight) = (self.delays.iter()).fold((0.0, 0.0), |(sum, weight), d| {
            let w = weight_of(d, due_month);
            (sum + f64::from(d.0) * w, weight + w)
        });
        (weight > 0.0).then(|| sum / weight)
    }
}

/// How much a delay of the customer's counts for an invoice due in month `due_month`.
fn weight_of(&(_, recency, month): &(Day, f64, u8), due_month: u8) -> f64 {
    if month == due_month {
        recency.max(SAME_MONTH_WEIGHT)
    } else {
        recency
    }
}

/// The month of the year of a day, 1–12.
pub fn month(day: Day) -> u8 {
    use chrono::Datelike;
    crate::dates::date(day).month() as u8
}

/// The chance of payment on each of `days.len()` days after day of delay `age`, for an invoice
/// unpaid through `age`, into `days` (what is left is paid later, or never).
pub fn paid_on_days(
    population: &Population,
    customer: &CustomerDelays,
    due_month: u8,
    age: Day,
    days: &mut [f64],
) {
    days.fill(0.0);
    let weight = |d: &(Day, f64, u8)| weight_of(d, due_month);
    let n: f64 = customer.delays.iter().map(weight).sum();
    let share = n / (n + PRIOR_INVOICES);
    // Given it is unpaid through `age`, how much each part of the mixture explains that.
    let later = &customer.delays[customer.delays.partition_point(|&(d, ..)| d <= age)..];
    let left: f64 = later.iter().map(weight).sum();
    let customer_left = if n > 0.0 { left / n } else { 0.0 };
    let population_left = population.survival(age);
    let (w_customer, w_population) = (share * customer_left, (1.0 - share) * population_left);
    let total = w_customer + w_population;
    if total <= 0.0 {
        return;
    }
    let (w_customer, w_population) = (w_customer / total, w_population / total);
    let mut alive = 1.0;
    for (j, p) in days.iter_mut().enumerate() {
        let h = population.hazard(age + 1 + j as Day);
        *p = w_population * alive * h;
        alive *= 1.0 - h;
    }
    if w_customer > 0.0 {
        for d in later {
            let j = (d.0 - age - 1) as usize;
            if j < days.len() {
                days[j] += w_customer * weight(d) / left;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population(hazard: f64) -> Population {
        let n = (LATEST - EARLIEST + 1) as usize;
        let mut survival = vec![0.0; n];
        let mut alive = 1.0;
        for s in survival.iter_mut() {
            alive *= 1.0 - hazard;
            *s = alive;
        }
        Population {
            hazard: vec![hazard; n],
            tail: hazard,
            survival,
            mean_paid_delay: 0.0,
            cash_share: [1.0; CASH_SPANS.len()],
            invoices: 0,
        }
    }

    #[test]
    fn a_customer_with_a_history_pays_mostly_on_its_own_delays() {
        let pop = population(0.01);
        let customer = CustomerDelays {
            delays: vec![(10, 1.0, 1); 30],
        };
        let mut days = vec![0.0; 30];
        paid_on_days(&pop, &customer, 1, 0, &mut days);
        // Day 10 of delay is the 10th day after age 0.
        assert!(days[9] > 0.85, "{}", days[9]);
        assert!(days.iter().sum::<f64>() <= 1.0 + 1e-9);
        // Already later than it ever paid: the population's chance from there.
        paid_on_days(&pop, &customer, 1, 20, &mut days);
        assert!((days[0] - 0.01).abs() < 1e-12, "{}", days[0]);
    }

    #[test]
    fn a_new_customer_pays_as_the_population() {
        let pop = population(0.1);
        let mut days = vec![0.0; 3];
        paid_on_days(&pop, &CustomerDelays::default(), 1, 5, &mut days);
        assert!((days[0] - 0.1).abs() < 1e-12);
        assert!((days[1] - 0.09).abs() < 1e-12);
        assert!((days[2] - 0.081).abs() < 1e-12);
    }
}
