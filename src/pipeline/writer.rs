//! The outputs writer: a subscriber of the service's snapshots that writes a pipeline's steps.
//!
//! Steps are written in lanes, each on its own task: the steps written at every refresh share
//! one lane, and each step with `every` (a per-invoice extract that takes seconds) has its
//! own, on a thread of its own at the lowest CPU priority. A lane takes the latest snapshot when it is free, so a slow extract never holds back
//! the KPI summary of a newer snapshot, and a burst of snapshots costs one write per lane. A
//! step with `every` is written at the first snapshot and then at most that often, also when
//! no new snapshot came but it missed one. A failed write is tried again at the next snapshot,
//! or after a backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::outputs::{OutputError, write_steps};
use super::spec::Step;
use crate::service::{Snapshot, Snapshots, background};
use crate::store::Location;

/// What a lane did with a snapshot.
#[derive(Debug, Clone)]
pub enum Written {
    /// The lane's steps were written for snapshot `sequence`.
    Done {
        sequence: u64,
        names: Vec<String>,
        /// Writing them.
        took: Duration,
        /// From the start of the snapshot's refresh to the outputs written.
        since_refresh_began: Duration,
    },
    /// They could not be; tried again later.
    Failed {
        sequence: u64,
        names: Vec<String>,
        error: String,
    },
}

/// A pipeline's steps and where they go.
#[derive(Clone)]
pub struct OutputWriter {
    steps: Vec<Step>,
    out: Location,
}

impl OutputWriter {
    pub fn new(steps: Vec<Step>, out: Location) -> OutputWriter {
        OutputWriter { steps, out }
    }

    /// Where the steps without a sink of their own are written.
    pub fn out(&self) -> &url::Url {
        &self.out.url
    }

    /// Every step, written now for `snapshot` (one refresh and exit, as `run --once` does).
    /// A one-off run has no later refresh to complete what the models add (the KPI summary's
    /// `cash_forecast_wape`): when a step reads the models' tables, they are made first, and
    /// every step is written with them.
    pub async fn write_all(&self, snapshot: &Snapshot) -> Result<Vec<String>, OutputError> {
        let reads_models = (self.steps.iter()).any(|s| snapshot.engine.reads_derived(&s.query()));
        if reads_models && let Err(e) = snapshot.model_tables().await {
            tracing::warn!("the model tables of this refresh could not be made: {e}");
        }
        write_steps(snapshot, &self.steps, &self.out).await
    }

    /// Start the lanes on `snapshots`, until `cancel`. What they write is reported on the
    /// returned channel; the handles end once a stop has let the writes in flight finish.
    pub fn spawn(
        &self,
        snapshots: Snapshots,
        cancel: CancellationToken,
    ) -> (mpsc::UnboundedReceiver<Written>, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let every_refresh: Vec<Step> = (self.steps.iter())
            .filter(|s| s.every.is_none())
            .cloned()
            .collect();
        let mut lanes: Vec<(Vec<Step>, Option<Duration>)> = Vec::new();
        if !every_refresh.is_empty() {
            lanes.push((every_refresh, None));
        }
        for step in self.steps.iter().filter(|s| s.every.is_some()) {
            lanes.push((vec![step.clone()], step.every));
        }
        let handles = (lanes.into_iter())
            .map(|(steps, every)| {
                let lane = Lane {
                    writer: OutputWriter::new(steps, self.out.clone()),
                    every,
                    events: tx.clone(),
                };
                match every {
                    None => tokio::spawn(lane.run(snapshots.clone(), cancel.clone())),
                    Some(_) => in_background(lane, snapshots.clone(), cancel.clone()),
                }
            })
            .collect();
        (rx, handles)
    }
}

/// Run a lane of a big extract in the background (see [`background`]): its query runs on
/// that one thread.
fn in_background(lane: Lane, snapshots: Snapshots, cancel: CancellationToken) -> JoinHandle<()> {
    background::spawn("extract", move || lane.run(snapshots, cancel))
}

struct Lane {
    writer: OutputWriter,
    /// At most this often (none: at every snapshot).
    every: Option<Duration>,
    events: mpsc::UnboundedSender<Written>,
}

impl Lane {
    async fn run(self, mut snapshots: Snapshots, cancel: CancellationToken) {
        let mut written: Option<u64> = None;
        let mut last_write: Option<Instant> = None;
        let mut failures: u32 = 0;
        loop {
            let latest: Option<Arc<Snapshot>> = snapshots.borrow_and_update().clone();
            let behind = latest.as_ref().filter(|s| Some(s.sequence) != written);
            let due_at = match (self.every, last_write) {
                (Some(every), Some(at)) => Some(at + every),
                _ => None,
            };
            let retry_at = (failures > 0).then(|| {
                let wait = Duration::from_millis(500) * 2u32.saturating_pow(failures.min(7));
                last_write.unwrap_or_else(Instant::now) + wait.min(Duration::from_secs(60))
            });
            let wait_until = due_at.max(retry_at);
            if let Some(snapshot) = behind
                && wait_until.is_none_or(|at| Instant::now() >= at)
            {
                let began = Instant::now();
                last_write = Some(began);
                let names: Vec<String> =
                    (self.writer.steps.iter()).map(|s| s.name.clone()).collect();
                // Not write_all: a lane never waits for this refresh's models (minutes at
                // scale), the KPI summary goes out with what the refresh computed, its
                // forecast error from the models of an earlier snapshot.
                let written_now = write_steps(snapshot, &self.writer.steps, &self.writer.out).await;
                let event = match written_now {
                    Ok(_) => {
                        written = Some(snapshot.sequence);
                        failures = 0;
                        Written::Done {
                            sequence: snapshot.sequence,
                            names,
                            took: began.elapsed(),
                            since_refresh_began: snapshot.began.elapsed(),
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        Written::Failed {
                            sequence: snapshot.sequence,
                            names,
                            error: e.to_string(),
                        }
                    }
                };
                let _ = self.events.send(event);
                if cancel.is_cancelled() {
                    return;
                }
                continue;
            }
            let sleep_until = match (behind.is_some(), wait_until) {
                (true, Some(at)) => tokio::time::Instant::from_std(at),
                _ => tokio::time::Instant::now() + Duration::from_secs(24 * 3600),
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(sleep_until) => {}
            }
        }
    }
}
