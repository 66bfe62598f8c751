//! Publishing the state as Delta Lake tables, for engines other than arstream (Spark, Trino,
//! DuckDB, Polars, pandas, Ballista's executors): under the publish location, one table per
//! entity with its current rows (`invoices/`, …) and one per `<entity>_changes` with every
//! change row applied (`invoices_changes/`, …).
//!
//! Every commit carries the state's checkpoint generation as a Delta application transaction
//! (`txn`, app id [`APP_ID`]), read back before the next publish: a table is written only
//! when its entity took files in a later generation, a current-state table replaced in one
//! commit, a changes table appended with exactly the files applied since. So publishing twice,
//! or again after a crash between two tables, never appends a change twice. Files replaced
//! longer ago than the retention are vacuumed: time travel reaches back that far.

mod consumer;
mod delta;

use std::time::{Duration, Instant};

pub use consumer::{PublishConsumer, PublishReport};

use crate::engine::{Engine, EngineError};
use crate::feed::contract::Entity;
use crate::store::Location;

/// The application id of arstream's commits: their `txn` version is the state's generation.
pub const APP_ID: &str = "arstream";

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
        "Delta table '{table}' at {url} was published from a state at generation {published}, newer than this state's {generation}: a state rebuilt from the feed publishes to a new location (or remove those tables first)"
    )]
    OtherState {
        table: String,
        url: String,
        published: u64,
        generation: u64,
    },
    #[error("cannot make the folder '{path}': {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("nothing to publish: the engine was not refreshed on a state")]
    NoState,
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

    /// The publish location.
    pub fn to(&self) -> &url::Url {
        &self.to.url
    }

    /// Publish what `engine` was refreshed on, the state at checkpoint `generation`: every
    /// entity's current rows and change rows the tables do not hold yet.
    pub async fn publish(
        &self,
        engine: &Engine,
        generation: u64,
    ) -> Result<Published, PublishError> {
        let started = Instant::now();
        let log = engine.change_log().ok_or(PublishError::NoState)?;
        let partitions = engine.ctx.copied_config().target_partitions().max(1);
        let mut tables = Vec::new();
        let mut vacuumed = 0;
        for entity in Entity::ALL {
            let current = entity.name().to_string();
            let changes = format!("{current}_changes");
            for name in [current, changes] {
                let table = delta::Table::open(&self.to, &name).await?;
                let published = table.generation().await?;
                if published > generation {
                    return Err(PublishError::OtherState {
                        table: name,
                        url: table.url(),
                        published,
                        generation,
                    });
                }
                let new_files = log.files_after(entity, published).len();
                let written = if table.exists() && new_files == 0 {
                    Written::Unchanged
                } else if name.ends_with("_changes") {
                    Written::Appended { files: new_files }
                } else {
                    Written::Replaced
                };
                let table = match &written {
                    Written::Unchanged => table,
                    Written::Replaced => {
                        let sql = format!("SELECT * FROM {name}");
                        let plan = plan(engine, &name, &sql).await?;
                        table.replace(engine, plan, generation).await?
                    }
                    Written::Appended { .. } => {
                        let rows =
                            (log.table(entity, published, partitions)).map_err(|source| {
                                PublishError::Engine {
                                    table: name.clone(),
                                    source,
                                }
                            })?;
                        let plan = (engine.ctx.read_table(rows))
                            .map_err(|e| PublishError::Engine {
                                table: name.clone(),
                                source: e.into(),
                            })?
                            .into_unoptimized_plan();
                        table.append(engine, plan, generation).await?
                    }
                };
                let table = match written {
                    Written::Unchanged => table,
                    _ => {
                        let (table, removed) = table.vacuum(self.retention).await?;
                        vacuumed += removed;
                        table
                    }
                };
                tables.push(TablePublished {
                    name,
                    written,
                    version: table.version(),
                });
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
}

/// The logical plan of `sql` over `engine`.
async fn plan(
    engine: &Engine,
    table: &str,
    sql: &str,
) -> Result<datafusion::logical_expr::LogicalPlan, PublishError> {
    let failed = |source: EngineError| PublishError::Engine {
        table: table.to_string(),
        source,
    };
    let df = engine.ctx.sql(sql).await.map_err(|e| failed(e.into()))?;
    Ok(df.into_unoptimized_plan())
}
