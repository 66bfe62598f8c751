//! What every command and the service work on: the config, the feed, the state (caught up
//! unless offline), and engines over it for the KPI parameters asked for.

use crate::feed::format::{FeedFormat, FeedReader, Mapping, MappingError};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::engine::params::KpiParams;
use crate::engine::views::ViewSet;
use crate::engine::{Engine, EngineError};
use crate::ingest::{
    CatchUpReport, IngestError, IngestOptions, Progress, open_and_catch_up, open_state,
};
use crate::state::State;
use crate::store::{self, Location, StoreError};

/// Where the feed and state are and which KPI parameters to use, over the config file's.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The config file [default: ./arstream.toml when it exists].
    pub config: Option<PathBuf>,
    pub feed: Option<String>,
    pub state: Option<String>,
    /// Load the state as last checkpointed, without looking for new feed files.
    pub offline: bool,
    /// `YYYY-MM-DD`, `today` or `feed`.
    pub as_of: Option<String>,
    pub window: Option<i32>,
    pub currency: Option<String>,
    /// The plain reference views instead of the ledger.
    pub plain: bool,
    /// Late means paid more than this many days after due (`[risk] late_days`).
    pub late_days: Option<i32>,
    /// The feed's format (`[feed] format`).
    pub feed_format: Option<FeedFormat>,
    /// The feed's mapping file (`[feed] map`).
    pub feed_map: Option<PathBuf>,
    /// The config file as read the first time it was asked for, shared by these options'
    /// clones: a command reads it once.
    pub loaded: Arc<OnceLock<Config>>,
    /// Who is working (`--as`, `ARSTREAM_USER`): the collector's id on every action recorded.
    pub who: Option<String>,
}

impl SessionOptions {
    /// The config file (`config`, or `./arstream.toml` when it exists, or the defaults), read
    /// on the first ask.
    pub fn config_file(&self) -> Result<Config, ConfigError> {
        if let Some(config) = self.loaded.get() {
            return Ok(config.clone());
        }
        let config = Config::load(self.config.as_deref())?;
        Ok(self.loaded.get_or_init(|| config).clone())
    }

    /// The feed these options name (or their config file does), opened.
    /// Where collectors' actions are written: `[actions] url`, or the state folder's
    /// `actions/`.
    pub fn actions_location(&self) -> Result<Location, SessionError> {
        let config = self.config_file()?;
        let (url, folder) = match config.actions.url {
            Some(url) => (url, None),
            None => (
                self.state.clone().unwrap_or(config.state.url),
                Some("actions"),
            ),
        };
        let location = store::open(&url, true).map_err(|source| SessionError::Open {
            what: "actions feed",
            url,
            source: Box::new(source),
        })?;
        Ok(folder.map_or_else(|| location.clone(), |f| location.folder(f)))
    }

    pub fn feed_location(&self) -> Result<Location, SessionError> {
        let config = self.config_file()?;
        let url = self.feed.clone().unwrap_or(config.feed.url);
        store::open(&url, false).map_err(|source| SessionError::Open {
            what: "feed",
            url,
            source: Box::new(source),
        })
    }
}

/// Why a session could not be opened or its engine made.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("cannot open {what} '{url}': {source}")]
    Open {
        what: &'static str,
        url: String,
        source: Box<StoreError>,
    },
    #[error(
        "the {what} '{inner}' is inside the feed '{feed}' (as '{relative}'): its files would be read as feed files; put it outside the feed, or in a folder whose name starts with '.'"
    )]
    InsideFeed {
        what: &'static str,
        inner: String,
        feed: String,
        relative: String,
    },
    #[error("state '{url}': {source}")]
    Ingest {
        url: String,
        source: Box<IngestError>,
    },
    #[error("--as-of '{0}' is not a date (YYYY-MM-DD, today or feed)")]
    AsOf(String),
    #[error("late days must be 0 or more (--late-days, [risk] late_days), not {0}")]
    LateDays(i32),
    #[error(
        "no published state to read (as known at a time, or on a cluster): give --published URL, or url = \"…\" under [publish] in the config"
    )]
    NotPublished,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl SessionError {
    /// Whether trying again later may work (the store could not be reached).
    pub fn is_transient(&self) -> bool {
        match self {
            SessionError::Ingest { source, .. } => source.is_transient(),
            SessionError::Engine(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// The config, the feed and the state, opened and (unless offline) caught up.
pub struct Session {
    pub config: Config,
    pub feed: Location,
    pub state: State,
    /// What the catch-up of opening did (none when offline).
    pub report: Option<CatchUpReport>,
    /// The plain reference views instead of the ledger.
    pub plain: bool,
    /// The last engine of [`Session::next_engine`], for the next to share its catalog.
    previous: Option<crate::engine::Seed>,
}

impl Session {
    /// Open the config, feed and state, and catch up with the feed unless `offline`. A
    /// cancellation stops the catch-up after the file in flight, with what was applied
    /// checkpointed.
    pub async fn open(
        options: &SessionOptions,
        progress: Option<Progress<'_>>,
        cancel: Option<&CancellationToken>,
    ) -> Result<Session, SessionError> {
        let mut config = options.config_file()?;
        if let Some(feed) = &options.feed {
            config.feed.url = feed.clone();
        }
        if let Some(state) = &options.state {
            config.state.url = state.clone();
        }
        if let Some(format) = options.feed_format {
            config.feed.format = format;
        }
        if let Some(map) = &options.feed_map {
            config.feed.map = Some(map.display().to_string());
        }
        let open = |what: &'static str, url: &str, create: bool| {
            store::open(url, create).map_err(|source| SessionError::Open {
                what,
                url: url.to_string(),
                source: Box::new(source),
            })
        };
        let feed = open("feed", &config.feed.url, false)?;
        let state_location = open("state folder", &config.state.url, true)?;
        refuse_inside_feed(&feed, &state_location, "state folder")?;
        let opts = ingest_options(&config)?;
        let ingest_error = |source| SessionError::Ingest {
            url: config.state.url.clone(),
            source: Box::new(source),
        };
        let (state, report) = if options.offline {
            let state = open_state(state_location, &feed, &opts)
                .await
                .map_err(ingest_error)?;
            (state, None)
        } else {
            let (state, report) =
                open_and_catch_up(&state_location, &feed, &opts, progress, cancel, 20)
                    .await
                    .map_err(ingest_error)?;
            (state, Some(report))
        };
        if let Some(as_of) = &options.as_of {
            config.kpi.as_of = as_of.clone();
        }
        if let Some(window) = options.window {
            config.kpi.window_days = window;
        }
        if let Some(late_days) = options.late_days {
            config.risk.late_days = late_days;
        }
        if config.risk.late_days < 0 {
            return Err(SessionError::LateDays(config.risk.late_days));
        }
        // Rates stay quoted in the file's currency when --currency asks for another.
        (config.kpi.rates_currency).get_or_insert_with(|| config.kpi.currency.clone());
        if let Some(currency) = &options.currency {
            config.kpi.currency = currency.clone();
        }
        Ok(Session {
            config,
            feed,
            state,
            report,
            plain: options.plain,
            previous: None,
        })
    }

    /// How catch-ups of this session checkpoint and read.
    pub fn ingest_options(&self) -> IngestOptions {
        let reader = self.state.reader().clone();
        IngestOptions {
            reader,
            ..ingest_settings(&self.config)
        }
    }

    /// The KPI parameters from the config and options, with `as_of` resolved.
    pub fn kpi_params(&self) -> Result<KpiParams, SessionError> {
        let k = &self.config.kpi;
        let as_of = match k.as_of.as_str() {
            "today" => chrono::Utc::now().date_naive(),
            "feed" => (self.state.checkpoint().last_change.values())
                .max()
                .map(|t| t.date_naive())
                .unwrap_or_else(|| chrono::Utc::now().date_naive()),
            date => chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| SessionError::AsOf(date.to_string()))?,
        };
        Ok(KpiParams {
            as_of,
            window_days: k.window_days,
            currency: k.currency.clone(),
            rates_currency: (k.rates_currency.clone()).unwrap_or_else(|| k.currency.clone()),
            grace_days: k.grace_days,
            bucket_edges: k.bucket_edges.clone(),
        })
    }

    /// What the risk model is asked, from `[risk]`.
    pub fn risk_options(&self) -> crate::models::risk::RiskOptions {
        crate::models::risk::RiskOptions {
            late_days: self.config.risk.late_days,
            training_days: self.config.risk.training_days,
            backtest_days: self.config.risk.backtest_days,
        }
    }

    /// A query engine over the state, with the views made for the current parameters.
    pub async fn engine(&mut self) -> Result<(Engine, KpiParams), SessionError> {
        self.engine_for(true, None).await
    }

    /// Build the KPI ledger now if the engine read its tables as stored: the service keeps it
    /// up to date as files apply from then on, so the first file to land after a start does
    /// not pay a pass over the whole state (seconds at 10 M invoices).
    pub fn keep_ledger(&mut self) -> Result<(), SessionError> {
        if self.plain {
            return Ok(());
        }
        let params = self.kpi_params()?;
        let pin = crate::dates::days(params.as_of);
        self.state.ledger(params.grace_days, Some(pin));
        Ok(())
    }

    /// [`Session::engine`] for a service, which makes one at every refresh: the views of the
    /// last one (planned once) and its kept plans are used again, over the new rows, unless a
    /// view was edited or a table grew a column since.
    pub async fn next_engine(&mut self) -> Result<(Engine, KpiParams), SessionError> {
        let params = self.kpi_params()?;
        let fresh = self.new_engine()?;
        if let Some(engine) = self.previous.take().and_then(|seed| fresh.following(seed)) {
            match engine.refresh(&mut self.state, &params).await {
                Ok(()) => {
                    self.previous = Some(engine.seed());
                    return Ok((engine, params));
                }
                Err(EngineError::Reshaped(why)) => {
                    tracing::debug!(why, "the engine's views are made again");
                }
                Err(e) => return Err(e.into()),
            }
        }
        fresh.refresh(&mut self.state, &params).await?;
        self.previous = Some(fresh.seed());
        Ok((fresh, params))
    }

    /// An engine with the views of the queries folder as they are now, no rows yet.
    fn new_engine(&self) -> Result<Engine, SessionError> {
        self.engine_with(match self.plain {
            true => ViewSet::Plain,
            false => ViewSet::Incremental,
        })
    }

    /// An engine with `views` of the queries folder, no rows yet.
    fn engine_with(&self, views: ViewSet) -> Result<Engine, SessionError> {
        let folder = std::path::Path::new(&self.config.engine.queries);
        Ok(Engine::new().with_queries(Some(folder), views)?)
    }

    /// The same, with per-customer aging left out of the ledger (for commands that never
    /// read `aging`: a pass over the invoices saved).
    pub async fn engine_without_aging(&mut self) -> Result<(Engine, KpiParams), SessionError> {
        self.engine_for(false, None).await
    }

    /// An engine over the state as published (`published`, or `[publish] url`): the plain
    /// views over each published table as it was at `at`, or at its latest version (see
    /// [`crate::engine::published`]), run here or on the Ballista cluster of scheduler
    /// `cluster` (see [`crate::engine::cluster`]).
    pub async fn engine_published(
        &self,
        at: Option<chrono::DateTime<chrono::Utc>>,
        published: Option<&str>,
        cluster: Option<&str>,
    ) -> Result<(Engine, KpiParams), SessionError> {
        let url = (published.map(str::to_string))
            .or_else(|| self.config.publish.url.clone())
            .ok_or(SessionError::NotPublished)?;
        let to = store::open(&url, false).map_err(|source| SessionError::Open {
            what: "published state",
            url: url.clone(),
            source: Box::new(source),
        })?;
        let params = self.kpi_params()?;
        let engine = match cluster {
            Some(cluster) => {
                let folder = std::path::Path::new(&self.config.engine.queries);
                Engine::on_cluster(cluster)?.with_queries(Some(folder), ViewSet::Plain)?
            }
            None => self.engine_with(ViewSet::Plain)?,
        };
        engine.refresh_as_known(&to, at, &params).await?;
        Ok((engine, params))
    }

    /// The Ballista cluster to run on: `given`, or the config's `[engine] cluster`.
    pub fn cluster(&self, given: Option<&str>) -> Option<String> {
        (given.map(str::to_string)).or_else(|| self.config.engine.cluster.clone())
    }

    /// An engine for one query: without the ledger when the query does not read it.
    pub async fn engine_for_query(
        &mut self,
        sql: &str,
    ) -> Result<(Engine, KpiParams), SessionError> {
        self.engine_for(true, Some(sql)).await
    }

    async fn engine_for(
        &mut self,
        pin_aging: bool,
        query: Option<&str>,
    ) -> Result<(Engine, KpiParams), SessionError> {
        let params = self.kpi_params()?;
        let mut engine = self.new_engine()?;
        if !pin_aging {
            engine = engine.without_aging_pin();
        }
        if query.is_some_and(|sql| !engine.reads_ledger(sql)) {
            engine = engine.without_ledger();
        }
        engine.refresh(&mut self.state, &params).await?;
        Ok((engine, params))
    }
}

/// How catch-ups of `config` checkpoint and read, its mapping file loaded.
fn ingest_options(config: &Config) -> Result<IngestOptions, SessionError> {
    let mapping = match &config.feed.map {
        Some(path) => Some(Mapping::load(std::path::Path::new(path))?),
        None => None,
    };
    let actions = match &config.actions.url {
        Some(url) => Some(store::open(url, true).map_err(|source| SessionError::Open {
            what: "actions feed",
            url: url.clone(),
            source: Box::new(source),
        })?),
        None => None,
    };
    Ok(IngestOptions {
        reader: FeedReader::new(config.feed.format, mapping),
        actions,
        ..ingest_settings(config)
    })
}

fn ingest_settings(config: &Config) -> IngestOptions {
    IngestOptions {
        checkpoint_every_files: config.state.checkpoint_every_files.max(1),
        checkpoint_every_rows: config.state.checkpoint_every_rows.max(1),
        parallel_reads: config.feed.parallel_reads.max(1),
        reader: FeedReader::default(),
        actions: None,
    }
}

/// Refuse a state or output folder that feed discovery would read as feed files (its
/// quarantine copies and outputs would be applied, or quarantined, as changes).
pub fn refuse_inside_feed(
    feed: &Location,
    folder: &Location,
    what: &'static str,
) -> Result<(), SessionError> {
    match feed.visible_inside(folder) {
        None => Ok(()),
        Some(relative) => Err(SessionError::InsideFeed {
            what,
            inner: folder.url.to_string(),
            feed: feed.url.to_string(),
            relative,
        }),
    }
}
