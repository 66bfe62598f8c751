//! `arstream run`: the main job. Catches up with the feed (applying each new file once,
//! quarantining bad ones), checkpoints the state and reports what it did; with `--watch` it
//! keeps polling the feed and logs one line per refresh until Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::status::{print_table, status_of};
use super::{GlobalArgs, Session};
use crate::engine::Engine;
use crate::engine::params::KpiParams;
use crate::ingest::{IngestError, IngestOptions, catch_up, open_and_catch_up};
use crate::state::StateError;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples, on the bundled sample feed:\n  arstream run\n  arstream run --watch --interval 2     (Ctrl-C stops it after the refresh in flight)\n  arstream sql \"SELECT count(*) FROM invoices\""
)]
pub struct RunArgs {
    /// Keep running: poll the feed and refresh after new files, until Ctrl-C or SIGTERM
    #[arg(long)]
    pub watch: bool,
    /// Seconds between two polls of the feed (object stores have no reliable notifications)
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Write the outputs after each refresh under this folder or URL: kpi_summary per as-of
    /// date (as_of=YYYY-MM-DD/), the latest aging and open_items, as Parquet
    #[arg(long, value_name = "URL")]
    pub out: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.watch {
        return watch(global, &args).await;
    }
    let mut session = Session::open(global).await?;
    if let Some(out) = &args.out {
        let (engine, params) = session.engine().await?;
        write_outputs(&engine, &params, out).await?;
    }
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

/// Poll the feed until asked to stop, logging one line per refresh.
async fn watch(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<ExitCode> {
    // Installed first, so that a signal during the first catch-up also stops cleanly.
    let mut stop = Box::pin(shutdown_signal());
    let started = Instant::now();
    let mut session = Session::open(global).await?;
    let interval = Duration::from_secs_f64(args.interval.max(0.05));
    let json = global.log_format == super::LogFormat::Json;
    let opts = IngestOptions {
        checkpoint_every_files: session.config.state.checkpoint_every_files.max(1),
        checkpoint_every_rows: session.config.state.checkpoint_every_rows.max(1),
        parallel_reads: session.config.feed.parallel_reads.max(1),
    };
    let first = session.report.take().unwrap_or_default();
    let done = Refreshed {
        files: first.files_applied,
        rows: first.rows_applied,
        quarantined: first.quarantined.len(),
        began: started,
    };
    refresh(&mut session, args.out.as_deref(), done, json).await?;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let began = Instant::now();
        let report = match catch_up(&mut session.state, &session.feed, &opts, None).await {
            Err(IngestError::State(StateError::Concurrent { .. })) => {
                let location = session.state.location().clone();
                let (state, report) =
                    open_and_catch_up(&location, &session.feed, &opts, None, 20).await?;
                session.state = state;
                report
            }
            other => other?,
        };
        for v in &report.quarantined {
            if json {
                let line = serde_json::json!({"event": "quarantined", "code": v.code, "reason": v.reason()});
                println!("{line}");
            } else {
                println!("quarantined code={} reason={:?}", v.code, v.reason());
            }
        }
        if report.files_applied > 0 || !report.quarantined.is_empty() {
            let done = Refreshed {
                files: report.files_applied,
                rows: report.rows_applied,
                quarantined: report.quarantined.len(),
                began,
            };
            refresh(&mut session, args.out.as_deref(), done, json).await?;
        }
    }
    let ran = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "stopped", "after_s": ran})
        );
    } else {
        println!("stopped after {ran:.1} s");
    }
    Ok(ExitCode::SUCCESS)
}

/// Write the standard outputs of the current state under `out`.
async fn write_outputs(engine: &Engine, params: &KpiParams, out: &str) -> anyhow::Result<()> {
    let location = crate::store::open(out, true)?;
    let written = crate::pipeline::outputs::write_standard(engine, &location, params.as_of).await?;
    tracing::info!(outputs = ?written, "outputs written to {}", location.url);
    Ok(())
}

/// What one refresh applied, and when it began.
struct Refreshed {
    files: usize,
    rows: usize,
    quarantined: usize,
    began: Instant,
}

/// After new files: make the tables and views again (once), write the outputs when asked, and
/// log one structured line: what the refresh applied, how long it took, the KPI headline.
async fn refresh(
    session: &mut Session,
    out: Option<&str>,
    done: Refreshed,
    json: bool,
) -> anyhow::Result<()> {
    let Refreshed {
        files,
        rows,
        quarantined,
        began,
    } = done;
    let (engine, params) = session.engine().await?;
    if let Some(out) = out {
        write_outputs(&engine, &params, out).await?;
    }
    let rows_json = engine
        .query("SELECT CAST(total_ar AS DOUBLE) AS ar, dso FROM kpi_summary")
        .await?;
    let (mut ar, mut dso) = (None, None);
    if let Some(b) = rows_json.first().filter(|b| b.num_rows() > 0) {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::Float64Type;
        let (a, d) = (
            b.column(0).as_primitive::<Float64Type>(),
            b.column(1).as_primitive::<Float64Type>(),
        );
        ar = a.is_valid(0).then(|| a.value(0));
        dso = d.is_valid(0).then(|| d.value(0));
    }
    let took_ms = began.elapsed().as_millis();
    if json {
        let line = serde_json::json!({
            "event": "refresh",
            "files_applied": files,
            "rows_changed": rows,
            "quarantined": quarantined,
            "took_ms": took_ms,
            "as_of": params.as_of.to_string(),
            "total_ar": ar,
            "dso": dso,
        });
        println!("{line}");
        return Ok(());
    }
    let fmt =
        |v: Option<f64>, digits: usize| v.map_or("null".to_string(), |v| format!("{v:.digits$}"));
    println!(
        "refresh files_applied={files} rows_changed={rows} quarantined={quarantined} took_ms={took_ms} as_of={} total_ar={} dso={}",
        params.as_of,
        fmt(ar, 2),
        fmt(dso, 1)
    );
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one. The handlers are installed when this
/// is called, not when the future is first polled, so a signal that arrives during the first
/// refresh is not lost (and does not kill the process mid-write).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
