//! The service: the runner that keeps a state caught up with its feed and publishes every
//! refresh as an immutable [`Snapshot`].
//!
//! Consumers (the outputs writer, outreach, the models, the dashboard, a SQL server later)
//! subscribe to the snapshots through a `tokio::sync::watch` channel and take the latest when
//! they are ready, each driven through one trait ([`consumer`]), composed with the runner by
//! [`compose::Service`]: none is wired into the refresh loop, so a slow consumer never holds
//! a fresh snapshot back. One cancellation token stops everything: a catch-up stops
//! after the file in flight, with what was applied checkpointed.
//!
//! Errors are told apart: a store that cannot be reached is retried with a growing backoff; a
//! logic error (a view that does not plan) is reported once, and tried again only when
//! something changes (new feed files, an edited view), so the service stays up without
//! hammering it.

pub mod background;
pub mod compose;
pub mod consumer;
pub mod forecast;
pub mod health;
pub mod kpi;
pub mod model_report;
pub mod models;
pub mod schedule;
pub mod session;
pub mod signals;
pub mod stored_models;
pub mod trigger;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::engine::EngineError;
use crate::engine::params::KpiParams;
use crate::ingest::{CatchUpReport, IngestError, Touched, catch_up_until, open_and_catch_up};
use crate::models::risk::RiskOptions;
use crate::state::StateError;
use health::Health;
use kpi::KpiSummary;
use models::{ModelTables, ModelTablesError};
use schedule::Schedule;
use session::{Session, SessionError, SessionOptions};
use stored_models::StoredModels;
use trigger::Trigger;

/// What one refresh applied, and how long it took.
#[derive(Debug, Clone, Default)]
pub struct Refresh {
    /// Its catch-up: files applied, rows, files quarantined with why, entries skipped.
    pub catch_up: CatchUpReport,
    /// From the start of the catch-up to the snapshot's publication.
    pub took: Duration,
}

/// One refresh, published: what it applied, the state's health, the KPI summary, and an
/// engine over exactly that state to query. Never changed once published.
pub struct Snapshot {
    /// 1, 2, … in the order published by this runner.
    pub sequence: u64,
    /// The state's checkpoint generation.
    pub generation: u64,
    pub params: KpiParams,
    pub refresh: Refresh,
    pub health: Health,
    pub kpi: KpiSummary,
    /// Results the refresh computed anyway, by their SQL (the KPI summary), so that a
    /// consumer asking the same query (an output) does not run it again.
    pub results: std::collections::HashMap<String, QueryResult>,
    pub engine: Arc<Engine>,
    /// When the refresh began (its catch-up): a consumer's latency is measured from here.
    pub began: Instant,
    /// The models' tables of this snapshot (risk scores, assignments, cash forecast), made
    /// once on first ask (see
    /// [`Snapshot::model_tables`]).
    models: tokio::sync::OnceCell<Result<Arc<ModelTables>, String>>,
    /// Results computed once and kept for later asks (see [`Snapshot::view_rows`]).
    kept: std::sync::Mutex<std::collections::HashMap<String, Arc<KeptResult>>>,
    risk_options: RiskOptions,
    /// Where its model tables are stored (none with changes not checkpointed).
    stored: Option<StoredModels>,
    /// The runner's latest model tables, which later snapshots serve until they have theirs.
    latest_models: LatestModels,
    /// The customers each refresh touched, by snapshot: whom a later snapshot rescores.
    touched: TouchedLog,
    /// How long a risk model is used before it is trained again (`[risk] retrain_hours`).
    retrain_every: Duration,
    /// The runner's runtime (all threads), where rescoring runs.
    runtime: tokio::runtime::Handle,
}

/// The model tables made last, by whichever snapshot.
type LatestModels = Arc<std::sync::Mutex<Option<Latest>>>;

/// Model tables, the snapshot they are of, and what they were made with besides its rows.
#[derive(Clone)]
struct Latest {
    sequence: u64,
    made_with: String,
    tables: Arc<ModelTables>,
}

/// The customers the refreshes touched, by snapshot sequence, the latest [`TOUCHED_KEPT`].
type TouchedLog = Arc<std::sync::Mutex<std::collections::VecDeque<(u64, Touched)>>>;
const TOUCHED_KEPT: usize = 1024;

/// A query's schema and rows.
pub type QueryResult = (arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>);

/// A result computed by the first to ask for it, the others waiting.
type KeptResult = tokio::sync::OnceCell<QueryResult>;

impl Snapshot {
    /// The rows of `sql` over this snapshot: computed by the refresh already, or now on
    /// `threads` threads at most (`None`: all the engine has).
    pub async fn query(
        &self,
        sql: &str,
        threads: Option<usize>,
    ) -> Result<QueryResult, crate::engine::EngineError> {
        // What the refresh computed before this snapshot's model tables were made (the KPI
        // summary) is computed again once they are, for what they add: once, then kept.
        let reads_models = self.engine.reads_derived(sql);
        if let Some(result) = self.results.get(sql) {
            if !(reads_models && self.models.initialized()) {
                return Ok(result.clone());
            }
            return self.kept(sql, threads).await;
        }
        self.models_for(sql).await;
        self.engine.query_planned(sql, threads).await
    }

    /// All the rows of view `name` over this snapshot, computed on the first ask (after its
    /// model tables when it reads them) and kept for every later one: for the summaries many
    /// readers ask again (the worklist, one row per customer), never for a view of every
    /// invoice.
    pub async fn view_rows(&self, name: &str) -> Result<QueryResult, crate::engine::EngineError> {
        let sql = format!("SELECT * FROM \"{name}\"");
        if self.results.contains_key(&sql) {
            return self.query(&sql, None).await;
        }
        self.models_for(&sql).await;
        self.kept(&sql, None).await
    }

    /// Make this snapshot's model tables first when `sql` reads them.
    async fn models_for(&self, sql: &str) {
        if self.engine.reads_derived(sql)
            && let Err(e) = self.model_tables().await
        {
            tracing::warn!("the model tables of this refresh could not be made: {e}");
        }
    }

    /// The rows of `sql`, computed once for this snapshot (a failure is not kept).
    async fn kept(
        &self,
        sql: &str,
        threads: Option<usize>,
    ) -> Result<QueryResult, crate::engine::EngineError> {
        let cell = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.entry(sql.to_string()).or_default().clone()
        };
        let rows = cell.get_or_try_init(|| self.engine.query_planned(sql, threads));
        rows.await.cloned()
    }

    /// The risk model's scores, the collector assignments and the cash forecast over this
    /// snapshot's rows (see [`models`]), made on the first ask and served by its engine from then on. Until then
    /// its engine serves those of an earlier snapshot, if any.
    ///
    /// Between two trainings of the risk model, they are the latest snapshot's with the
    /// customers the refreshes since touched rescored (see [`ModelTables::rescore`]): a
    /// refresh costs what it changed. They are made whole (the model trained again, every
    /// invoice scored, the worklist assigned, the forecast and its backtest made) at the first
    /// snapshot, when the as-of date, the parameters or a view changed, when the model is
    /// older than `[risk] retrain_hours`, and when a refresh touched every customer (an FX
    /// rate) or too many to list.
    pub async fn model_tables(&self) -> Result<Arc<ModelTables>, String> {
        let made = self.models.get_or_init(|| async {
            // On the runner's runtime, whoever asks: rescoring is what an output waits for,
            // and the background scorer's runtime is one thread at the lowest priority.
            let rescored = match self.rescoring() {
                Some((latest, touched)) => {
                    let (engine, options) = (self.engine.clone(), self.risk_options);
                    let rescoring = self
                        .runtime
                        .spawn(async move { latest.rescore(&engine, &touched, options).await });
                    rescoring.await.unwrap_or_else(|e| {
                        Some(Err(ModelTablesError::Engine(EngineError::Queries(
                            format!("rescoring stopped: {e}"),
                        ))))
                    })
                }
                None => None,
            };
            let made = match rescored {
                Some(made) => made,
                None => {
                    let (engine, as_of, stored) =
                        (&self.engine, self.params.as_of, self.stored.as_ref());
                    ModelTables::make(engine, as_of, self.risk_options, stored).await
                }
            };
            let made = made.map(Arc::new).map_err(|e| e.to_string())?;
            self.keep_latest(made.clone());
            Ok(made)
        });
        made.await.clone()
    }

    /// Train the risk model again on this snapshot and make its tables whole, not read as
    /// stored: a service that started on stored tables has no model to rescore with.
    pub async fn retrain(&self) -> Result<Arc<ModelTables>, String> {
        let (engine, as_of) = (&self.engine, self.params.as_of);
        let made = ModelTables::make(engine, as_of, self.risk_options, None).await;
        let made = made.map(Arc::new).map_err(|e| e.to_string())?;
        self.keep_latest(made.clone());
        Ok(made)
    }

    /// What model tables depend on besides the rows: the parameters (the as-of date among
    /// them), the risk options and every view's definition.
    fn made_with(&self) -> String {
        let views = self.engine.definitions_fingerprint();
        format!("{:?}; {:?}; {views:016x}", self.params, self.risk_options)
    }

    /// Whether this snapshot's model tables are (or would be) the latest ones rescored.
    pub fn rescores(&self) -> bool {
        match self.models.get() {
            Some(made) => made.as_ref().is_ok_and(|t| t.rescored.is_some()),
            None => self.rescoring().is_some(),
        }
    }

    /// The latest model tables and the customers touched since, when this snapshot's may
    /// be those rescored.
    fn rescoring(&self) -> Option<(Arc<ModelTables>, std::collections::BTreeSet<String>)> {
        let latest = (self.latest_models.lock().unwrap_or_else(|e| e.into_inner())).clone()?;
        let current = latest.sequence < self.sequence
            && latest.made_with == self.made_with()
            && latest.tables.trained_at.elapsed() < self.retrain_every;
        if !current || latest.tables.scorer.is_none() {
            return None;
        }
        let log = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        let since = (log.iter()).filter(|(s, _)| *s > latest.sequence && *s <= self.sequence);
        let mut touched = Touched::default();
        let mut refreshes = 0;
        for (_, t) in since {
            touched.join(t);
            refreshes += 1;
        }
        match touched {
            Touched::Customers(set) if refreshes == self.sequence - latest.sequence => {
                Some((latest.tables, set))
            }
            _ => None,
        }
    }

    /// Keep `tables` as the runner's latest, unless a later snapshot's are.
    fn keep_latest(&self, tables: Arc<ModelTables>) {
        let mut latest = self.latest_models.lock().unwrap_or_else(|e| e.into_inner());
        if latest.as_ref().is_none_or(|l| l.sequence <= self.sequence) {
            *latest = Some(Latest {
                sequence: self.sequence,
                made_with: self.made_with(),
                tables,
            });
        }
    }

    /// Where this snapshot's model tables, and what else depends on its state, parameters and
    /// views, are stored (none with changes not checkpointed).
    pub fn stored(&self) -> Option<&StoredModels> {
        self.stored.as_ref()
    }
}

/// What subscribers receive: the latest snapshot, once there is one.
pub type Snapshots = watch::Receiver<Option<Arc<Snapshot>>>;

/// What the runner reports besides snapshots.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A catch-up or refresh failed. A transient failure is retried after `retry_in`; a
    /// logic error when something changes.
    Failed {
        error: String,
        transient: bool,
        failures: u32,
        retry_in: Option<Duration>,
    },
}

/// Why the runner stopped before it could serve.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Session(#[from] SessionError),
    /// What stood in front of the service (the dashboard) failed.
    #[error("{0}")]
    Front(String),
}

/// How the runner runs.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub session: SessionOptions,
    pub schedule: Schedule,
    /// Watch a local feed folder for new files, besides polling on the schedule.
    pub watch_feed: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// Snapshots published.
    pub published: u64,
    /// Whether the stop came during the first catch-up (the state is checkpointed where it
    /// stopped, and the next run goes on from there).
    pub during_catch_up: bool,
    pub ran: Duration,
}

/// The runner: one per state and feed.
pub struct Runner {
    options: RunnerOptions,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    notices: broadcast::Sender<Notice>,
    latest_models: LatestModels,
    touched: TouchedLog,
}

impl Runner {
    pub fn new(options: RunnerOptions) -> Runner {
        Runner {
            options,
            snapshots: watch::Sender::new(None),
            notices: broadcast::Sender::new(64),
            latest_models: LatestModels::default(),
            touched: TouchedLog::default(),
        }
    }

    /// The snapshots, from the latest one published on.
    pub fn subscribe(&self) -> Snapshots {
        self.snapshots.subscribe()
    }

    /// The failures reported from now on.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Open the state, catch up, publish a snapshot; then, until `cancel`, look at the feed
    /// whenever the trigger says so and publish a snapshot after each change. With `once`,
    /// return after the first snapshot (and fail if it cannot be made).
    pub async fn run(
        &self,
        cancel: &CancellationToken,
        once: bool,
    ) -> Result<Stopped, ServiceError> {
        let started = Instant::now();
        let stopped = |published, during_catch_up| Stopped {
            published,
            during_catch_up,
            ran: started.elapsed(),
        };
        // Watching starts before the first catch-up, so that no file landing from now on is
        // missed (it is then either in the first catch-up or triggers the next).
        let feed = self.options.session.feed_location()?;
        let watch = self.options.watch_feed && !once;
        let actions = self.options.session.actions_location()?;
        let trigger = Trigger::new(&feed, &actions, self.options.schedule.clone(), watch);
        let mut failures = Failures::new();
        // A store that cannot be reached at start is waited for (a service); a state or feed
        // that cannot be used ends the run with why.
        let mut session = loop {
            let opening = Session::open(&self.options.session, None, Some(cancel));
            let Some(opened) = until_stopped(cancel, opening).await else {
                return Ok(stopped(0, true));
            };
            match opened {
                Ok(session) => break session,
                Err(e) if e.is_transient() && !once => failures.report(&self.notices, &e),
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(stopped(0, true)),
                _ = tokio::time::sleep(failures.backoff().unwrap_or(STOP_GRACE)) => {}
            }
        };
        failures.clear();
        let first = session.report.take().unwrap_or_default();
        if first.cancelled || cancel.is_cancelled() {
            return Ok(stopped(0, true));
        }
        let mut published = 0;
        match self.refresh(&mut session, first, started, cancel).await {
            Ok(()) => published += 1,
            Err(e) if once => return Err(ServiceError::Session(e)),
            Err(e) => failures.report(&self.notices, &e),
        }
        if once || cancel.is_cancelled() {
            return Ok(stopped(published, false));
        }
        // The first snapshot may have read the ledger's tables as stored; from now on the
        // service keeps its own.
        if let Err(e) = session.keep_ledger() {
            failures.report(&self.notices, &e);
        }
        let opts = session.ingest_options();
        let mut queries = QueriesFolder::new(&session.config.engine.queries);
        let _scorer = consumer::spawn(
            models::Scorer::default(),
            self.subscribe(),
            cancel.clone(),
            |()| {},
        );
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = trigger.next(failures.backoff()) => {}
            }
            let began = Instant::now();
            let catching_up =
                catch_up_until(&mut session.state, &session.feed, &opts, None, Some(cancel));
            let Some(caught_up) = until_stopped(cancel, catching_up).await else {
                break;
            };
            let report = match caught_up {
                Ok(report) => report,
                Err(IngestError::State(StateError::Concurrent { .. })) => {
                    // Another process wrote the next generation: go on from it.
                    let location = session.state.location().clone();
                    let reopened =
                        open_and_catch_up(&location, &session.feed, &opts, None, Some(cancel), 20)
                            .await;
                    match reopened {
                        Ok((state, mut report)) => {
                            session.state = state;
                            // What the other process applied is not in the report.
                            report.touched = Touched::All;
                            report
                        }
                        Err(e) => {
                            failures.report(&self.notices, &ingest_error(&session, e));
                            continue;
                        }
                    }
                }
                Err(e) => {
                    failures.report(&self.notices, &ingest_error(&session, e));
                    continue;
                }
            };
            if report.cancelled {
                break;
            }
            let changed = report.files_applied > 0 || !report.quarantined.is_empty();
            let edited = queries.changed();
            let retry = failures.transient() || (failures.logic() && (changed || edited));
            if !(changed || retry) {
                continue;
            }
            match self.refresh(&mut session, report, began, cancel).await {
                Ok(()) => {
                    published += 1;
                    failures.clear();
                }
                Err(e) => failures.report(&self.notices, &e),
            }
        }
        Ok(stopped(published, false))
    }

    /// Make the engine for the state as it is and publish it with what `report` applied.
    async fn refresh(
        &self,
        session: &mut Session,
        report: CatchUpReport,
        began: Instant,
        cancel: &CancellationToken,
    ) -> Result<(), SessionError> {
        let made = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(()),
            made = session.next_engine() => made,
        };
        let (engine, params) = made?;
        let engine_made = began.elapsed();
        // The latest model tables first: the summary reads the forecast's backtest.
        let latest_models = self
            .latest_models
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stored = stored_models::of(&session.state, &engine, &params, session.risk_options());
        match (latest_models, &stored) {
            (Some(latest), _) => latest.tables.put_into(&engine)?,
            // A restart on a state modelled before: its stored backtest, if any.
            (None, Some(stored)) => {
                ModelTables::put_stored_forecast_accuracy(&engine, stored).await?;
            }
            (None, None) => {}
        }
        let summary = engine.query_planned(KpiSummary::QUERY, None).await?;
        let kpi = KpiSummary::from_rows(&summary.1)?;
        let summarised = began.elapsed();
        let health = Health::of(session.feed.url.as_str(), &session.state)
            .with_missing_rates(&engine, params.as_of)
            .await?;
        tracing::debug!(
            catch_up_s = report.elapsed.as_secs_f64(),
            reads_s = report.read_wait.as_secs_f64(),
            apply_s = report.apply_time.as_secs_f64(),
            checkpoint_s = report.save_time.as_secs_f64(),
            until_engine_s = engine_made.as_secs_f64(),
            summary_s = (summarised - engine_made).as_secs_f64(),
            health_s = (began.elapsed() - summarised).as_secs_f64(),
            "refresh spans"
        );
        let sequence = self.snapshots.borrow().as_ref().map_or(0, |s| s.sequence) + 1;
        {
            let mut log = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            log.push_back((sequence, report.touched.clone()));
            if log.len() > TOUCHED_KEPT {
                log.pop_front();
            }
        }
        let retrain_hours = session.config.risk.retrain_hours.max(0.0);
        let snapshot = Snapshot {
            sequence,
            generation: session.state.checkpoint().generation,
            params,
            refresh: Refresh {
                catch_up: report,
                took: began.elapsed(),
            },
            health,
            kpi,
            results: [(KpiSummary::QUERY.to_string(), summary)].into(),
            engine: Arc::new(engine),
            began,
            models: tokio::sync::OnceCell::new(),
            kept: Default::default(),
            risk_options: session.risk_options(),
            stored,
            latest_models: self.latest_models.clone(),
            touched: self.touched.clone(),
            retrain_every: Duration::from_secs_f64(retrain_hours * 3600.0),
            runtime: tokio::runtime::Handle::current(),
        };
        self.snapshots.send_replace(Some(Arc::new(snapshot)));
        Ok(())
    }
}

/// How long work that was asked to stop may take to finish (a catch-up checkpointing what it
/// applied) before it is dropped (a store that hangs).
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Run `work`, which stops by itself soon after `cancel` (a catch-up does); once cancelled it
/// gets [`STOP_GRACE`] to finish, and is dropped after that (`None`).
async fn until_stopped<F: std::future::Future>(
    cancel: &CancellationToken,
    work: F,
) -> Option<F::Output> {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => Some(done),
        _ = cancel.cancelled() => tokio::time::timeout(STOP_GRACE, work).await.ok(),
    }
}

fn ingest_error(session: &Session, source: IngestError) -> SessionError {
    SessionError::Ingest {
        url: session.config.state.url.clone(),
        source: Box::new(source),
    }
}

/// Consecutive failures: a transient one backs off (0.5 s doubling to 60 s, with jitter); a
/// logic one is reported once until its message changes.
struct Failures {
    count: u32,
    transient: bool,
    last: Option<String>,
    backoff: Option<backon::ExponentialBackoff>,
    next_wait: Option<Duration>,
}

impl Failures {
    fn new() -> Failures {
        Failures {
            count: 0,
            transient: false,
            last: None,
            backoff: None,
            next_wait: None,
        }
    }

    fn report(&mut self, notices: &broadcast::Sender<Notice>, error: &SessionError) {
        let message = error.to_string();
        let transient = error.is_transient();
        self.count += 1;
        self.transient = transient;
        let repeated = self.last.as_deref() == Some(message.as_str());
        self.next_wait = match transient {
            true => self
                .backoff
                .get_or_insert_with(|| {
                    backon::ExponentialBuilder::new()
                        .with_min_delay(Duration::from_millis(500))
                        .with_max_delay(Duration::from_secs(60))
                        .with_jitter()
                        .without_max_times()
                        .build()
                })
                .next(),
            false => None,
        };
        if transient || !repeated {
            let _ = notices.send(Notice::Failed {
                error: message.clone(),
                transient,
                failures: self.count,
                retry_in: self.next_wait,
            });
        }
        self.last = Some(message);
    }

    fn backoff(&self) -> Option<Duration> {
        self.next_wait.filter(|_| self.transient)
    }

    fn transient(&self) -> bool {
        self.count > 0 && self.transient
    }

    fn logic(&self) -> bool {
        self.count > 0 && !self.transient
    }

    fn clear(&mut self) {
        *self = Failures::new();
    }
}

/// The analyst's queries folder, to try a refresh that failed on a view again once a view
/// was edited (and not before).
struct QueriesFolder {
    folder: std::path::PathBuf,
    seen: Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)>,
}

impl QueriesFolder {
    fn new(folder: &str) -> QueriesFolder {
        let folder = std::path::PathBuf::from(folder);
        let seen = Self::files(&folder);
        QueriesFolder { folder, seen }
    }

    fn files(
        folder: &std::path::Path,
    ) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
        let mut out = Vec::new();
        for dir in [folder.to_path_buf(), folder.join("incremental")] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let meta = entry.metadata().ok();
                let size = meta.as_ref().map_or(0, |m| m.len());
                out.push((entry.path(), size, meta.and_then(|m| m.modified().ok())));
            }
        }
        out.sort();
        out
    }

    /// Whether a file was added, removed or changed since the last call.
    fn changed(&mut self) -> bool {
        let now = Self::files(&self.folder);
        let changed = now != self.seen;
        self.seen = now;
        changed
    }
}
