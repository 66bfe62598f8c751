//! A day's sending: the messages left pending by an earlier send (a server that was down, a
//! crash), then the day's new ones, each recorded in the ledger before it goes out and marked
//! after. A transient failure is retried with backoff; when the retries run out the message
//! waits for the next send, and so do the rest of that channel's messages (the server is
//! down: no point knocking on it for each). A permanent failure is recorded and the others go
//! on.

use std::collections::{BTreeMap, HashMap};

use backon::BackoffBuilder;
use chrono::{DateTime, NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use super::OutreachError;
use super::candidates::Candidate;
use super::channels::{Channels, Failure, Via};
use super::ledger::{Ledger, Message, Record, Skip};
use super::plan::{Draft, compose, plan};
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
    /// Of `sent`: messages left pending by an earlier send.
    pub resent: usize,
    pub failed: usize,
    /// Recorded and waiting for a server to come back.
    pub waiting: usize,
    pub skipped: usize,
    /// Due for customers who had their message of the day already: tomorrow.
    pub deferred: usize,
    /// Sent per channel and where to (`email` → `smtp`, …).
    pub by_channel: BTreeMap<(String, String), usize>,
    /// The send window was closed: nothing was recorded or sent.
    pub window_closed: Option<String>,
    /// Stopped (a signal) before all messages went out; the rest go out next time.
    pub stopped: bool,
}

/// What a send needs besides the ledger.
pub struct Sender<'a> {
    pub policy: &'a Policy,
    pub templates: &'a Templates,
    pub channels: &'a Channels,
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
            let next = window
                .next_open(now)
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

        let carried = self.recheck_pending(ledger, candidates, &mut report)?;
        let planned = plan(self.policy, candidates, ledger, day, now);
        report.deferred = planned.deferred;
        report.skipped += planned.skips.len();
        let skips = planned.skips.into_iter().map(Record::Skipped).collect();
        ledger.append(skips, true)?;

        let mut down: HashMap<Channel, String> = HashMap::new();
        let mut unsynced = 0usize;
        for message in carried {
            if stopped(cancel) {
                report.stopped = true;
                break;
            }
            let result = self
                .deliver(ledger, &message, false, &mut down, &mut unsynced)
                .await?;
            if result == Some(true) {
                report.resent += 1;
            }
            self.count(&message, result, &mut report);
        }
        // Messages for a server go one by one; the outbox's are written a batch at a time on
        // every core.
        let (boxed, served): (Vec<&Draft>, Vec<&Draft>) = (planned.drafts.iter())
            .partition(|d| self.channels.via(d.channel(self.policy)) == Via::Outbox);
        for draft in served {
            if report.stopped || stopped(cancel) {
                report.stopped = true;
                break;
            }
            let composed = compose(self.policy, self.templates, candidates, draft, day, now)?;
            let message = match composed {
                Ok(message) => message,
                Err((message, reason)) => {
                    ledger.append(unfit(message, reason, now), false)?;
                    report.failed += 1;
                    continue;
                }
            };
            let result = self
                .deliver(ledger, &message, true, &mut down, &mut unsynced)
                .await?;
            self.count(&message, result, &mut report);
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

    fn count(&self, message: &Message, result: Option<bool>, report: &mut SendReport) {
        match result {
            Some(true) => {
                report.sent += 1;
                let via = self.channels.via(message.channel).name().to_string();
                let key = (message.channel.name().to_string(), via);
                *report.by_channel.entry(key).or_default() += 1;
            }
            Some(false) => report.failed += 1,
            None => report.waiting += 1,
        }
    }

    /// The pending messages that still have a reason to go out; one whose every invoice is now
    /// suppressed (paid, credited, disputed, promised or opted out meanwhile) is skipped.
    fn recheck_pending(
        &self,
        ledger: &mut Ledger,
        candidates: &[Candidate],
        report: &mut SendReport,
    ) -> Result<Vec<Message>, OutreachError> {
        let by_invoice: HashMap<&str, &Candidate> = candidates
            .iter()
            .map(|c| (c.invoice_id.as_str(), c))
            .collect();
        let mut carried = Vec::new();
        for message in ledger.pending() {
            let reasons: Vec<Option<&String>> = (message.items.iter())
                .map(|i| {
                    by_invoice
                        .get(i.invoice_id.as_str())
                        .and_then(|c| c.suppressed.as_ref())
                })
                .collect();
            if reasons.iter().any(Option::is_none) {
                carried.push(message);
                continue;
            }
            let now = Utc::now();
            let skips = (message.items.iter().zip(&reasons))
                .map(|(item, reason)| {
                    Record::Skipped(Skip {
                        day: message.day,
                        rule: item.rule.clone(),
                        stage: item.stage.clone(),
                        customer_id: message.customer_id.clone(),
                        invoice_id: item.invoice_id.clone(),
                        reason: format!(
                            "{} by the time of sending",
                            reason.expect("all suppressed")
                        ),
                        message_id: Some(message.id.clone()),
                        at: now,
                    })
                })
                .collect();
            ledger.append(skips, true)?;
            report.skipped += message.items.len();
        }
        Ok(carried)
    }

    /// Record `message` (when `new`), deliver it with retries, mark the outcome. `Some(true)`
    /// sent, `Some(false)` failed for good, `None` waiting.
    async fn deliver(
        &self,
        ledger: &mut Ledger,
        message: &Message,
        new: bool,
        down: &mut HashMap<Channel, String>,
        unsynced: &mut usize,
    ) -> Result<Option<bool>, OutreachError> {
        let via = self.channels.via(message.channel);
        let outbox = via == Via::Outbox;
        if new {
            // Durable before it leaves, unless it only goes to the outbox.
            ledger.append(vec![Record::Pending(message.clone())], !outbox)?;
        }
        if let Some(reason) = down.get(&message.channel) {
            ledger.append(vec![not_tried(message, reason)], !outbox)?;
            return Ok(None);
        }
        let retry = self.policy.retry;
        let mut waits = backon::ExponentialBuilder::new()
            .with_min_delay(retry.first_wait)
            .with_max_delay(retry.max_wait)
            .with_jitter()
            .with_max_times(retry.attempts.saturating_sub(1) as usize)
            .build();
        let outcome = loop {
            match self.channels.deliver(message).await {
                Ok(via) => break Ok(via),
                Err(Failure::Permanent(reason)) => break Err(Failure::Permanent(reason)),
                Err(Failure::Transient(reason)) => match waits.next() {
                    Some(wait) => {
                        tracing::debug!(id = %message.id, %reason, ?wait, "delivery failed; retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => break Err(Failure::Transient(reason)),
                },
            }
        };
        let (record, result) = outcome_record(message, outcome, down);
        *unsynced += 1;
        let durable = !outbox || *unsynced >= OUTBOX_BATCH;
        if durable {
            *unsynced = 0;
        }
        ledger.append(vec![record], durable)?;
        Ok(result)
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
        down: &mut HashMap<Channel, String>,
        report: &mut SendReport,
    ) -> Result<(), OutreachError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = drafts.len().div_ceil(threads).max(1);
        let was_down = &*down;
        let write = |draft: &Draft| -> Result<Written, OutreachError> {
            let composed = compose(self.policy, self.templates, candidates, draft, day, now)?;
            Ok(match composed {
                Err((message, reason)) => Written::Unfit(message, reason),
                Ok(message) => match was_down.get(&message.channel) {
                    Some(reason) => Written::NotTried(message, reason.clone()),
                    None => {
                        let tried = self.channels.write_outbox(&message).map(|_| Via::Outbox);
                        Written::Tried(message, tried)
                    }
                },
            })
        };
        let parts: Vec<Result<Vec<Written>, OutreachError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (drafts.chunks(per_thread))
                .map(|part| scope.spawn(move || part.iter().map(|d| write(d)).collect()))
                .collect();
            (handles.into_iter())
                .map(|h| h.join().expect("an outbox writer panicked"))
                .collect()
        });
        let mut records = Vec::with_capacity(2 * drafts.len());
        for written in parts
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
        {
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
                    let (record, result) = outcome_record(&message, outcome, down);
                    self.count(&message, result, report);
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
    Record::Waiting {
        id: message.id.clone(),
        reason: format!("not tried: {reason} (for an earlier message of this send)"),
        at: Utc::now(),
    }
}

/// The record of a delivery's outcome, and the outcome for the report (`Some(true)` sent,
/// `Some(false)` failed for good, `None` waiting). A transient failure marks the channel down.
fn outcome_record(
    message: &Message,
    outcome: Result<Via, Failure>,
    down: &mut HashMap<Channel, String>,
) -> (Record, Option<bool>) {
    let at = Utc::now();
    let id = message.id.clone();
    match outcome {
        Ok(via) => (
            Record::Sent {
                id,
                via: via.name().into(),
                at,
            },
            Some(true),
        ),
        Err(Failure::Permanent(reason)) => {
            tracing::warn!(id = %message.id, customer = %message.customer_id, "not sent: {reason}");
            (Record::Failed { id, reason, at }, Some(false))
        }
        Err(Failure::Transient(reason)) => {
            if !down.contains_key(&message.channel) {
                tracing::warn!(
                    channel = message.channel.name(),
                    "{reason}: this and the channel's other messages wait for the next send"
                );
            }
            down.insert(message.channel, reason.clone());
            (Record::Waiting { id, reason, at }, None)
        }
    }
}

fn stopped(cancel: Option<&CancellationToken>) -> bool {
    cancel.is_some_and(|c| c.is_cancelled())
}
