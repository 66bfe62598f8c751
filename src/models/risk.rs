//! Training the risk model as of a day, scoring the open invoices, and the backtest.
//!
//! The model learns from snapshots of the past: every two weeks over the year before the
//! training date, each invoice open then (and not yet more than `late_days` past due) with
//! its features of that day, labelled with its outcome as known at the training date. Only
//! invoices whose outcome is decided by then take part (due more than `late_days` before
//! it): counting the early payers of the last weeks but not their late peers would teach the
//! model that recent invoices are paid on time.

use super::baseline::LateShare;
use super::features::{self, COUNT, CustomerRecord};
use super::history::{Day, History, Invoice};
use super::logistic::{Model, ModelError};
use super::metrics;
use super::reasons;

/// Days between training snapshots.
const SNAPSHOT_EVERY: Day = 14;
/// At most this many training rows (sampled evenly): enough for 16 weights, and training
/// stays within seconds however big the state.
const MAX_ROWS: usize = 100_000;

/// What late means, how far back training reaches, and how far before a day the model is
/// trained for its own backtest (the one that decides whether its scores are used).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskOptions {
    pub late_days: i32,
    pub training_days: i32,
    pub backtest_days: i32,
}

/// A model trained as of a day.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Trained {
    pub model: Model,
    /// The overall late share at the training date (the late share is smoothed towards it).
    pub prior: f64,
    /// Training rows, and the distinct invoices among them.
    pub rows: usize,
    pub invoices: usize,
    pub trained_on: Day,
}

/// Whether `inv`'s outcome is decided on day `t`, and whether it was late: paid by then, or
/// unpaid more than `late_days` past due.
pub fn outcome(inv: &Invoice, t: Day, late_days: i32) -> Option<bool> {
    match inv.paid_date.filter(|&p| p <= t) {
        Some(paid) => Some(paid - inv.due_date > late_days),
        None => (t - inv.due_date > late_days).then_some(true),
    }
}

/// The overall late share of the outcomes decided on day `t`.
fn late_share_at(history: &History, t: Day, late_days: i32) -> Option<f64> {
    let (mut late, mut all) = (0u64, 0u64);
    for inv in history.invoices.iter().filter(|i| i.exists_on(t)) {
        if let Some(l) = outcome(inv, t, late_days) {
            late += u64::from(l);
            all += 1;
        }
    }
    (all > 0).then(|| late as f64 / all as f64)
}

/// Train as of day `t` from the history (which may know more: only what was dated by `t`
/// is read).
pub fn train(history: &History, t: Day, options: RiskOptions) -> Result<Trained, ModelError> {
    let set = training_set(history, t, options)?;
    let model = Model::fit(&set.rows, &set.late)?;
    Ok(Trained {
        model,
        prior: set.prior,
        rows: set.rows.len(),
        invoices: set.invoices,
        trained_on: t,
    })
}

/// What a model is trained on at day `t`: a row of features per invoice open at each
/// snapshot, and whether it turned out late.
pub struct TrainingSet {
    pub rows: Vec<[f64; COUNT]>,
    pub late: Vec<bool>,
    /// Distinct invoices among the rows.
    pub invoices: usize,
    /// The overall late share at `t`.
    pub prior: f64,
}

/// The training set of day `t`.
pub fn training_set(
    history: &History,
    t: Day,
    options: RiskOptions,
) -> Result<TrainingSet, ModelError> {
    let l = options.late_days;
    let prior = late_share_at(history, t, l).ok_or(ModelError::NoOutcomes)?;
    let first = history.first_day().ok_or(ModelError::NoOutcomes)?;
    let snapshots: Vec<Day> = (0..)
        .map(|k| t - k * SNAPSHOT_EVERY)
        .take_while(|&s| s >= first && s >= t - options.training_days)
        .collect();
    let eligible = |inv: &Invoice, s: Day| {
        // An invoice voided by the training date has no outcome to learn.
        let voided = inv.gone_on.is_some_and(|g| g <= t);
        inv.open_on(s) && s - inv.due_date <= l && inv.due_date + l < t && !voided
    };
    let total: usize = (snapshots.iter())
        .map(|&s| history.invoices.iter().filter(|i| eligible(i, s)).count())
        .sum();
    // Keep every `stride`-th eligible row, counted per snapshot and customer in order.
    let stride = total.div_ceil(MAX_ROWS).max(1);
    let (mut rows, mut late, mut seen) = (Vec::new(), Vec::new(), 0usize);
    let mut invoices = std::collections::HashSet::new();
    for c in 0..history.customers.len() {
        let range = history.by_customer[c].clone();
        for &s in &snapshots {
            let mut record: Option<CustomerRecord> = None;
            for i in range.clone() {
                let inv = &history.invoices[i];
                if inv.invoice_date > s {
                    break;
                }
                if !eligible(inv, s) {
                    continue;
                }
                seen += 1;
                if seen % stride != 0 {
                    continue;
                }
                let r = record.get_or_insert_with(|| features::record(history, c, s, l));
                let f = features::features(history, i, r, s, prior);
                rows.push(f.values);
                late.push(outcome(inv, t, l).unwrap_or(true));
                invoices.insert(i);
            }
        }
    }
    Ok(TrainingSet {
        rows,
        late,
        invoices: invoices.len(),
        prior,
    })
}

/// One invoice's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Index into [`History::invoices`].
    pub invoice: usize,
    pub probability: f64,
    pub reasons: Vec<String>,
}

/// Score invoice `i` on day `s` with its customer's record that day. An invoice already more
/// than `late_days` past due is late whatever happens: probability 1.
fn score_one(
    trained: &Trained,
    history: &History,
    i: usize,
    record: &CustomerRecord,
    s: Day,
    late_days: i32,
) -> Score {
    let f = features::features(history, i, record, s, trained.prior);
    if f.days_past_due > late_days {
        return Score {
            invoice: i,
            probability: 1.0,
            reasons: vec![reasons::already_late(f.days_past_due)],
        };
    }
    let parts = trained.model.parts(&f.values);
    Score {
        invoice: i,
        probability: trained.model.probability(&f.values),
        reasons: reasons::reasons(&parts, &f, record, late_days),
    }
}

/// The scores of every invoice open on day `s`.
pub fn score_open(trained: &Trained, history: &History, s: Day, late_days: i32) -> Vec<Score> {
    let mut out = Vec::new();
    for c in 0..history.customers.len() {
        let range = history.by_customer[c].clone();
        if !range.clone().any(|i| history.invoices[i].open_on(s)) {
            continue;
        }
        let record = features::record(history, c, s, late_days);
        for i in range.filter(|&i| history.invoices[i].open_on(s)) {
            out.push(score_one(trained, history, i, &record, s, late_days));
        }
    }
    out
}

/// The scores of every invoice open on day `s` when no risk model could be trained (`why`):
/// the baseline's, each customer's late share of the outcomes decided by then (the overall
/// share for a customer with none; an even chance without any outcome yet), so that the
/// worklist still ranks by expected amount at risk. Each score says so in its reasons.
pub fn score_open_baseline(history: &History, s: Day, late_days: i32, why: &str) -> Vec<Score> {
    let share = late_share(history, s, late_days);
    score_open_by_share(history, share.as_ref(), s, late_days, why)
}

/// The baseline's late shares learned from `history`'s outcomes decided by day `s`.
pub fn late_share(history: &History, s: Day, late_days: i32) -> Option<LateShare> {
    let decided = (history.invoices.iter())
        .filter(|i| i.exists_on(s))
        .filter_map(|i| {
            let customer = history.customers[i.customer as usize].as_str();
            Some((customer, outcome(i, s, late_days)?))
        });
    LateShare::learn(decided)
}

/// [`score_open_baseline`] with late shares learned already (a customer's own share is
/// learned from its own outcomes; `share`'s overall one may be everyone's).
pub fn score_open_by_share(
    history: &History,
    share: Option<&LateShare>,
    s: Day,
    late_days: i32,
    why: &str,
) -> Vec<Score> {
    let mut out = Vec::new();
    for c in 0..history.customers.len() {
        let customer = history.customers[c].as_str();
        for i in history.by_customer[c].clone() {
            let inv = &history.invoices[i];
            if !inv.open_on(s) {
                continue;
            }
            let days_past_due = s - inv.due_date;
            if days_past_due > late_days {
                out.push(Score {
                    invoice: i,
                    probability: 1.0,
                    reasons: vec![reasons::already_late(days_past_due)],
                });
                continue;
            }
            let probability = share.map_or(0.5, |l| l.probability(customer));
            out.push(Score {
                invoice: i,
                probability,
                reasons: vec![format!(
                    "baseline: the customer's share of late invoices, {:.0} % (no risk model: {why})",
                    100.0 * probability
                )],
            });
        }
    }
    out
}

/// The fewest late (and on-time) test invoices an AUC is computed over.
pub const MIN_CASES_FOR_AUC: usize = 20;

/// A backtest's result (the JSON keys of `arstream model report`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Backtest {
    pub as_of: chrono::NaiveDate,
    pub cutoff: chrono::NaiveDate,
    pub late_days: i32,
    /// None: not measurable, with fewer than [`MIN_CASES_FOR_AUC`] late or on-time test
    /// invoices (an AUC over a handful of late invoices is noise, not a figure).
    pub auc: Option<f64>,
    pub baseline_auc: Option<f64>,
    /// Test invoices that were late, and on time.
    pub late_invoices: usize,
    pub on_time_invoices: usize,
    pub brier: f64,
    pub baseline_brier: f64,
    /// Distinct invoices the model learned from, and its training rows (an invoice counts
    /// once per snapshot it was open in).
    pub train_invoices: usize,
    pub train_rows: usize,
    pub test_invoices: usize,
    /// The share of test invoices that were late.
    pub test_late_share: f64,
}

/// Why a backtest could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(
        "no invoice open at the cut-off {cutoff} or issued after it has an outcome decided by {as_of} (due more than {late_days} days before it): move --as-of later or the cut-off earlier"
    )]
    NoTest {
        cutoff: chrono::NaiveDate,
        as_of: chrono::NaiveDate,
        late_days: i32,
    },
}

/// A backtest's test set scored: per test invoice, the model's and the baseline's
/// probabilities and whether it was late.
pub struct Scored {
    pub model: Vec<f64>,
    pub baseline: Vec<f64>,
    pub late: Vec<bool>,
    pub trained: Trained,
}

/// Train as of `cutoff`, and score the invoices open at the cut-off (not yet more than
/// `late_days` past due: those are late already) or issued after it, whose outcome is decided
/// by `as_of`, with their customers' records at the cut-off; beside the baseline (the
/// customer's late share at the cut-off).
pub fn backtest_scores(
    history: &History,
    as_of: Day,
    cutoff: Day,
    options: RiskOptions,
) -> Result<Scored, BacktestError> {
    let l = options.late_days;
    let trained = train(history, cutoff, options)?;
    let decided_at_cutoff = (history.invoices.iter())
        .filter(|i| i.exists_on(cutoff))
        .filter_map(|i| {
            Some((
                history.customers[i.customer as usize].as_str(),
                outcome(i, cutoff, l)?,
            ))
        });
    let baseline = LateShare::learn(decided_at_cutoff).ok_or(ModelError::NoOutcomes)?;
    let (mut model_p, mut baseline_p, mut late) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..history.customers.len() {
        let record = features::record(history, c, cutoff, l);
        for i in history.by_customer[c].clone() {
            let inv = &history.invoices[i];
            let open_then = inv.open_on(cutoff) && cutoff - inv.due_date <= l;
            let issued_after = inv.invoice_date > cutoff && inv.invoice_date <= as_of;
            // A void invoice has no outcome to predict.
            let voided = inv.gone_on.is_some_and(|g| g <= as_of);
            if !(open_then || issued_after) || inv.due_date + l >= as_of || voided {
                continue;
            }
            let score = score_one(&trained, history, i, &record, cutoff, l);
            model_p.push(score.probability);
            baseline_p.push(baseline.probability(&history.customers[c]));
            late.push(outcome(inv, as_of, l).unwrap_or(true));
        }
    }
    if late.is_empty() {
        let date = crate::dates::date;
        return Err(BacktestError::NoTest {
            cutoff: date(cutoff),
            as_of: date(as_of),
            late_days: l,
        });
    }
    Ok(Scored {
        model: model_p,
        baseline: baseline_p,
        late,
        trained,
    })
}

/// [`backtest_scores`] measured: AUC (where there are enough late and on-time invoices) and
/// Brier score, beside the baseline's.
pub fn backtest(
    history: &History,
    as_of: Day,
    cutoff: Day,
    options: RiskOptions,
) -> Result<Backtest, BacktestError> {
    let scored = backtest_scores(history, as_of, cutoff, options)?;
    let late = &scored.late;
    let date = crate::dates::date;
    let late_invoices = late.iter().filter(|&&l| l).count();
    let on_time_invoices = late.len() - late_invoices;
    let measurable = late_invoices.min(on_time_invoices) >= MIN_CASES_FOR_AUC;
    let auc = |p: &[f64]| metrics::roc_auc(p, late).filter(|_| measurable);
    let brier = |p: &[f64]| metrics::brier(p, late).expect("as many scores as outcomes");
    Ok(Backtest {
        as_of: date(as_of),
        cutoff: date(cutoff),
        late_days: options.late_days,
        auc: auc(&scored.model),
        baseline_auc: auc(&scored.baseline),
        late_invoices,
        on_time_invoices,
        brier: brier(&scored.model),
        baseline_brier: brier(&scored.baseline),
        train_invoices: scored.trained.invoices,
        train_rows: scored.trained.rows,
        test_invoices: late.len(),
        test_late_share: late_invoices as f64 / late.len() as f64,
    })
}

/// Whether the model should not be used on day `s`: its own backtest there (trained
/// `backtest_days` before) measured an AUC no better than the baseline's. Gives both AUCs
/// when so; none when it wins, or when the backtest cannot tell (too few cases, no test set).
pub fn loses_to_baseline(history: &History, s: Day, options: RiskOptions) -> Option<(f64, f64)> {
    let b = backtest(history, s, s - options.backtest_days, options).ok()?;
    let (model, baseline) = (b.auc?, b.baseline_auc?);
    (model <= baseline).then_some((model, baseline))
}

/// The feature names and the trained weights, strongest first (for the report).
pub fn weights(trained: &Trained) -> Vec<(&'static str, f64)> {
    let mut out: Vec<(&'static str, f64)> = (features::NAMES.iter().copied())
        .zip(trained.model.weights().iter().copied())
        .collect();
    out.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    out
}

const _: () = assert!(COUNT == features::NAMES.len());

/// What `invoice_scores.scored_by` says of scores the trained model made (else
/// `baseline: <why>`).
pub const SCORED_BY_MODEL: &str = "risk model";

/// The `invoice_scores` table (see [`crate::engine::derived`]) of `scores`, made on day `s`
/// by `scored_by`.
pub fn scores_batch(
    history: &History,
    scores: &[Score],
    s: Day,
    late_days: i32,
    scored_by: &str,
) -> Result<arrow::array::RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{ArrayRef, Date32Array, Float64Array, Int32Array, StringArray};
    use std::sync::Arc;
    let schema = crate::engine::derived::schema(crate::engine::derived::INVOICE_SCORES)
        .expect("invoice_scores has a schema");
    let invoice = |s: &Score| &history.invoices[s.invoice];
    let n = scores.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            scores.iter().map(|s| invoice(s).invoice_id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values((scores.iter()).map(|s| {
            history.customers[invoice(s).customer as usize].as_str()
        }))),
        Arc::new(Float64Array::from_iter_values(
            scores.iter().map(|s| s.probability),
        )),
        Arc::new(StringArray::from_iter_values(
            scores.iter().map(|s| s.reasons.join("; ")),
        )),
        Arc::new(Date32Array::from(vec![s; n])),
        Arc::new(Int32Array::from(vec![late_days; n])),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            scored_by, n,
        ))),
    ];
    arrow::array::RecordBatch::try_new(schema, columns)
}
