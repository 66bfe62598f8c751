//! `arstream status`: what has been applied, what was quarantined and why, rows per table.

use std::process::ExitCode;

use super::GlobalArgs;
use crate::service::health::Health;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

pub async fn run(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let mut session = super::open_session(global).await?;
    let health = Health::of(session.feed.url.as_str(), &session.state);
    let (engine, params) = session.engine_without_aging().await?;
    let status = health.with_missing_rates(&engine, params.as_of).await?;
    match args.format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        StatusFormat::Table => print_table(&status),
    }
    Ok(ExitCode::SUCCESS)
}

/// The status for people.
pub fn print_table(status: &Health) {
    println!("feed   {}", status.feed);
    println!("state  {} (generation {})", status.state, status.generation);
    println!();
    println!("files applied      {}", status.files_applied);
    println!("files quarantined  {}", status.files_quarantined.len());
    for q in &status.files_quarantined {
        println!("  [{}] {}", q.code, q.reason);
    }
    if !status.files_changing_nothing.is_empty() {
        println!(
            "files that changed nothing  {} (every change older than, or the same as, what the state held for its key, by _seq: docs/change-feed.md)",
            status.files_changing_nothing.len()
        );
        for f in &status.files_changing_nothing {
            println!("  {f}");
        }
    }
    for d in &status.damaged_checkpoints {
        println!("  ! damaged state file skipped: {d}");
    }
    for m in &status.missing_fx_rates {
        println!(
            "  ! no FX rate for {} at {}: {} invoice(s) (open or paid) left out of reporting-currency totals",
            m.currency, m.as_of, m.invoices
        );
    }
    println!();
    println!("{:<14} {:>12}  last change (UTC)", "table", "rows");
    for (name, rows) in &status.tables {
        let last = status
            .last_change
            .get(name)
            .map(String::as_str)
            .unwrap_or("-");
        println!("{name:<14} {rows:>12}  {last}");
    }
}
