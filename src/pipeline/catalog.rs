//! The pipelines of a config's folder (`pipelines/*.toml`): finding one by name, checking them
//! all, and merging one with the command line into what a run does.

use std::path::PathBuf;
use std::time::Duration;

use super::spec::{self, Pipeline, Schedule, SpecError, Step};
use crate::config::Config;
use crate::engine::views::{self, ViewSet};
use crate::feed::contract::Entity;
use crate::service::session::SessionOptions;

/// A pipeline that cannot be used, with every reason.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Spec(Vec<SpecError>),
    #[error("no pipeline '{name}' in {folder} (there: {known})")]
    Unknown {
        name: String,
        folder: String,
        known: String,
    },
    #[error("{0}")]
    Config(String),
}

/// The names a step may read: the views of the queries folder and the state's tables.
fn known_views(config: &Config) -> Result<Vec<String>, Invalid> {
    let folder = PathBuf::from(&config.engine.queries);
    let views = views::load(Some(&folder), ViewSet::Incremental)
        .map_err(|e| Invalid::Config(e.to_string()))?;
    let mut names: Vec<String> = views.into_iter().map(|v| v.name).collect();
    for entity in Entity::ALL {
        names.push(entity.name().to_string());
        names.push(format!("{}_changes", entity.name()));
    }
    names.extend(["params".to_string(), "aging_buckets".to_string()]);
    Ok(names)
}

/// Every pipeline file of the config's folder, each loaded and checked.
pub fn load_all(config: &Config) -> Result<Vec<Result<Pipeline, SpecError>>, Invalid> {
    let names = known_views(config)?;
    let folder = PathBuf::from(&config.engine.pipelines);
    Ok(spec::files(&folder)
        .iter()
        .map(|f| spec::load(f, &names))
        .collect())
}

/// The pipeline called `name`, or `standard` when there is such a file and no name is given.
pub fn find(config: &Config, name: Option<&str>) -> Result<Option<Pipeline>, Invalid> {
    // A path (`./mine.toml`, `ops/nightly.toml`) is read where it is.
    if let Some(path) = name.filter(|n| n.ends_with(".toml") || n.contains('/')) {
        let file = PathBuf::from(path);
        if !file.is_file() {
            return Err(Invalid::Config(format!("no pipeline file '{path}'")));
        }
        return spec::load(&file, &known_views(config)?)
            .map(Some)
            .map_err(|e| Invalid::Spec(vec![e]));
    }
    let folder = PathBuf::from(&config.engine.pipelines);
    let wanted = name.unwrap_or("standard");
    let file = folder.join(format!("{wanted}.toml"));
    if !file.exists() {
        if name.is_none() {
            return Ok(None);
        }
        let known: Vec<String> = spec::files(&folder)
            .iter()
            .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        return Err(Invalid::Unknown {
            name: wanted.to_string(),
            folder: folder.display().to_string(),
            known: match known.is_empty() {
                true => "none".into(),
                false => known.join(", "),
            },
        });
    }
    spec::load(&file, &known_views(config)?)
        .map(Some)
        .map_err(|e| Invalid::Spec(vec![e]))
}

/// What a run does: where (the session), what (the steps, written under `out`) and when.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pipeline: Option<Pipeline>,
    pub session: SessionOptions,
    pub steps: Vec<Step>,
    pub out: Option<String>,
    pub schedule: Schedule,
    /// Where the service publishes the state as Delta tables (`--publish`, or the config's
    /// `[publish] url`).
    pub publish: Option<String>,
}

/// The pipeline named (or the default one) merged with the command line: the command line
/// wins over the pipeline, which wins over the config.
pub fn plan(
    session: &SessionOptions,
    name: Option<&str>,
    out: Option<&str>,
    interval: Option<Duration>,
) -> Result<Plan, Invalid> {
    let config = session
        .config_file()
        .map_err(|e| Invalid::Config(e.to_string()))?;
    let pipeline = find(&config, name)?;
    let mut session = session.clone();
    let mut steps = super::outputs::standard_steps();
    // Without a pipeline file: a poll every second (object stores are polled; a local feed
    // is also watched).
    let mut schedule = Schedule::Every(Duration::from_secs(1));
    let mut out = out.map(str::to_string);
    if let Some(p) = &pipeline {
        session.feed = session.feed.or_else(|| p.feed.clone());
        session.state = session.state.or_else(|| p.state.clone());
        session.as_of = session.as_of.or_else(|| p.as_of.clone());
        out = out.or_else(|| p.out.clone());
        steps = p.steps.clone();
        schedule = p.schedule.clone();
    }
    if let Some(every) = interval {
        schedule = Schedule::Every(every);
    }
    if let (Some(p), None) = (&pipeline, &out)
        && !p.steps.is_empty()
    {
        return Err(Invalid::Config(format!(
            "{}: its steps have nowhere to go: give out = \"…\" in it, or --out",
            p.file.display()
        )));
    }
    Ok(Plan {
        pipeline,
        session,
        steps,
        out,
        schedule,
        publish: config.publish.url.clone(),
    })
}
