//! A score's reasons, in a collector's words: the features that push it up most, each said
//! with the customer's own numbers.

use super::features::{COUNT, CustomerRecord, Features, NAMES};

/// At most this many reasons per score.
pub const TOP: usize = 3;
/// A part smaller than this (log-odds) is no reason.
const MIN_PART: f64 = 0.05;

/// The reasons of a score from its features' `parts` (log-odds, see
/// [`super::logistic::Model::parts`]), biggest first.
pub fn reasons(
    parts: &[f64; COUNT],
    features: &Features,
    record: &CustomerRecord,
    late_days: i32,
) -> Vec<String> {
    let mut order: Vec<usize> = (0..COUNT).filter(|&j| parts[j] > MIN_PART).collect();
    order.sort_by(|&a, &b| parts[b].total_cmp(&parts[a]));
    let mut out: Vec<String> = Vec::new();
    for j in order {
        if let Some(reason) = say(NAMES[j], features, record, late_days)
            && !out.contains(&reason)
        {
            out.push(reason);
        }
        if out.len() == TOP {
            break;
        }
    }
    out
}

/// The reason of an invoice already more than `late_days` past due: it is late by now.
pub fn already_late(days_past_due: i32) -> String {
    format!("already {} past due", days(days_past_due))
}

/// `1 day`, `5 days`.
fn days(n: i32) -> String {
    match n {
        1 | -1 => format!("{n} day"),
        _ => format!("{n} days"),
    }
}

fn say(feature: &str, f: &Features, r: &CustomerRecord, late_days: i32) -> Option<String> {
    let mean = |d: f64| days(d.round() as i32);
    Some(match feature {
        "late_share" | "settled_invoices" if r.decided == 0 => "no payment history yet".into(),
        "late_share" => format!(
            "{} of {} invoices paid over {late_days} days late",
            r.late, r.decided
        ),
        "settled_invoices" => format!("only {} invoices settled so far", r.decided),
        "mean_days_late" if r.paid > 0 => {
            format!("pays {} after due on average", mean(r.mean_days_late))
        }
        "recent_trend" => format!(
            "paying later lately ({} late in the last 90 days vs {} usually)",
            mean(r.recent_mean?),
            mean(r.mean_days_late)
        ),
        "worst_recent" => format!("paid one invoice {} late recently", mean(r.recent_worst?)),
        "other_invoices_late" => format!(
            "{} other invoices over {late_days} days past due",
            r.open_late
        ),
        "credit_used" => format!(
            "open balance at {:.0}% of credit limit",
            100.0 * r.open_amount / r.credit_limit?
        ),
        "open_disputes" => format!("{} open disputes", r.open_disputes),
        "disputed" if f.disputed => "invoice in dispute".into(),
        "broken_promises" => format!("broke {} promises to pay this year", r.broken_promises),
        "kept_promises" => format!(
            "needed {} promises to pay this year (kept)",
            r.kept_promises
        ),
        "amount_vs_usual" => format!("{:.1}x its usual invoice amount", f.amount_vs_usual?),
        "days_past_due" if f.days_past_due > 0 => format!("{} past due", days(f.days_past_due)),
        "days_past_due" if f.days_past_due == 0 => "due today".into(),
        "days_past_due" => format!("due in {}", days(-f.days_past_due)),
        "due_month_sin" | "due_month_cos" => format!("due in {}", month_name(f.due_month)),
        "terms" => format!("{}-day payment terms", f.terms_days),
        _ => return None,
    })
}

fn month_name(month: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES[(month.clamp(1, 12) - 1) as usize]
}
