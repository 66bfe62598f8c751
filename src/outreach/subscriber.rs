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
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::candidates;
use super::channels::Channels;
use super::ledger::Ledger;
use super::send::{SendReport, Sender};
use super::{Outreach, OutreachError};
use crate::service::Snapshot;
use crate::service::consumer::{Consumer, Next, Retry};

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

/// Outreach as a consumer of the service's snapshots: it sends after every refresh, when the
/// send window opens, and again while messages wait.
pub struct OutreachConsumer {
    outreach: Outreach,
    /// The ledger (locked while the service runs) and the channels, once started.
    opened: Option<(Ledger, Channels)>,
    retries: Retries,
}

impl OutreachConsumer {
    pub fn new(outreach: Outreach) -> OutreachConsumer {
        let retries = Retries::new(&outreach);
        OutreachConsumer {
            outreach,
            opened: None,
            retries,
        }
    }
}

impl Consumer for OutreachConsumer {
    type Report = Sent;

    fn name(&self) -> &'static str {
        "outreach"
    }

    /// The risk segment may need the model: seconds at scale.
    fn in_background(&self) -> bool {
        true
    }

    /// A send that failed (its query, the ledger) is tried again as waiting messages are.
    fn retry(&self) -> Retry {
        let retry = self.outreach.policy.retry;
        Retry {
            first: retry.resend_first_wait,
            max: retry.resend_max_wait,
        }
    }

    async fn start(&mut self) -> Result<(), Sent> {
        let opened = Ledger::open(&self.outreach.ledger_folder)
            .map_err(OutreachError::from)
            .and_then(|ledger| Ok((ledger, self.outreach.channels()?)));
        match opened {
            Ok(opened) => {
                self.opened = Some(opened);
                Ok(())
            }
            Err(e) => Err(Sent::Failed {
                sequence: 0,
                error: e.to_string(),
            }),
        }
    }

    async fn consume(
        &mut self,
        snapshot: &Arc<Snapshot>,
        cancel: &CancellationToken,
    ) -> (Option<Sent>, Next) {
        let Some((ledger, channels)) = &mut self.opened else {
            return (None, Next::Newer);
        };
        let sequence = snapshot.sequence;
        match send_for(&self.outreach, ledger, channels, snapshot, Some(cancel)).await {
            Ok(report) => {
                let next = match self.retries.after(&report) {
                    Some(wait) => Next::Again(Instant::now() + wait),
                    None => Next::Newer,
                };
                (Some(Sent::Done { sequence, report }), next)
            }
            Err(e) => {
                let error = e.to_string();
                (Some(Sent::Failed { sequence, error }), Next::Retry)
            }
        }
    }
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
