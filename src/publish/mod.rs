//! Publishing the state as Delta Lake tables, for engines other than arstream (Spark, Trino,
//! DuckDB, Polars, pandas, Ballista's executors): under the publish location, one table per
//! entity with its current rows (`invoices/`, …) and one per `<entity>_changes` with every
//! change row applied (`invoices_changes/`, …).
//!
//! Every commit carries the state's checkpoint generation as a Delta application transaction
//! (`txn`, app id `arstream:<state id>`), read back before the next publish: a table is written only
//! when its entity took files in a later generation, a current-state table replaced in one
//! commit, a changes table appended with exactly the files applied since. So publishing twice,
//! or again after a crash between two tables, never appends a change twice; tables another
//! state published (a state folder rebuilt) are refused, not appended to. Files replaced
//! longer ago than the retention are vacuumed: time travel reaches back that far.

pub mod closed;
mod consumer;
mod delta;

use std::time::{Duration, Instant};

pub use consumer::{PublishConsumer, PublishReport};

use crate::engine::{Engine, EngineError};
use crate::feed::contract::Entity;
use crate::store::Location;

/// The application id of arstream's commits, `arstream:<state id>`: their `txn` version is
/// the state's generation.
fn app_id(state_id: Option<&str>) -> String {
    match state_id {
        Some(id) => format!("arstream:{id}"),
        None => "arstream".to_string(),
    }
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Delta table '{table}' at {url}: {source}")]
    Delta {
        table: String,
        url: String,
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("Delta table '{table}': {source}")]
    Engine { table: String, source: EngineError },
    #[error(
        "Delta table '{table}' at {url} was published from another state than this one ({why}): publish this state to a new location, or remove those tables first"
    )]
    OtherState {
        table: String,
        url: String,
        why: String,
    },
    #[error(
        "{period} is closed already (Delta table {url}): its figures are kept as they were; read them with `SELECT * FROM closed_periods`"
    )]
    Closed { period: String, url: String },
    #[error("cannot make the folder '{path}': {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("nothing to publish: the engine was not refreshed on a state")]
    NoState,
    #[error(
        "nothing to publish: the state has no checkpoint yet (no feed file applied); run without --offline, or once the feed has files"
    )]
    NothingApplied,
}

/// What one publish did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Its rows replaced by the entity's current rows.
    Replaced,
    /// The change rows of this many feed files appended.
    Appended { files: usize },
    /// Nothing new since the generation it holds.
    Unchanged,
}

/// One table of a publish.
#[derive(Debug, Clone)]
pub struct TablePublished {
    pub name: String,
    pub written: Written,
    /// Its Delta version after the publish.
    pub version: u64,
}

/// One publish: the state's generation, each table, how long it took.
#[derive(Debug, Clone)]
pub struct Published {
    /// The publish location.
    pub to: url::Url,
    pub generation: u64,
    pub tables: Vec<TablePublished>,
    /// Files older than the retention removed by vacuuming.
    pub vacuumed: usize,
    pub took: Duration,
}

impl Published {
    /// The tables that took a commit.
    pub fn committed(&self) -> usize {
        (self.tables.iter())
            .filter(|t| t.written != Written::Unchanged)
            .count()
    }
}

/// Where the state is published, and for how long replaced files are kept.
#[derive(Debug, Clone)]
pub struct Publisher {
    to: Location,
    retention: Duration,
}

impl Publisher {
    pub fn new(to: Location, retention: Duration) -> Publisher {
        Publisher { to, retention }
    }

    /// The publisher of `config`'s `[publish]` section, to `url`.
    pub fn of_config(
        url: &str,
        config: &crate::config::PublishConfig,
    ) -> Result<Publisher, crate::store::StoreError> {
        let hours = config.retention_hours.max(0.0);
        let retention = Duration::try_from_secs_f64(hours * 3600.0).unwrap_or(Duration::MAX);
        Ok(Publisher::new(crate::store::open(url, true)?, retention))
    }

    /// How often a service publishes at most (`[publish] every_minutes`; none: every
    /// checkpoint).
    pub fn every(config: &crate::config::PublishConfig) -> Option<Duration> {
        let minutes = config.every_minutes;
        (minutes > 0.0)
            .then(|| Duration::try_from_secs_f64(minutes * 60.0).unwrap_or(Duration::MAX))
    }

    /// The publish location as opened.
    pub fn location(&self) -> &Location {
        &self.to
    }

    /// Keep `engine`'s KPI summary as the figures of `period` (see [`closed`]).
    pub async fn close(
        &self,
        engine: &Engine,
        period: closed::Period,
        known_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<arrow::array::RecordBatch>, PublishError> {
        closed::close(engine, &self.to, period, known_at, self.retention).await
    }

    /// Publish what `engine` was refreshed on, the state at its checkpoint: every entity's
    /// current rows and change rows the tables do not hold yet.
    pub async fn publish(&self, engine: &Engine) -> Result<Published, PublishError> {
        let started = Instant::now();
        let log = engine.change_log().ok_or(PublishError::NoState)?;
        let generation = log.generation;
        // Before its first checkpoint a state has no identity to mark commits with.
        if generation == 0 {
            return Err(PublishError::NothingApplied);
        }
        let state = Publishing {
            engine,
            log: &log,
            generation,
            app_id: app_id(log.state_id.as_deref()),
        };
        let mut tables = Vec::new();
        let mut vacuumed = 0;
        for entity in Entity::ALL {
            for changes in [false, true] {
                let (table, removed) = self.table(&state, entity, changes).await?;
                tables.push(table);
                vacuumed += removed;
            }
        }
        Ok(Published {
            to: self.to.url.clone(),
            generation,
            tables,
            vacuumed,
            took: started.elapsed(),
        })
    }

    /// Publish one table: `entity`'s current rows, or its changes; what was written, and how
    /// many old files vacuuming removed.
    async fn table(
        &self,
        state: &Publishing<'_>,
        entity: Entity,
        changes: bool,
    ) -> Result<(TablePublished, usize), PublishError> {
        let name = match changes {
            true => format!("{}_changes", entity.name()),
            false => entity.name().to_string(),
        };
        let mut table = delta::Table::open(&self.to, &name, &state.app_id, self.retention).await?;
        let generation = state.generation;
        let published = match table.generation().await? {
            Some(published) if published <= generation => published,
            None if !table.exists() => 0,
            other => {
                let why = match other {
                    Some(p) => format!("generation {p}, newer than this state's {generation}"),
                    None => "its commits are not this state's".to_string(),
                };
                let url = table.url();
                return Err(PublishError::OtherState {
                    table: name,
                    url,
                    why,
                });
            }
        };
        let new_files = state.log.files_after(entity, published).len();
        let written = match (table.exists() && new_files == 0, changes) {
            (true, _) => Written::Unchanged,
            (false, true) => Written::Appended { files: new_files },
            (false, false) => Written::Replaced,
        };
        let failed = |source: EngineError| PublishError::Engine {
            table: name.clone(),
            source,
        };
        let plan = match written {
            Written::Unchanged => None,
            Written::Replaced => {
                let rows = state.engine.ctx.sql(&format!("SELECT * FROM {name}")).await;
                Some(rows.map_err(|e| failed(e.into()))?.into_unoptimized_plan())
            }
            Written::Appended { .. } => {
                let partitions = state.engine.ctx.copied_config().target_partitions();
                let rows =
                    (state.log.table(entity, published, partitions.max(1))).map_err(failed)?;
                let read = state.engine.ctx.read_table(rows);
                Some(read.map_err(|e| failed(e.into()))?.into_unoptimized_plan())
            }
        };
        let mut vacuumed = 0;
        if let Some(plan) = plan {
            match changes {
                true => table.append(state.engine, plan, generation).await?,
                false => table.replace(state.engine, plan, generation).await?,
            }
            vacuumed = table.vacuum().await?;
        }
        let version = table.version();
        Ok((
            TablePublished {
                name,
                written,
                version,
            },
            vacuumed,
        ))
    }
}

/// One publish's engine, the feed files its state applied, its generation and the app id its
/// commits are marked with.
struct Publishing<'a> {
    engine: &'a Engine,
    log: &'a crate::engine::tables::ChangeLog,
    generation: u64,
    app_id: String,
}
