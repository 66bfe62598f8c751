//! The outputs writer: a subscriber of the service's snapshots that writes a pipeline's steps.
//!
//! Steps are written in lanes, each on its own task: the steps written at every refresh share
//! one lane, and each step with `every` (a per-invoice extract that takes seconds) has its
//! own, on a thread of its own at the lowest CPU priority. Each lane is a consumer of the
//! service's snapshots: it takes the latest when it is free, so a slow extract never holds
//! back the KPI summary of a newer snapshot, and a burst of snapshots costs one write per lane.
//! A step with `every` is written at the first snapshot and then at most that often, also
//! when no new snapshot came but it missed one. A failed write is tried again after a backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::outputs::{OutputError, write_steps};
use super::spec::Step;
use crate::service::Snapshot;
use crate::service::consumer::{Consumer, Next};
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

    /// The lanes of these steps, each a consumer of the service's snapshots (see
    /// [`crate::service::consumer`]): the steps written at every refresh share one, each step
    /// with `every` has its own, in the background.
    pub fn lanes(&self) -> Vec<Lane> {
        let every_refresh: Vec<Step> = (self.steps.iter())
            .filter(|s| s.every.is_none())
            .cloned()
            .collect();
        let mut lanes = Vec::new();
        if !every_refresh.is_empty() {
            lanes.push((every_refresh, None));
        }
        for step in self.steps.iter().filter(|s| s.every.is_some()) {
            lanes.push((vec![step.clone()], step.every));
        }
        (lanes.into_iter())
            .map(|(steps, every)| Lane {
                writer: OutputWriter::new(steps, self.out.clone()),
                every,
            })
            .collect()
    }
}

/// Steps written together, at every snapshot or at most every so often.
pub struct Lane {
    writer: OutputWriter,
    /// At most this often (none: at every snapshot).
    every: Option<Duration>,
}

impl Consumer for Lane {
    type Report = Written;

    fn name(&self) -> &'static str {
        match self.every {
            Some(_) => "extract",
            None => "outputs",
        }
    }

    /// A big extract runs on a thread of its own, at the lowest priority.
    fn in_background(&self) -> bool {
        self.every.is_some()
    }

    async fn consume(
        &mut self,
        snapshot: &Arc<Snapshot>,
        _cancel: &CancellationToken,
    ) -> (Option<Written>, Next) {
        let began = Instant::now();
        let names: Vec<String> = (self.writer.steps.iter()).map(|s| s.name.clone()).collect();
        // Not write_all: a lane never waits for this refresh's models (minutes at scale),
        // the KPI summary goes out with what the refresh computed, its forecast error from
        // the models of an earlier snapshot.
        let written = write_steps(snapshot, &self.writer.steps, &self.writer.out).await;
        let sequence = snapshot.sequence;
        match written {
            Ok(_) => {
                let next = match self.every {
                    Some(every) => Next::NewerNotBefore((began + every).into()),
                    None => Next::Newer,
                };
                let done = Written::Done {
                    sequence,
                    names,
                    took: began.elapsed(),
                    since_refresh_began: snapshot.began.elapsed(),
                };
                (Some(done), next)
            }
            Err(e) => {
                let error = e.to_string();
                let failed = Written::Failed {
                    sequence,
                    names,
                    error,
                };
                (Some(failed), Next::Retry)
            }
        }
    }
}
