//! `arstream publish`: the state, caught up with the feed, published once as Delta Lake tables.

use std::process::ExitCode;

use anyhow::Context;

use super::{GlobalArgs, LogFormat};
use crate::publish::{Published, Publisher, Written};
use crate::service::session::refuse_inside_feed;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "One Delta table per entity (its current rows) and per <entity>_changes (every change row applied) under the location; each table's commit carries the state's checkpoint generation, so publishing again appends no change twice. Replaced files are vacuumed after [publish] retention_hours (default 168). `run` publishes at every checkpoint when [publish] url is set (or with --publish). See docs/scale-out.md.\n\nExamples:\n  arstream publish --to ./published\n  arstream --offline publish --to s3://lake/arstream\n  python -c \"import deltalake; print(deltalake.DeltaTable('published/invoices').to_pandas())\""
)]
pub struct PublishArgs {
    /// Where: a folder or an object-store URL (s3://, gs://, az://) [default: from config
    /// [publish] url]
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let options = global.session_options();
    let config = options.config_file()?;
    let Some(url) = args.to.or(config.publish.url.clone()) else {
        eprintln!(
            "error: nowhere to publish: give --to URL, or url = \"…\" under [publish] in the config"
        );
        return Ok(ExitCode::from(super::INVALID));
    };
    let publisher = Publisher::of_config(&url, &config.publish)?;
    refuse_inside_feed(
        &options.feed_location()?,
        publisher.location(),
        "publish location",
    )?;
    let mut session = super::open_session(global).await?;
    let (engine, _) = session.engine_for_query("SELECT * FROM invoices").await?;
    let published = (publisher.publish(&engine).await)
        .with_context(|| format!("publishing to {}", publisher.location().url))?;
    print_published(&published, global.log_format, true);
    Ok(ExitCode::SUCCESS)
}

/// A publish for people (one line, and a line per table when `tables`) or as one JSON object.
pub(crate) fn print_published(p: &Published, format: LogFormat, tables: bool) {
    let to = &p.to;
    let seconds = p.took.as_secs_f64();
    if format == LogFormat::Json {
        let tables: Vec<serde_json::Value> = (p.tables.iter())
            .map(|t| serde_json::json!({"table": t.name, "written": written(&t.written), "version": t.version}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"event": "published", "to": to.as_str(), "generation": p.generation, "committed": p.committed(), "vacuumed": p.vacuumed, "seconds": seconds, "tables": tables})
        );
        return;
    }
    println!(
        "published generation {} to {to}: {} table(s) committed, {} unchanged, {} old file(s) vacuumed, in {seconds:.2} s",
        p.generation,
        p.committed(),
        p.tables.len() - p.committed(),
        p.vacuumed
    );
    if tables {
        for t in &p.tables {
            println!(
                "  {:<24} version {:>4}  {}",
                t.name,
                t.version,
                written(&t.written)
            );
        }
    }
}

fn written(w: &Written) -> String {
    match w {
        Written::Replaced => "replaced".into(),
        Written::Appended { files } => format!("appended {files} file(s)"),
        Written::Unchanged => "unchanged".into(),
    }
}
