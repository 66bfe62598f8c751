//! A policy run over history, day by day, without sending: who would have been contacted
//! when, by stage and channel, what suppression held back, and how many of the invoices
//! written about were then paid within 7 and 30 days.
//!
//! Each day's candidates are the views at that as-of date over the state as it is now (the
//! views read business dates, so a payment recorded late counts from its date). A rule that
//! reads the risk segment is scored each day by the risk model, retrained every 7 days from
//! what was known by then (`docs/models.md`).

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Date32Type;
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::ledger::{Ledger, Message, Record};
use super::plan::{items, message_id, plan};
use super::policy::Slot;
use super::{Outreach, OutreachError, candidates};
use crate::dates::days;
use crate::engine::Engine;
use crate::engine::params::KpiParams;
use crate::models::history::History;
use crate::models::risk::{self, RiskOptions};

/// One message the policy would have sent.
#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub day: NaiveDate,
    pub customer_id: String,
    pub audience: String,
    pub rule: String,
    pub stage: String,
    pub channel: String,
    pub invoices: Vec<String>,
}

/// Contacts of one stage and channel, and what followed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageSummary {
    pub rule: String,
    pub stage: String,
    pub channel: String,
    pub messages: usize,
    /// Invoices written about (an invoice in two messages counts twice).
    pub invoices: usize,
    /// Of those, paid within 7 and 30 days of the message.
    pub paid_within_7_days: usize,
    pub paid_within_30_days: usize,
}

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The as-of date payments are known to; a message within 30 days of it has not had its
    /// whole 30 days yet.
    pub known_to: NaiveDate,
    pub stages: Vec<StageSummary>,
    /// Entries held back, per reason.
    pub skipped: BTreeMap<String, usize>,
    pub contacts: Vec<Contact>,
}

/// Run `outreach`'s policy on every day from `from` to `to` over `engine` (whose parameters
/// are `params`; they are put back after).
pub async fn replay(
    outreach: &Outreach,
    engine: &Engine,
    params: &KpiParams,
    from: NaiveDate,
    to: NaiveDate,
    risk_options: RiskOptions,
) -> Result<Replay, OutreachError> {
    let policy = &outreach.policy;
    let query = outreach.prepare(engine).await?;
    // Scores need the history; it is read once, at the latest date, and every day's model
    // learns only from what was known by that day.
    let history = match engine.reads_derived(&query) {
        true => Some(History::read(engine).await?),
        false => None,
    };
    let paid = paid_dates(engine).await?;
    let mut ledger = Ledger::in_memory();
    let mut contacts = Vec::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut model: Option<(NaiveDate, Option<risk::Trained>)> = None;
    let mut day = from;
    while day <= to {
        // Nothing leaves on a day the send window never opens (a Sunday under a Monday to
        // Saturday window): that day's messages go out on the next day it does.
        if let Some(window) = &policy.window
            && !window.days.contains(&chrono::Datelike::weekday(&day))
        {
            day = day.succ_opt().expect("a day after");
            continue;
        }
        let mut at = params.clone();
        at.as_of = day;
        engine.set_params(&at).await?;
        if let Some(history) = &history {
            // Retrained weekly, each time from what was known by then.
            if model
                .as_ref()
                .is_none_or(|(trained_on, _)| (day - *trained_on).num_days() >= 7)
            {
                model = Some((day, risk::train(history, days(day), risk_options).ok()));
            }
            let trained = model.as_ref().and_then(|(_, t)| t.as_ref());
            put_scores(engine, history, trained, day, risk_options.late_days)?;
        }
        let batches = engine.query(&query).await?;
        let rows = candidates::from_batches(&batches, policy.rules.len())?;
        let now = Utc::now();
        let planned = plan(policy, &rows, &ledger, day, now, &Default::default());
        for skip in &planned.skips {
            *skipped.entry(skip.reason.clone()).or_default() += 1;
        }
        let mut records: Vec<Record> = planned.skips.into_iter().map(Record::Skipped).collect();
        for draft in &planned.drafts {
            let (r, s, _) = draft.entries[0];
            let stage = &policy.rules[r].stages[s];
            let items = items(policy, &rows, draft);
            let mut invoices: Vec<String> = items.iter().map(|i| i.invoice_id.clone()).collect();
            invoices.dedup();
            contacts.push(Contact {
                day,
                customer_id: draft.customer_id.clone(),
                audience: draft.audience.name().into(),
                rule: policy.rules[r].name.clone(),
                stage: stage.name.clone(),
                channel: stage.channel.name().into(),
                invoices,
            });
            let id = message_id(day, &draft.customer_id, Slot::of(stage), &policy.sender);
            records.push(Record::Pending(Message {
                id,
                day,
                customer_id: draft.customer_id.clone(),
                audience: draft.audience,
                channel: stage.channel,
                rule: policy.rules[r].name.clone(),
                stage: stage.name.clone(),
                to: String::new(),
                language: String::new(),
                subject: String::new(),
                body: String::new(),
                items,
                recorded_at: now,
                via: None,
            }));
        }
        ledger.append(records, false)?;
        day = day.succ_opt().expect("a day after");
    }
    engine.set_params(params).await?;

    let mut stages: Vec<StageSummary> = Vec::new();
    for contact in &contacts {
        let i = match (stages.iter()).position(|s| {
            s.rule == contact.rule && s.stage == contact.stage && s.channel == contact.channel
        }) {
            Some(i) => i,
            None => {
                stages.push(StageSummary {
                    rule: contact.rule.clone(),
                    stage: contact.stage.clone(),
                    channel: contact.channel.clone(),
                    ..StageSummary::default()
                });
                stages.len() - 1
            }
        };
        let summary = &mut stages[i];
        summary.messages += 1;
        for invoice in &contact.invoices {
            summary.invoices += 1;
            if let Some(&p) = paid.get(invoice.as_str()) {
                let after = (p - contact.day).num_days();
                summary.paid_within_7_days += usize::from((0..=7).contains(&after));
                summary.paid_within_30_days += usize::from((0..=30).contains(&after));
            }
        }
    }
    let order = |s: &StageSummary| {
        let r = policy
            .rules
            .iter()
            .position(|r| r.name == s.rule)
            .unwrap_or(usize::MAX);
        let st = (policy.rules.get(r).map(|r| &r.stages))
            .and_then(|st| st.iter().position(|x| x.name == s.stage))
            .unwrap_or(usize::MAX);
        (r, st, s.channel.clone())
    };
    stages.sort_by_key(order);
    Ok(Replay {
        from,
        to,
        known_to: params.as_of,
        stages,
        skipped,
        contacts,
    })
}

/// Each paid invoice's paid date as known at the engine's as-of date.
async fn paid_dates(engine: &Engine) -> Result<HashMap<String, NaiveDate>, OutreachError> {
    let batches = engine
        .query("SELECT invoice_id, paid_date FROM invoice_outcomes WHERE paid_date IS NOT NULL")
        .await?;
    let mut out = HashMap::new();
    for batch in &batches {
        let ids = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| OutreachError::View(format!("invoice_outcomes.invoice_id: {e}")))?;
        let ids = ids.as_string::<i32>();
        let dates = batch.column(1).as_primitive::<Date32Type>();
        for i in 0..batch.num_rows() {
            if !dates.is_null(i) {
                out.insert(ids.value(i).to_string(), crate::dates::date(dates.value(i)));
            }
        }
    }
    Ok(out)
}

/// The invoices open on `day` scored by `trained`, served as `invoice_scores`.
fn put_scores(
    engine: &Engine,
    history: &History,
    trained: Option<&risk::Trained>,
    day: NaiveDate,
    late_days: i32,
) -> Result<(), OutreachError> {
    let d = days(day);
    let batch = match trained {
        Some(trained) => {
            let scores = risk::score_open(trained, history, d, late_days);
            risk::scores_batch(history, &scores, d, late_days, risk::SCORED_BY_MODEL)
                .map_err(|e| OutreachError::View(e.to_string()))?
        }
        // Too early for the model (no outcome yet): no segment that day.
        None => arrow::array::RecordBatch::new_empty(
            crate::engine::derived::schema(crate::engine::derived::INVOICE_SCORES)
                .expect("a schema"),
        ),
    };
    engine.put_derived(crate::engine::derived::INVOICE_SCORES, batch)?;
    Ok(())
}
