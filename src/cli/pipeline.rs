//! `arstream pipeline list|validate|run`: the pipelines of `pipelines/*.toml`, for data teams
//! and the orchestrators (cron, Airflow, Dagster) that schedule them.

use std::process::ExitCode;

use super::GlobalArgs;
use super::INVALID;
use super::run::once;
use crate::pipeline::catalog::{Invalid, load_all, plan};
use crate::pipeline::spec::SpecError;

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
    /// Check pipelines (all, or the one named): fields, views, cron expressions (with their
    /// next three runs), time zones, that each step's SQL plans, and that the output and
    /// state folders lie outside the feed
    Validate {
        /// A pipeline name [default: all]
        name: Option<String>,
    },
    /// Run one refresh of a pipeline now and exit
    Run {
        /// The pipeline's name (its file name without .toml), or the path of a pipeline file
        /// (./mine.toml)
        name: String,
        /// Output URL [default: the pipeline's out]
        #[arg(long)]
        out: Option<String>,
    },
}

pub async fn run(global: &GlobalArgs, args: PipelineArgs) -> anyhow::Result<ExitCode> {
    let config = global.session_options().config_file()?;
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
                            p.out.as_deref().unwrap_or("(--out)"),
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
            let mut errors: Vec<SpecError> = chosen
                .iter()
                .filter_map(|p| p.as_ref().err().cloned())
                .collect();
            for p in chosen.iter().flatten() {
                let found = crate::pipeline::check::check(&config, p).await;
                if !found.is_empty() {
                    errors.extend(found);
                    continue;
                }
                println!(
                    "{}: ok ({}, {} step(s))",
                    p.file.display(),
                    p.schedule.describe(),
                    p.steps.len()
                );
                let next = p.schedule.next_runs(chrono::Utc::now(), 3);
                if !next.is_empty() {
                    println!("  next runs: {}", next.join(", "));
                }
            }
            if errors.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                invalid(&Invalid::Spec(errors))
            }
        }
        Action::Run { name, out } => {
            let plan = match plan(&global.session_options(), Some(&name), out.as_deref(), None) {
                Ok(plan) => plan,
                Err(e) => return invalid(&e),
            };
            once(&plan, false, global.log_format).await
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
