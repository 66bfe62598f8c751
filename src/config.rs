//! `arstream.toml`: where the feed and the state live, and how the engine runs.
//!
//! Every key has a default, so an empty file (or none) works. Relative paths in the file are
//! relative to the file's own folder; relative paths on the command line to the current one.
//! Secrets (cloud credentials, SMTP passwords) never go here: they come from the environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config '{path}': {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config '{path}': {message}")]
    Parse { path: String, message: String },
}

/// The whole configuration, section by section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub feed: FeedConfig,
    pub state: StateConfig,
    pub kpi: KpiConfig,
    pub engine: EngineConfig,
    pub risk: RiskConfig,
    pub actions: ActionsConfig,
    pub publish: PublishConfig,
}

/// `[publish]`: the state published as Delta Lake tables for other engines (see
/// `docs/scale-out.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// A path or an object-store URL. When set, `run` publishes every checkpoint there, and
    /// `arstream publish` publishes there by default. Default: none.
    pub url: Option<String>,
    /// A running service publishes at most this often, in minutes (0: every checkpoint).
    /// Default 0.
    pub every_minutes: f64,
    /// Files a publish replaced are vacuumed after this many hours: how far back a reader
    /// can travel in time. Default 168 (a week, Delta's own default).
    pub retention_hours: f64,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            url: None,
            every_minutes: 0.0,
            retention_hours: 168.0,
        }
    }
}

/// `[actions]`: where what collectors record (contacts, promises, disputes) is written, as
/// change-feed files of its own that the state applies like the ERP's.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// A path or an object-store URL. Default: `actions/` in the state folder.
    pub url: Option<String>,
}

/// `[kpi]`: the parameters of every KPI view (see `queries/README.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// The as-of date: `today`, `feed` (the day of the latest change applied) or `YYYY-MM-DD`.
    /// Default `today`.
    pub as_of: String,
    /// The trailing window in days. Default 90.
    pub window_days: i32,
    /// The reporting currency. Default `USD`.
    pub currency: String,
    /// The currency the feed's FX rates are quoted in (each rate gives its units for one unit
    /// of the row's currency). Another reporting currency converts through cross rates.
    /// Default: `currency` as this file sets it.
    pub rates_currency: Option<String>,
    /// Days after a promised date that a payment still keeps the promise. Default 3.
    pub grace_days: i32,
    /// Upper edges of the past-due aging buckets, in days. Default [30, 60, 90, 120].
    pub bucket_edges: Vec<i32>,
}

impl Default for KpiConfig {
    fn default() -> Self {
        KpiConfig {
            as_of: "today".into(),
            window_days: 90,
            currency: "USD".into(),
            rates_currency: None,
            grace_days: 3,
            bucket_edges: vec![30, 60, 90, 120],
        }
    }
}

/// `[risk]`: the late-payment risk model (see `docs/models.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// An invoice is late when it is paid more than this many days after its due date, or not
    /// at all. Default 30.
    pub late_days: i32,
    /// How far back the training snapshots reach, in days before the training date.
    /// Default 365.
    pub training_days: i32,
    /// The backtest's cut-off, in days before its as-of date. Default 180.
    pub backtest_days: i32,
    /// A running service trains the model again after this many hours (and at a new as-of
    /// date); in between, each refresh rescores only the customers it touched. Default 24.
    pub retrain_hours: f64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            late_days: 30,
            training_days: 365,
            backtest_days: 180,
            retrain_hours: 24.0,
        }
    }
}

/// `[engine]`: the query engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Folder of `.sql` views that replace or add to the built-in ones. Default `queries`.
    pub queries: String,
    /// Folder of pipeline files (`*.toml`). Default `pipelines`.
    pub pipelines: String,
    /// Folder of dashboard layouts (`*.toml`). Default `dashboards`.
    pub dashboards: String,
    /// A Ballista cluster (`df://HOST:PORT`, its scheduler) that `sql` and `kpi` run the
    /// views on, over the published tables (`[publish] url`). Default: none (run here).
    pub cluster: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queries: "queries".into(),
            pipelines: "pipelines".into(),
            dashboards: "dashboards".into(),
            cluster: None,
        }
    }
}

/// `[feed]`: where change files land.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedConfig {
    /// Feed root: a path or an object-store URL. Default `sample-data/feed`.
    pub url: String,
    /// Files read and validated at once while catching up. Default: the number of cores (more
    /// only makes decoding compete with applying, and holds more decoded files in memory).
    pub parallel_reads: usize,
    /// The layout the feed's files are in: `arstream` (the contract's own, the default), `dms`,
    /// `sap` or `debezium` (docs/change-feed.md).
    pub format: crate::feed::format::FeedFormat,
    /// A mapping file: which source table is which entity, which column which (TOML).
    pub map: Option<String>,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            url: "sample-data/feed".into(),
            parallel_reads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            format: Default::default(),
            map: None,
        }
    }
}

/// `[state]`: where current state and checkpoints are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// State folder: a path or an object-store URL. Default `.arstream/state`.
    pub url: String,
    /// Checkpoint after this many files while catching up. Default 500.
    pub checkpoint_every_files: usize,
    /// ... or after this many applied change rows, whichever comes first. Default 4,000,000.
    pub checkpoint_every_rows: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: ".arstream/state".into(),
            checkpoint_every_files: 500,
            checkpoint_every_rows: 4_000_000,
        }
    }
}

/// The file name looked for in the current folder when `--config` is not given.
pub const DEFAULT_FILE: &str = "arstream.toml";

impl Config {
    /// Read `path`, or `./arstream.toml` when it exists, or use the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_FILE), false),
        };
        if !required && !path.exists() {
            return Ok(Config::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.feed.url = resolve(&base, &config.feed.url);
        config.state.url = resolve(&base, &config.state.url);
        config.feed.map = config.feed.map.map(|map| resolve(&base, &map));
        config.publish.url = config.publish.url.map(|url| resolve(&base, &url));
        config.engine.queries = resolve(&base, &config.engine.queries);
        config.engine.pipelines = resolve(&base, &config.engine.pipelines);
        config.engine.dashboards = resolve(&base, &config.engine.dashboards);
        Ok(config)
    }

    /// Parse the text of a config file (paths left as written).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))
    }
}

/// Make a relative path in a config file relative to the file's folder; URLs stay as they are.
pub(crate) fn resolve(base: &Path, location: &str) -> String {
    if location.contains("://") || Path::new(location).is_absolute() || base.as_os_str().is_empty()
    {
        return location.to_string();
    }
    base.join(location).display().to_string()
}
