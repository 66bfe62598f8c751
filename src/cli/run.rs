//! `arstream run`: the main job. Catches up with the feed (applying each new file once,
//! quarantining bad ones), checkpoints the state and reports what it did.

use std::process::ExitCode;

use super::status::{print_table, status_of};
use super::{GlobalArgs, Session};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example, on the bundled sample feed:\n  arstream run\n  arstream sql \"SELECT count(*) FROM invoices\""
)]
pub struct RunArgs {}

pub async fn run(global: &GlobalArgs, _args: RunArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(global).await?;
    if let Some(r) = &session.report {
        let secs = r.elapsed.as_secs_f64();
        println!(
            "applied {} new file(s), {} change rows ({} unchanged) in {:.2} s ({:.0} rows/s); {} quarantined, {} unreadable",
            r.files_applied,
            r.rows_applied,
            r.rows_ignored,
            secs,
            (r.rows_applied + r.rows_ignored) as f64 / secs.max(1e-9),
            r.quarantined.len(),
            r.unreadable.len()
        );
        println!(
            "  time: {:.2} s waiting for reads, {:.2} s applying, {:.2} s checkpointing; peak memory {}",
            r.read_wait.as_secs_f64(),
            r.apply_time.as_secs_f64(),
            r.save_time.as_secs_f64(),
            peak_memory().unwrap_or_else(|| "unknown".into())
        );
        for v in &r.quarantined {
            println!("  quarantined [{}] {}", v.code, v.reason());
        }
        println!();
    }
    print_table(&status_of(session.feed.url.as_str(), &session.state));
    Ok(ExitCode::SUCCESS)
}

/// The process's peak resident memory, from /proc (Linux only).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MiB", kib / 1024.0))
}
