//! A day's sending: the messages left pending by an earlier send, then the day's new ones,
//! each recorded in the ledger before it goes out and marked after.
//!
//! A message left pending is decided again before anything goes out ([`Sender::redecide`]):
//! one known not to have been delivered (a server was down) is dropped and its entries are
//! planned anew with what is known today (paid, disputed, promised or opted-out invoices are
//! left out, the day's one message a customer counts it); one that may have been delivered
//! (a crash in mid-send) goes out again as it was, with the same id, while all its invoices
//! are still due, else it is dropped; one made for a server that is not configured now keeps
//! waiting for it. A channel whose messages went to a server never falls back to the file
//! outbox.
//!
//! A transient failure is retried with backoff (at least the server's `Retry-After`); when
//! the retries run out the message waits for the next send, and so do the rest of that
//! channel's messages (the server is down: no point knocking on it for each). A server that
//! refuses the sender (a configuration to fix) stops its channel the same way, and the send
//! says so. A message handed over whole whose answer was lost is tried once more with the
//! same id, then never again. A permanent failure is recorded and the others go on.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use backon::BackoffBuilder;
use chrono::{DateTime, NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use super::OutreachError;
use super::candidates::Candidate;
use super::channels::{Channels, Failure, Via};
use super::ledger::{Ledger, Message, PolicyShape, Record, Status};
use super::plan::{Composed, Draft, Held, Plan, compose, plan};
use super::policy::{Channel, Policy};
use super::render::Templates;

/// How many outbox messages are written and recorded between two flushes of the ledger to
/// disk: writing one again after a crash replaces its own file, so they need not be flushed
/// one by one (and flushing now and then keeps the file system's write-back from piling up to
/// the end).
const OUTBOX_BATCH: usize = 2_000;

/// What a send did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SendReport {
    pub day: Option<NaiveDate>,
    pub sent: usize,
    /// Of `sent`: messages left pending by an earlier send, sent as they were made.
    pub resent: usize,
    /// Messages left pending by an earlier send and decided again (their entries planned
    /// anew with what is known today).
    pub redecided: usize,
    pub failed: usize,
    /// Recorded and waiting for a server to come back (or to be configured).
    pub waiting: usize,
    pub skipped: usize,
    /// Due for customers who had their message of the day already: tomorrow.
    pub deferred: usize,
    /// Sent per channel and where to (`email` → `smtp`, …).
    pub by_channel: BTreeMap<(String, String), usize>,
    /// The send window was closed: nothing was recorded or sent.
    pub window_closed: Option<String>,
    /// When the send window opens next, when it was closed.
    pub opens_at: Option<DateTime<Utc>>,
    /// Stopped (a signal) before all messages went out; the rest go out next time.
    pub stopped: bool,
    /// Channels whose server refused the sender (a configuration to fix), with its answer.
    pub refused: BTreeMap<String, String>,
    /// The longest `Retry-After` a server asked for.
    pub retry_after: Option<Duration>,
    /// How the policy changed since the last send, in words.
    pub policy_changes: Vec<String>,
}

/// What a send needs besides the ledger.
pub struct Sender<'a> {
    pub policy: &'a Policy,
    pub templates: &'a Templates,
    pub channels: &'a Channels,
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Sent,
    Failed,
    Waiting,
    /// Stopped by a signal while it was in flight: left pending, as a crash would.
    Stopped,
}

/// The channels that stopped during a send, and why.
#[derive(Default)]
struct Down {
    reasons: HashMap<Channel, String>,
}

impl Sender<'_> {
    /// Send `day`'s messages over `candidates` (the rows of [`super::candidates::query`] at
    /// `day`), recording each in `ledger`. `now` is the wall clock the send window is read at;
    /// `ignore_window` sends outside it.
    pub async fn send(
        &self,
        ledger: &mut Ledger,
        candidates: &[Candidate],
        day: NaiveDate,
        now: DateTime<Utc>,
        ignore_window: bool,
        cancel: Option<&CancellationToken>,
    ) -> Result<SendReport, OutreachError> {
        let mut report = SendReport {
            day: Some(day),
            ..SendReport::default()
        };
        if let Some(window) = &self.policy.window
            && !ignore_window
            && !window.is_open(now)
        {
            report.opens_at = window.next_open(now);
            let next = report
                .opens_at
                .map(|t| {
                    format!(
                        "; it opens next at {}",
                        t.with_timezone(&window.timezone)
                            .format("%Y-%m-%d %H:%M %Z")
                    )
                })
                .unwrap_or_default();
            report.window_closed = Some(format!(
                "outside the send window ({}){next}",
                window.describe()
            ));
            return Ok(report);
        }
        report.policy_changes = self.record_policy(ledger, now)?;

        let (carried, planned) = self.decide(ledger, candidates, (day, now), &mut report)?;
        report.deferred = planned.deferred;
        report.skipped += planned.skips.len();
        let skips = planned.skips.into_iter().map(Record::Skipped).collect();
        ledger.append(skips, true)?;

        let mut down = Down::default();
        let mut unsynced = 0usize;
        for message in carried {
            if stopped(cancel) {
                report.stopped = true;
                break;
            }
            let made_for = message.via.as_deref().and_then(Via::of);
            let via = made_for.unwrap_or_else(|| self.route(ledger, message.channel));
            let outcome = self
                .deliver(
                    ledger,
                    &message,
                    via,
                    false,
                    &mut down,
                    &mut unsynced,
                    cancel,
                    &mut report,
                )
                .await?;
            if outcome == Outcome::Sent {
                report.resent += 1;
            }
            self.count(&message, via, outcome, &mut report);
        }
        // Messages for a server go one by one; the outbox's are written a batch at a time on
        // every core.
        let (boxed, served): (Vec<&Draft>, Vec<&Draft>) = (planned.drafts.iter())
            .partition(|d| self.route(ledger, d.channel(self.policy)) == Via::Outbox);
        for draft in served {
            if report.stopped || stopped(cancel) {
                report.stopped = true;
                break;
            }
            let via = self.route(ledger, draft.channel(self.policy));
            let composed = self.compose(candidates, draft, (day, now), via);
            let message = match composed.problem {
                None => composed.message,
                Some(reason) => {
                    ledger.append(unfit(composed.message, reason, now), false)?;
                    report.failed += 1;
                    continue;
                }
            };
            let outcome = self
                .deliver(
                    ledger,
                    &message,
                    via,
                    true,
                    &mut down,
                    &mut unsynced,
                    cancel,
                    &mut report,
                )
                .await?;
            self.count(&message, via, outcome, &mut report);
        }
        for batch in boxed.chunks(OUTBOX_BATCH) {
            if report.stopped || stopped(cancel) {
                report.stopped = true;
                break;
            }
            self.to_outbox(
                ledger,
                candidates,
                batch,
                (day, now),
                &mut down,
                &mut report,
            )?;
        }
        ledger.sync()?;
        Ok(report)
    }

    fn compose(
        &self,
        candidates: &[Candidate],
        draft: &Draft,
        when: (NaiveDate, DateTime<Utc>),
        via: Via,
    ) -> Composed {
        compose(
            self.policy,
            self.templates,
            candidates,
            draft,
            when,
            via.name(),
        )
    }

    /// The day's decisions as a send makes them: each message left pending decided again
    /// (recorded in `ledger`; a ledger read only for a preview takes it in memory), then the
    /// plan of the day's new messages. Returns the messages to send again as they were made,
    /// and the plan.
    pub fn decide(
        &self,
        ledger: &mut Ledger,
        candidates: &[Candidate],
        (day, now): (NaiveDate, DateTime<Utc>),
        report: &mut SendReport,
    ) -> Result<(Vec<Message>, Plan), OutreachError> {
        let (carried, held) = self.redecide(ledger, candidates, day, report)?;
        Ok((
            carried,
            plan(self.policy, candidates, ledger, day, now, &held),
        ))
    }

    /// Where `channel`'s messages go: its server, the outbox when it has none, but never the
    /// outbox for a channel whose messages went to a server before (they wait for it).
    pub fn route(&self, ledger: &Ledger, channel: Channel) -> Via {
        match (
            self.channels.via(channel),
            ledger.route(channel).and_then(Via::of),
        ) {
            (Via::Outbox, Some(server)) => server,
            (via, _) => via,
        }
    }

    /// Record the policy's shape when it is not the last one recorded; what changed since,
    /// in words (nothing on a first send).
    fn record_policy(
        &self,
        ledger: &mut Ledger,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, OutreachError> {
        let shape = PolicyShape::of(self.policy);
        let changes = match ledger.policy() {
            Some((last, _)) if *last == shape => return Ok(Vec::new()),
            Some((last, _)) => shape.changes_since(last),
            None => Vec::new(),
        };
        ledger.append(vec![Record::Policy { shape, at: now }], true)?;
        Ok(changes)
    }

    fn count(&self, message: &Message, via: Via, outcome: Outcome, report: &mut SendReport) {
        match outcome {
            Outcome::Sent => {
                report.sent += 1;
                let key = (message.channel.name().to_string(), via.name().to_string());
                *report.by_channel.entry(key).or_default() += 1;
            }
            Outcome::Failed => report.failed += 1,
            Outcome::Waiting => report.waiting += 1,
            Outcome::Stopped => report.stopped = true,
        }
    }

    /// Decide again each message left pending, before the day's plan: the messages to send
    /// again as they were made (they may have been delivered: a crash), and the customers'
    /// slots that have a message going out or waiting today (they get no other today).
    fn redecide(
        &self,
        ledger: &mut Ledger,
        candidates: &[Candidate],
        day: NaiveDate,
        report: &mut SendReport,
    ) -> Result<(Vec<Message>, Held), OutreachError> {
        let by_invoice: HashMap<&str, &Candidate> = candidates
            .iter()
            .map(|c| (c.invoice_id.as_str(), c))
            .collect();
        let mut carried = Vec::new();
        let mut held = Held::new();
        let mut records = Vec::new();
        let at = Utc::now();
        for entry in ledger.pending_entries() {
            let message = entry.message;
            let made_for = message.via.as_deref().and_then(Via::of);
            let configured = self.channels.via(message.channel);
            if let Some(server) = made_for.filter(|v| *v != Via::Outbox && *v != configured) {
                records.push(Record::Waiting {
                    id: message.id.clone(),
                    reason: unconfigured(message.channel, server),
                    at,
                });
                held.insert((message.customer_id.clone(), message.slot()));
                report.waiting += 1;
                continue;
            }
            if entry.status.undelivered() {
                records.push(Record::Dropped {
                    id: message.id.clone(),
                    reason: format!(
                        "not delivered ({}); decided again on {day} with what is known then",
                        waiting_reason(&entry.status)
                    ),
                    at,
                });
                report.redecided += 1;
                continue;
            }
            // It may have been delivered (a crash in mid-send): again as it was while every
            // invoice in it is still due.
            let gone: Vec<String> = (message.items.iter())
                .filter_map(|item| match by_invoice.get(item.invoice_id.as_str()) {
                    None => Some(format!("{} no longer due", item.invoice_id)),
                    Some(c) => (c.suppressed.as_ref())
                        .map(|r| format!("{} {r}", item.invoice_id))
                        .or_else(|| {
                            (c.open_amount <= 0.0)
                                .then(|| format!("{} no longer open", item.invoice_id))
                        }),
                })
                .collect();
            if gone.is_empty() {
                held.insert((message.customer_id.clone(), message.slot()));
                carried.push(message);
            } else {
                records.push(Record::Dropped {
                    id: message.id.clone(),
                    reason: format!(
                        "changed by the time of sending ({}); decided again on {day}",
                        gone.join(", ")
                    ),
                    at,
                });
                report.redecided += 1;
            }
        }
        ledger.append(records, true)?;
        Ok((carried, held))
    }

    /// Record `message` (when `new`), deliver it by `via` with retries, mark the outcome.
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        ledger: &mut Ledger,
        message: &Message,
        via: Via,
        new: bool,
        down: &mut Down,
        unsynced: &mut usize,
        cancel: Option<&CancellationToken>,
        report: &mut SendReport,
    ) -> Result<Outcome, OutreachError> {
        let outbox = via == Via::Outbox;
        if new {
            // Durable before it leaves, unless it only goes to the outbox.
            ledger.append(vec![Record::Pending(message.clone())], !outbox)?;
        }
        if let Some(reason) = down.reasons.get(&message.channel) {
            ledger.append(vec![not_tried(message, reason)], !outbox)?;
            return Ok(Outcome::Waiting);
        }
        if via != self.channels.via(message.channel) {
            let reason = unconfigured(message.channel, via);
            ledger.append(vec![waiting(message, &reason)], true)?;
            return Ok(Outcome::Waiting);
        }
        let retry = self.policy.retry;
        let mut waits = backon::ExponentialBuilder::new()
            .with_min_delay(retry.first_wait)
            .with_max_delay(retry.max_wait)
            .with_jitter()
            .with_max_times(retry.attempts.saturating_sub(1) as usize)
            .build();
        let mut answer_lost = false;
        let outcome = loop {
            let attempt = self.channels.deliver(message, via);
            let result = match cancel {
                Some(cancel) => tokio::select! {
                    result = attempt => result,
                    _ = cancel.cancelled() => return Ok(Outcome::Stopped),
                },
                None => attempt.await,
            };
            match result {
                Ok(via) => break Ok(via),
                Err(Failure::Unconfirmed(reason)) if !answer_lost => {
                    // Once more, the same bytes under the same id: a receiver that has it
                    // drops the copy.
                    tracing::warn!(id = %message.id, "{reason}; trying once more");
                    answer_lost = true;
                }
                Err(Failure::Transient(reason, after)) => {
                    if let Some(after) = after {
                        report.retry_after = report.retry_after.max(Some(after));
                    }
                    let wait = match waits.next() {
                        Some(wait) if after.is_none_or(|a| a <= retry.max_wait) => {
                            wait.max(after.unwrap_or_default())
                        }
                        _ => break Err(Failure::Transient(reason, after)),
                    };
                    tracing::debug!(id = %message.id, %reason, ?wait, "delivery failed; retrying");
                    if let Some(cancel) = cancel {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = cancel.cancelled() => {
                                ledger.append(vec![waiting(message, &reason)], true)?;
                                return Ok(Outcome::Stopped);
                            }
                        }
                    } else {
                        tokio::time::sleep(wait).await;
                    }
                }
                Err(other) => break Err(other),
            }
        };
        let (record, result) = outcome_record(message, outcome, down, report);
        *unsynced += 1;
        let durable = !outbox || *unsynced >= OUTBOX_BATCH;
        if durable {
            *unsynced = 0;
        }
        ledger.append(vec![record], durable)?;
        Ok(result)
    }
}

/// Why a message made for `server` waits: its channel has no server configured now.
fn unconfigured(channel: Channel, server: Via) -> String {
    let variable = match channel {
        Channel::Email => "ARSTREAM_SMTP_URL",
        Channel::Webhook => "ARSTREAM_WEBHOOK_URL or [channels.webhook] url",
        Channel::Sms => "ARSTREAM_SMS_URL or [channels.sms] url",
    };
    format!(
        "made for {} ({} went to a server before), and {variable} is not set now: it waits for the server, not the outbox",
        server.name(),
        channel.name()
    )
}

/// The last transient failure of a pending message.
fn waiting_reason(status: &Status) -> &str {
    match status {
        Status::Pending { waiting: Some(r) } => r,
        _ => "no answer",
    }
}

/// What became of one message of an outbox batch.
enum Written {
    /// Its address is missing or malformed: it fails without being tried.
    Unfit(Message, String),
    /// Its channel went down earlier in the send.
    NotTried(Message, String),
    Tried(Message, Result<Via, Failure>),
}

impl Sender<'_> {
    /// Compose and write `drafts` to the outbox, split over the cores, then record each
    /// (pending, and what became of it) in their order, made durable once for the batch:
    /// after a crash a message written but not recorded is planned again under the same id
    /// and replaces its own file.
    fn to_outbox(
        &self,
        ledger: &mut Ledger,
        candidates: &[Candidate],
        drafts: &[&Draft],
        (day, now): (NaiveDate, DateTime<Utc>),
        down: &mut Down,
        report: &mut SendReport,
    ) -> Result<(), OutreachError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = drafts.len().div_ceil(threads).max(1);
        let was_down = &down.reasons;
        let write = |draft: &Draft| -> Written {
            let composed = self.compose(candidates, draft, (day, now), Via::Outbox);
            let message = composed.message;
            match (composed.problem, was_down.get(&message.channel)) {
                (Some(reason), _) => Written::Unfit(message, reason),
                (None, Some(reason)) => Written::NotTried(message, reason.clone()),
                (None, None) => {
                    let tried = self.channels.write_outbox(&message).map(|_| Via::Outbox);
                    Written::Tried(message, tried)
                }
            }
        };
        let parts: Vec<Vec<Written>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (drafts.chunks(per_thread))
                .map(|part| scope.spawn(move || part.iter().map(|d| write(d)).collect()))
                .collect();
            (handles.into_iter())
                .map(|h| h.join().expect("an outbox writer panicked"))
                .collect()
        });
        let mut records = Vec::with_capacity(2 * drafts.len());
        for written in parts.into_iter().flatten() {
            match written {
                Written::Unfit(message, reason) => {
                    records.extend(unfit(message, reason, now));
                    report.failed += 1;
                }
                Written::NotTried(message, reason) => {
                    let waiting = not_tried(&message, &reason);
                    records.extend([Record::Pending(message), waiting]);
                    report.waiting += 1;
                }
                Written::Tried(message, outcome) => {
                    let (record, result) = outcome_record(&message, outcome, down, report);
                    self.count(&message, Via::Outbox, result, report);
                    records.extend([Record::Pending(message), record]);
                }
            }
        }
        ledger.append(records, true)?;
        Ok(())
    }
}

/// The records of a message that cannot go out: pending, and failed at once.
fn unfit(message: Message, reason: String, at: DateTime<Utc>) -> Vec<Record> {
    let id = message.id.clone();
    vec![Record::Pending(message), Record::Failed { id, reason, at }]
}

/// A message not tried because its channel is down.
fn not_tried(message: &Message, reason: &str) -> Record {
    waiting(
        message,
        &format!("not tried: {reason} (for an earlier message of this send)"),
    )
}

fn waiting(message: &Message, reason: &str) -> Record {
    Record::Waiting {
        id: message.id.clone(),
        reason: reason.to_string(),
        at: Utc::now(),
    }
}

/// The record of a delivery's outcome, and the outcome for the report. A transient failure
/// or a refusal of the sender stops the channel for the rest of the send.
fn outcome_record(
    message: &Message,
    outcome: Result<Via, Failure>,
    down: &mut Down,
    report: &mut SendReport,
) -> (Record, Outcome) {
    let at = Utc::now();
    let id = message.id.clone();
    match outcome {
        Ok(via) => (
            Record::Sent {
                id,
                via: via.name().into(),
                at,
            },
            Outcome::Sent,
        ),
        Err(Failure::Permanent(reason)) => {
            tracing::warn!(id = %message.id, customer = %message.customer_id, "not sent: {reason}");
            (Record::Failed { id, reason, at }, Outcome::Failed)
        }
        Err(Failure::Unconfirmed(reason)) => {
            let reason = format!(
                "{reason}; handed over twice without an answer, it may have arrived (Message-ID {id}): not sent again"
            );
            tracing::warn!(customer = %message.customer_id, "{reason}");
            (Record::Failed { id, reason, at }, Outcome::Failed)
        }
        Err(Failure::Refused(reason)) => {
            if !down.reasons.contains_key(&message.channel) {
                tracing::warn!(
                    channel = message.channel.name(),
                    "{reason}: no message of this channel can go until that is fixed; they wait"
                );
            }
            (report.refused).insert(message.channel.name().to_string(), reason.clone());
            down.reasons.insert(message.channel, reason.clone());
            (Record::Waiting { id, reason, at }, Outcome::Waiting)
        }
        Err(Failure::Transient(reason, _)) => {
            if !down.reasons.contains_key(&message.channel) {
                tracing::warn!(
                    channel = message.channel.name(),
                    "{reason}: this and the channel's other messages wait for the next send"
                );
            }
            down.reasons.insert(message.channel, reason.clone());
            (Record::Waiting { id, reason, at }, Outcome::Waiting)
        }
    }
}

fn stopped(cancel: Option<&CancellationToken>) -> bool {
    cancel.is_some_and(|c| c.is_cancelled())
}
