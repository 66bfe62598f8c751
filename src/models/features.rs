//! The risk model's features of an invoice on a day, from what was known that day.
//!
//! A feature of day `s` reads only facts dated up to `s`: invoices issued by then, payments
//! covering them by then, disputes opened by then (and whether closed by then), promises whose
//! deadline had passed, the credit limit recorded by then. So the features of a day do not
//! change when later rows land (`tests/risk.rs` checks it), and a backtest's features at its
//! cut-off are what a collector could have known.

use super::history::{Day, History, Invoice};

/// How many features an invoice has.
pub const COUNT: usize = 16;

/// The features' names, in the order of [`Features::values`].
pub const NAMES: [&str; COUNT] = [
    "late_share",
    "settled_invoices",
    "mean_days_late",
    "recent_trend",
    "worst_recent",
    "other_invoices_late",
    "credit_used",
    "open_disputes",
    "disputed",
    "broken_promises",
    "kept_promises",
    "amount_vs_usual",
    "days_past_due",
    "due_month_sin",
    "due_month_cos",
    "terms",
];

/// Days a customer's recent payments reach back.
const RECENT_DAYS: Day = 90;
/// Days its promise record reaches back.
const PROMISE_DAYS: Day = 365;
/// Days late of one invoice are clipped to this range, so one invoice paid years late does
/// not outweigh the rest.
const CLIP_DAYS: (f64, f64) = (-30.0, 180.0);
/// The late share is smoothed towards the overall share as if by this many invoices.
const PRIOR_WEIGHT: f64 = 2.0;

/// What a customer's record looked like on a day (the parts the features use, in the units a
/// collector reads).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerRecord {
    /// Invoices whose outcome was decided by then: paid, or unpaid more than `late_days`
    /// past due.
    pub decided: u32,
    /// ... of which late.
    pub late: u32,
    /// Invoices paid by then, and their mean days late.
    pub paid: u32,
    pub mean_days_late: f64,
    /// Mean days late of those paid in the last 90 days (`None`: none), and the worst.
    pub recent_mean: Option<f64>,
    pub recent_worst: Option<f64>,
    /// Invoices open then, and of those more than `late_days` past due.
    pub open: u32,
    pub open_late: u32,
    pub open_amount: f64,
    pub credit_limit: Option<f64>,
    pub open_disputes: u32,
    pub broken_promises: u32,
    pub kept_promises: u32,
    /// Mean log amount of the invoices issued by then (`None`: none).
    pub mean_log_amount: Option<f64>,
}

/// One invoice's features on a day, and what they were computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub values: [f64; COUNT],
    /// Days past due on the day.
    pub days_past_due: Day,
    pub disputed: bool,
    /// The invoice's amount over the customer's usual (geometric mean), if it had one.
    pub amount_vs_usual: Option<f64>,
    pub due_month: u32,
    pub terms_days: Day,
}

/// The record of customer `c` on day `s`: `late_days` says what late is.
pub fn record(history: &History, c: usize, s: Day, late_days: i32) -> CustomerRecord {
    let mut r = CustomerRecord::default();
    let (mut sum_late, mut recent_sum, mut recent_n) = (0.0, 0.0, 0u32);
    let (mut log_sum, mut issued) = (0.0, 0u32);
    for inv in history.invoices_of(c) {
        if inv.invoice_date > s {
            break;
        }
        if !inv.exists_on(s) {
            continue;
        }
        let amount = inv.amount_on(s);
        issued += 1;
        log_sum += amount.max(1.0).ln();
        match inv.paid_date.filter(|&p| p <= s) {
            Some(paid) => {
                let days_late = f64::from(paid - inv.due_date).clamp(CLIP_DAYS.0, CLIP_DAYS.1);
                r.decided += 1;
                r.late += u32::from(paid - inv.due_date > late_days);
                r.paid += 1;
                sum_late += days_late;
                if paid > s - RECENT_DAYS {
                    recent_sum += days_late;
                    recent_n += 1;
                    r.recent_worst = Some(r.recent_worst.map_or(days_late, |w| w.max(days_late)));
                }
            }
            None => {
                r.open += 1;
                r.open_amount += amount;
                if s - inv.due_date > late_days {
                    r.decided += 1;
                    r.late += 1;
                    r.open_late += 1;
                }
            }
        }
    }
    if r.paid > 0 {
        r.mean_days_late = sum_late / f64::from(r.paid);
    }
    if recent_n > 0 {
        r.recent_mean = Some(recent_sum / f64::from(recent_n));
    }
    if issued > 0 {
        r.mean_log_amount = Some(log_sum / f64::from(issued));
    }
    r.credit_limit = (history.credit_limits[c].iter())
        .take_while(|l| l.from <= s)
        .last()
        .or_else(|| history.credit_limits[c].first())
        .map(|l| l.limit)
        .filter(|&l| l > 0.0);
    r.open_disputes = (history.disputes[c].iter())
        .filter(|d| d.opened <= s && d.closed.is_none_or(|closed| closed > s))
        .count() as u32;
    for p in &history.promises[c] {
        if p.deadline <= s && p.deadline > s - PROMISE_DAYS {
            match p.kept {
                true => r.kept_promises += 1,
                false => r.broken_promises += 1,
            }
        }
    }
    r
}

/// Invoice `i`'s features on day `s`, from its customer's record that day; `prior` is the
/// overall late share the late share is smoothed towards. The invoice's own age is taken on
/// the later of `s` and its invoice date (an invoice issued after a backtest's cut-off is
/// scored as issued, with its customer's record at the cut-off).
pub fn features(
    history: &History,
    i: usize,
    record: &CustomerRecord,
    s: Day,
    prior: f64,
) -> Features {
    let inv: &Invoice = &history.invoices[i];
    let on = s.max(inv.invoice_date);
    let days_past_due = on - inv.due_date;
    let disputed = (history.disputes[inv.customer as usize].iter())
        .any(|d| d.invoice == Some(i as u32) && d.opened <= on && d.closed.is_none_or(|c| c > on));
    let amount_vs_usual = record
        .mean_log_amount
        .map(|mean| (inv.amount_on(on).max(1.0).ln() - mean).exp());
    let due = crate::dates::date(inv.due_date);
    let month = chrono::Datelike::month0(&due);
    let angle = std::f64::consts::TAU * f64::from(month) / 12.0;
    let terms_days = inv.due_date - inv.invoice_date;
    // The invoice scored is never among them: it is at most `late_days` past due.
    let others_late = record.open_late;
    let credit_used = match record.credit_limit {
        Some(limit) => (record.open_amount / limit).clamp(0.0, 3.0),
        None => 0.0,
    };
    let late_share = (f64::from(record.late) + PRIOR_WEIGHT * prior)
        / (f64::from(record.decided) + PRIOR_WEIGHT);
    let values = [
        late_share,
        f64::from(record.decided).ln_1p(),
        record.mean_days_late / 30.0,
        record
            .recent_mean
            .map_or(0.0, |m| m - record.mean_days_late)
            / 30.0,
        record.recent_worst.unwrap_or(record.mean_days_late) / 30.0,
        f64::from(others_late).ln_1p(),
        credit_used,
        f64::from(record.open_disputes).ln_1p(),
        f64::from(u8::from(disputed)),
        f64::from(record.broken_promises).ln_1p(),
        f64::from(record.kept_promises).ln_1p(),
        amount_vs_usual.map_or(0.0, f64::ln),
        f64::from(days_past_due.clamp(-180, 180)) / 30.0,
        angle.sin(),
        angle.cos(),
        f64::from(terms_days.clamp(0, 365)) / 30.0,
    ];
    Features {
        values,
        days_past_due,
        disputed,
        amount_vs_usual,
        due_month: month + 1,
        terms_days,
    }
}
