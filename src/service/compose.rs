//! A service composed: the runner, the consumers it drives (see [`super::consumer`]) and, when
//! there is one, a front whose end stops the service (the dashboard). It knows no consumer's
//! internals: each is added with how its reports become the service's `R`, and everything the
//! service does is handed to one callback as an [`Event`], for a command to print.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::consumer::{self, Consumer};
use super::{Notice, Runner, RunnerOptions, ServiceError, Snapshot, Snapshots, Stopped};

/// What a running service reports: a line of its log each.
pub enum Event<R> {
    /// A snapshot published.
    Refresh(Arc<Snapshot>),
    /// A catch-up or refresh failed.
    Notice(Notice),
    /// A consumer's report.
    Consumer(R),
}

/// A front that shows the snapshots and the failures until it is closed or cancelled.
pub type Front = Box<
    dyn FnOnce(
            Snapshots,
            broadcast::Receiver<Notice>,
            CancellationToken,
        ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send,
>;

/// Starts a consumer on the runner's snapshots, its reports sent as `R`s.
type Start<R> = Box<
    dyn FnOnce(Snapshots, CancellationToken, mpsc::UnboundedSender<R>) -> JoinHandle<()> + Send,
>;

/// The runner and what consumes its snapshots, built then run.
pub struct Service<R> {
    runner: Runner,
    consumers: Vec<Start<R>>,
    front: Option<Front>,
}

impl<R: Send + 'static> Service<R> {
    pub fn new(options: RunnerOptions) -> Service<R> {
        Service {
            runner: Runner::new(options),
            consumers: Vec::new(),
            front: None,
        }
    }

    /// Drive `consumer` with every snapshot, its reports made `R`s by `report`.
    pub fn consumer<C, F>(mut self, consumer: C, report: F) -> Service<R>
    where
        C: Consumer,
        F: Fn(C::Report) -> R + Send + 'static,
    {
        self.consumers
            .push(Box::new(move |snapshots, cancel, reports| {
                let send = move |r| drop(reports.send(report(r)));
                consumer::spawn(consumer, snapshots, cancel, send)
            }));
        self
    }

    /// Put `front` in front (the dashboard): while it shows, the events are on it and not
    /// handed out; closing it stops the service.
    pub fn front(mut self, front: Front) -> Service<R> {
        self.front = Some(front);
        self
    }

    /// Run until `cancel` (or the front closed), each event handed to `on_event` as it
    /// happens. At the stop, what the consumers have in flight gets two seconds to finish.
    pub async fn run(
        self,
        cancel: &CancellationToken,
        mut on_event: impl FnMut(Event<R>),
    ) -> Result<Stopped, ServiceError> {
        let Service {
            runner,
            consumers,
            front,
        } = self;
        let (reports, mut reported) = mpsc::unbounded_channel::<R>();
        let started: Vec<JoinHandle<()>> = (consumers.into_iter())
            .map(|start| start(runner.subscribe(), cancel.clone(), reports.clone()))
            .collect();
        drop(reports);
        let on_screen = front.is_some();
        let shown = async {
            match front {
                Some(front) => {
                    let shown = front(runner.subscribe(), runner.notices(), cancel.clone());
                    let result = shown.await;
                    // Closing the front stops the service.
                    cancel.cancel();
                    result
                }
                None => std::future::pending().await,
            }
        };
        let mut snapshots = runner.subscribe();
        let mut notices = runner.notices();
        let mut event = |e: Event<R>| {
            if !on_screen {
                on_event(e)
            }
        };
        let run = runner.run(cancel, false);
        tokio::pin!(run, shown);
        let mut closed = None;
        let stopped = loop {
            tokio::select! {
                biased;
                stopped = &mut run => break stopped?,
                result = &mut shown, if closed.is_none() => closed = Some(result),
                changed = snapshots.changed() => {
                    if changed.is_ok() && let Some(s) = snapshots.borrow_and_update().clone() {
                        event(Event::Refresh(s));
                    }
                }
                Ok(notice) = notices.recv() => event(Event::Notice(notice)),
                Some(report) = reported.recv() => event(Event::Consumer(report)),
            }
        };
        let closed = match closed {
            Some(result) => result,
            None if on_screen => {
                cancel.cancel();
                shown.await
            }
            None => Ok(()),
        };
        let finished = futures::future::join_all(started);
        let _ = tokio::time::timeout(STOP_GRACE, finished).await;
        while let Ok(report) = reported.try_recv() {
            event(Event::Consumer(report));
        }
        closed.map_err(ServiceError::Front)?;
        Ok(stopped)
    }
}

/// How long the consumers' work in flight may take after the stop (each output is one PUT or
/// rename: a reader sees the old one or the new one).
const STOP_GRACE: Duration = Duration::from_secs(2);
