//! The one seam between the runner and what uses its snapshots: the outputs writer, outreach,
//! the models, the dashboard (and a SQL server next) are each a [`Consumer`], and
//! [`spawn`] drives every one the same way.
//!
//! A consumer is handed the latest snapshot when it is free, never a queue of them: a slow one
//! skips what was published while it worked and never holds the runner back. It says when it
//! wants the next one ([`Next`]); a failure is tried again after a backoff (its [`Retry`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Snapshot, Snapshots, background};

/// When a consumer wants to be handed a snapshot again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// As soon as a newer snapshot is published.
    Newer,
    /// A newer snapshot, but not before this instant (a big extract written at most so
    /// often; one published meanwhile is handed over then).
    NewerNotBefore(Instant),
    /// The latest snapshot again at this instant, even the same one (a send window opening,
    /// messages waiting for a server), or a newer one as soon as it is published.
    Again(Instant),
    /// This one failed: the latest snapshot after the consumer's [`Retry`] backoff.
    Retry,
}

/// How a consumer's failures are tried again: after `first`, doubling up to `max`, until one
/// works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            first: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// The wait after `failures` failures in a row (1, 2, …).
    pub fn wait(&self, failures: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)));
        doubled.min(self.max)
    }
}

/// Something that uses the runner's snapshots.
pub trait Consumer: Send + 'static {
    /// What it reports of each snapshot it was handed (a line of the service's log).
    type Report: Send + 'static;

    /// Its name, in logs and the name of its thread.
    fn name(&self) -> &'static str;

    /// Whether it runs on a low-priority thread of its own (see [`background`]): work that
    /// takes seconds and must not slow a refresh down.
    fn in_background(&self) -> bool {
        false
    }

    /// How its failures are tried again.
    fn retry(&self) -> Retry {
        Retry::default()
    }

    /// Before the first snapshot (open a ledger, a connection). A failure is reported and the
    /// consumer does not run.
    fn start(&mut self) -> impl Future<Output = Result<(), Self::Report>> + Send {
        async { Ok(()) }
    }

    /// Use `snapshot`: what to report, and when to be handed one again. `cancel` is the
    /// service's stop, for work that can end early.
    fn consume(
        &mut self,
        snapshot: &Arc<Snapshot>,
        cancel: &CancellationToken,
    ) -> impl Future<Output = (Option<Self::Report>, Next)> + Send;

    /// After the stop, once what it was doing has finished.
    fn stop(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Drive `consumer` with `snapshots` until `cancel`, each report handed to `report`. The
/// handle ends once it stopped (the work in flight finishes first).
pub fn spawn<C, R>(
    consumer: C,
    snapshots: Snapshots,
    cancel: CancellationToken,
    report: R,
) -> JoinHandle<()>
where
    C: Consumer,
    R: Fn(C::Report) + Send + 'static,
{
    match consumer.in_background() {
        true => background::spawn(consumer.name(), move || {
            drive(consumer, snapshots, cancel, report)
        }),
        false => tokio::spawn(drive(consumer, snapshots, cancel, report)),
    }
}

/// The loop every consumer runs: wait for what [`Next`] asked, hand over the latest snapshot.
async fn drive<C, R>(
    mut consumer: C,
    mut snapshots: Snapshots,
    cancel: CancellationToken,
    report: R,
) where
    C: Consumer,
    R: Fn(C::Report) + Send + 'static,
{
    if let Err(failed) = consumer.start().await {
        report(failed);
        return;
    }
    let retry = consumer.retry();
    let mut failures = 0u32;
    // The snapshot handed over last, and when the consumer wants the next.
    let mut handed: Option<u64> = None;
    let mut next = Next::Newer;
    let mut at = Instant::now();
    loop {
        let latest = snapshots.borrow_and_update().clone();
        let newer = latest.as_ref().filter(|s| Some(s.sequence) != handed);
        let now = Instant::now();
        let due = match next {
            Next::Newer => newer.is_some(),
            Next::NewerNotBefore(_) => newer.is_some() && now >= at,
            Next::Again(_) => newer.is_some() || (latest.is_some() && now >= at),
            Next::Retry => latest.is_some() && now >= at,
        };
        if let (true, Some(snapshot)) = (due, latest) {
            let (reported, wanted) = consumer.consume(&snapshot, &cancel).await;
            handed = Some(snapshot.sequence);
            if let Some(reported) = reported {
                report(reported);
            }
            next = wanted;
            at = match wanted {
                Next::Newer => Instant::now(),
                Next::NewerNotBefore(at) | Next::Again(at) => at,
                Next::Retry => {
                    failures += 1;
                    Instant::now() + retry.wait(failures)
                }
            };
            if wanted != Next::Retry {
                failures = 0;
            }
            if cancel.is_cancelled() {
                break;
            }
            continue;
        }
        // Nothing to do until the instant asked for (when there is one), a newer snapshot or
        // the stop.
        let timed = !matches!(next, Next::Newer);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            changed = snapshots.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(at), if timed && at > Instant::now() => {}
        }
    }
    consumer.stop().await;
}
