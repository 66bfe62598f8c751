//! Outreach as a consumer of the service (`arstream run` with a pipeline's `outreach` key):
//! after each refresh it sends the day's messages over the newest snapshot, skipping the
//! snapshots published while it was busy, on a low-priority thread of its own (the risk
//! segment may need the model). It holds the ledger's lock while the service runs.
//!
//! It also sends without a new refresh: when the send window opens, and while messages wait
//! for a server, again with backoff (from the policy's `resend_first_wait`, doubling up to
//! `resend_max_wait`, never sooner than a server's `Retry-After`).

use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::candidates;
use super::channels::Channels;
use super::ledger::Ledger;
use super::send::{SendReport, Sender};
use super::{Outreach, OutreachError};
use crate::service::{Snapshot, Snapshots};

/// What one send after a refresh did.
#[derive(Debug)]
pub enum Sent {
    Done { sequence: u64, report: SendReport },
    Failed { sequence: u64, error: String },
}

/// Send the messages of `snapshot`'s as-of date.
pub async fn send_for(
    outreach: &Outreach,
    ledger: &mut Ledger,
    channels: &Channels,
    snapshot: &Snapshot,
    cancel: Option<&CancellationToken>,
) -> Result<SendReport, OutreachError> {
    let query = outreach.prepare(&snapshot.engine).await?;
    let batches = match snapshot.query(&query, None).await {
        Ok((_, batches)) => batches,
        Err(e) => {
            let policy = &outreach.policy;
            return Err(candidates::explain_failure(policy, &snapshot.engine, e).await);
        }
    };
    let rows = candidates::from_batches(&batches, outreach.policy.rules.len())?;
    let sender = Sender {
        policy: &outreach.policy,
        templates: &outreach.templates,
        channels,
    };
    let day = snapshot.params.as_of;
    sender
        .send(ledger, &rows, day, Utc::now(), false, cancel)
        .await
}

/// Send after every refresh until `cancel`; what each send did comes on the channel.
pub fn spawn(
    outreach: Outreach,
    mut snapshots: Snapshots,
    cancel: CancellationToken,
) -> (mpsc::UnboundedReceiver<Sent>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = crate::service::background::spawn("outreach", move || async move {
        let opened = Ledger::open(&outreach.ledger_folder)
            .map_err(OutreachError::from)
            .and_then(|ledger| Ok((ledger, outreach.channels()?)));
        let (mut ledger, channels) = match opened {
            Ok(both) => both,
            Err(e) => {
                let _ = tx.send(Sent::Failed {
                    sequence: 0,
                    error: e.to_string(),
                });
                return;
            }
        };
        let mut retries = Retries::new(&outreach);
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            let mut again = None;
            if let Some(snapshot) = snapshot {
                let sent = send_for(&outreach, &mut ledger, &channels, &snapshot, Some(&cancel));
                let sequence = snapshot.sequence;
                let event = match sent.await {
                    Ok(report) => {
                        again = retries.after(&report);
                        Sent::Done { sequence, report }
                    }
                    Err(e) => Sent::Failed {
                        sequence,
                        error: e.to_string(),
                    },
                };
                let _ = tx.send(event);
            }
            // A new snapshot, or the time to send again without one.
            let wait = again.unwrap_or(Duration::MAX);
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = snapshots.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wait.min(Duration::from_secs(86_400))), if again.is_some() => {}
            }
        }
    });
    (rx, handle)
}

/// When to send again without a new refresh, from what a send did.
struct Retries {
    first: Duration,
    max: Duration,
    /// The wait after the next send that leaves messages waiting.
    next: Duration,
}

impl Retries {
    fn new(outreach: &Outreach) -> Retries {
        let retry = outreach.policy.retry;
        Retries {
            first: retry.resend_first_wait,
            max: retry.resend_max_wait,
            next: retry.resend_first_wait,
        }
    }

    /// How long until the next send: when the window opens, or a retry while messages wait
    /// (doubling each time, at least the server's `Retry-After`); none when nothing waits.
    fn after(&mut self, report: &SendReport) -> Option<Duration> {
        if let Some(opens) = report.opens_at {
            let until = (opens - Utc::now()).to_std().unwrap_or_default();
            return Some(until + Duration::from_secs(1));
        }
        if report.waiting == 0 && !report.stopped {
            self.next = self.first;
            return None;
        }
        let wait = self.next.max(report.retry_after.unwrap_or_default());
        self.next = (self.next * 2).min(self.max);
        Some(wait)
    }
}
