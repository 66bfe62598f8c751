//! `arstream pipeline list|validate|run`: the pipelines of `pipelines/*.toml`, for data teams
//! and the orchestrators (cron, Airflow, Dagster) that schedule them.

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalArgs;
use super::run::{INVALID, once, plan};
use crate::config::Config;
use crate::engine::views::{self, ViewSet};
use crate::feed::contract::Entity;
use crate::pipeline::spec::{self, Pipeline, SpecError};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 done (or valid; quarantined files are logged, not failures), 1 failed (the store, the state), 2 invalid pipeline.\n\nExamples:\n  arstream pipeline list\n  arstream pipeline validate\n  arstream pipeline run standard --log-format json"
)]
pub struct PipelineArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List the pipelines: name, schedule, output URL and steps
    List,
    /// Check pipelines (all, or the one named): fields, views, cron expressions, time zones
    Validate {
        /// A pipeline name [default: all]
        name: Option<String>,
    },
    /// Run one refresh of a pipeline now and exit
    Run {
        /// The pipeline's name (its file name without .toml)
        name: String,
    },
}

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
fn load_all(config: &Config) -> Result<Vec<Result<Pipeline, SpecError>>, Invalid> {
    let names = known_views(config)?;
    let folder = PathBuf::from(&config.engine.pipelines);
    Ok(spec::files(&folder)
        .iter()
        .map(|f| spec::load(f, &names))
        .collect())
}

/// The pipeline called `name`, or `standard` when there is such a file and no name is given.
pub(crate) fn find(global: &GlobalArgs, name: Option<&str>) -> Result<Option<Pipeline>, Invalid> {
    let config =
        Config::load(global.config.as_deref()).map_err(|e| Invalid::Config(e.to_string()))?;
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
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    }
    spec::load(&file, &known_views(&config)?)
        .map(Some)
        .map_err(|e| Invalid::Spec(vec![e]))
}

pub async fn run(global: &GlobalArgs, args: PipelineArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(global.config.as_deref())?;
    match args.action {
        Action::List => {
            let all = match load_all(&config) {
                Ok(all) => all,
                Err(e) => return invalid(&e),
            };
            if all.is_empty() {
                println!("no pipelines in {}", config.engine.pipelines);
            }
            for pipeline in all {
                match pipeline {
                    Ok(p) => {
                        let steps: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
                        println!(
                            "{:<16} {:<28} out={} steps={}",
                            p.name,
                            p.schedule.describe(),
                            p.out,
                            steps.join(",")
                        );
                    }
                    Err(e) => println!("{:<16} INVALID {e}", file_stem(&e.file)),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Validate { name } => {
            let all = match load_all(&config) {
                Ok(all) => all,
                Err(e) => return invalid(&e),
            };
            let chosen: Vec<_> = all
                .into_iter()
                .filter(|p| match (&name, p) {
                    (None, _) => true,
                    (Some(n), Ok(p)) => &p.name == n,
                    (Some(n), Err(e)) => file_stem(&e.file) == *n,
                })
                .collect();
            if chosen.is_empty() {
                let e = Invalid::Unknown {
                    name: name.unwrap_or_default(),
                    folder: config.engine.pipelines.clone(),
                    known: "see `arstream pipeline list`".into(),
                };
                return invalid(&e);
            }
            let errors: Vec<SpecError> = chosen
                .iter()
                .filter_map(|p| p.as_ref().err().cloned())
                .collect();
            for p in chosen.iter().flatten() {
                println!(
                    "{}: ok ({}, {} step(s))",
                    p.file.display(),
                    p.schedule.describe(),
                    p.steps.len()
                );
            }
            if errors.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                invalid(&Invalid::Spec(errors))
            }
        }
        Action::Run { name } => {
            let (global, plan) = match plan(global, Some(&name), None, None) {
                Ok(planned) => planned,
                Err(e) => return invalid(&e),
            };
            once(&global, &plan, false).await
        }
    }
}

fn file_stem(file: &str) -> String {
    std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn invalid(e: &Invalid) -> anyhow::Result<ExitCode> {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
    Ok(ExitCode::from(INVALID))
}
