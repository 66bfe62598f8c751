//! `arstream run`: the service of a pipeline (`pipelines/<name>.toml`, by default `standard`
//! when there is one), composed by the library's [`Server`]: the runner catches up with the
//! feed and publishes a snapshot per refresh; the outputs writer and outreach use them off the
//! refresh path; this command prints one line per refresh, outputs written and send, until
//! Ctrl-C or SIGTERM. `--once` does one refresh and exits (for cron and orchestrators,
//! as `pipeline run` does).

use std::process::ExitCode;
use std::time::Duration;

use super::status::print_table;
use super::{GlobalArgs, INVALID, LogFormat};
use crate::ingest::CatchUpReport;
use crate::outreach::subscriber::Sent;
use crate::pipeline::catalog::{self, Plan};
use crate::pipeline::writer::Written;
use crate::publish::PublishReport;
use crate::server::{Event, Once, Refreshed, Report, Server};
use crate::service::health::Health;
use crate::service::signals::stop_on_signals;
use crate::service::{Notice, Snapshot};
use crate::sql_server::Serving;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 done (quarantined files are logged, not failures), 1 failed, 2 invalid pipeline.\n\nExamples, on the bundled sample feed:\n  arstream run                      (the standard pipeline, until Ctrl-C)\n  arstream run --once               (one refresh, then exit)\n  arstream run --interval 2 --headless --log-format json\n  arstream sql \"SELECT count(*) FROM invoices\""
)]
pub struct RunArgs {
    /// The pipeline to run: a file of the pipelines folder, without .toml, or the path of a
    /// pipeline file (./mine.toml) [default: standard, when there is such a file]
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Write the outputs under this folder or URL instead of the pipeline's `out`
    #[arg(long, value_name = "URL")]
    pub out: Option<String>,
    /// Do one refresh and exit
    #[arg(long)]
    pub once: bool,
    /// Log one line per refresh instead of showing the dashboard (as always without a
    /// terminal). Refresh, outputs, quarantine and stop lines go to stdout; errors and logs to
    /// stderr
    #[arg(long)]
    pub headless: bool,
    /// The dashboard layout on a terminal: a file of the dashboards folder without .toml, or
    /// a path [default: controller]
    #[arg(long, value_name = "NAME")]
    pub layout: Option<String>,
    /// Poll the feed every this many seconds instead of the pipeline's schedule (0.05 to
    /// 86400; a local feed folder is also watched for new files)
    #[arg(long, value_name = "SECONDS", value_parser = poll_interval, allow_negative_numbers = true)]
    pub interval: Option<f64>,
    /// Publish the state as Delta Lake tables at this folder or URL at every checkpoint
    /// (`arstream publish --help`) [default: from config [publish] url]
    #[arg(long, value_name = "URL")]
    pub publish: Option<String>,
}

/// A poll interval in seconds: a finite number from 50 ms to a day.
pub(crate) fn poll_interval(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(0.05..=86_400.0).contains(&seconds) {
        return Err(format!(
            "{text} s is not a poll interval: give 0.05 to 86400 seconds"
        ));
    }
    Ok(seconds)
}

/// The plan of the pipeline named (or the default one) with the command line's `--out` and
/// `--interval`; none, said on stderr, when it cannot be used (exit [`INVALID`]).
pub(crate) fn plan_of(
    global: &GlobalArgs,
    pipeline: Option<&str>,
    out: Option<&str>,
    interval: Option<f64>,
) -> Option<Plan> {
    let interval = interval.map(Duration::from_secs_f64);
    match catalog::plan(&global.session_options(), pipeline, out, interval) {
        Ok(plan) => Some(plan),
        Err(invalid) => {
            eprintln!("error: {invalid}");
            None
        }
    }
}

pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(mut plan) = plan_of(
        global,
        args.pipeline.as_deref(),
        args.out.as_deref(),
        args.interval,
    ) else {
        return Ok(ExitCode::from(INVALID));
    };
    plan.publish = args.publish.or(plan.publish);
    if args.once {
        return once(&plan, true, global.log_format).await;
    }
    let layout = match args.headless || !crate::dashboard::on_terminal() {
        true => None,
        false => match dashboard_layout(&plan, args.layout.as_deref()) {
            Ok(layout) => Some(layout),
            Err(invalid) => {
                eprintln!("error: {invalid}");
                return Ok(ExitCode::from(INVALID));
            }
        },
    };
    serve(&plan, global.log_format, layout, None).await
}

/// The layout `name` (default `controller`) of the dashboards folder, or at a path.
pub(crate) fn dashboard_layout(
    plan: &Plan,
    name: Option<&str>,
) -> anyhow::Result<crate::dashboard::layout::Layout> {
    let config = plan.session.config_file()?;
    let folder = std::path::PathBuf::from(&config.engine.dashboards);
    Ok(crate::dashboard::layout::find(
        &folder,
        name.unwrap_or("controller"),
    )?)
}

/// One refresh: catch up, write the outputs, report. Quarantined files do not fail it (the
/// rest of the feed went on); they are logged and listed by `status`.
pub(crate) async fn once(
    plan: &Plan,
    verbose: bool,
    format: LogFormat,
) -> anyhow::Result<ExitCode> {
    let server = Server::new(plan.clone())?;
    let cancel = stop_on_signals();
    let Refreshed {
        snapshot,
        out,
        written,
        sent,
        published,
    } = match server.once(&cancel).await? {
        Once::CaughtUp(session) => {
            if verbose {
                print_report(&session.report.unwrap_or_default());
                print_table(&Health::of(session.feed.url.as_str(), &session.state));
            }
            return Ok(ExitCode::SUCCESS);
        }
        Once::Stopped => {
            eprintln!(
                "stopped before the first refresh; the next run goes on from where it stopped"
            );
            return Ok(ExitCode::SUCCESS);
        }
        Once::Refreshed(refreshed) => *refreshed,
    };
    if verbose {
        let report = &snapshot.refresh.catch_up;
        match format {
            LogFormat::Json => {
                let quarantined: Vec<serde_json::Value> = (report.quarantined.iter())
                    .map(|v| serde_json::json!({"code": v.code, "reason": v.reason()}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"event": "refresh", "files_applied": report.files_applied, "rows_applied": report.rows_applied, "rows_unchanged": report.rows_ignored, "quarantined": quarantined, "seconds": report.elapsed.as_secs_f64()})
                );
            }
            LogFormat::Text => {
                print_report(report);
                print_table(&snapshot.health);
            }
        }
    }
    // What was written, and where: the one line a scheduler's log keeps of a run.
    match (format, out) {
        (_, None) => {}
        (LogFormat::Json, Some(out)) => println!(
            "{}",
            serde_json::json!({"event": "outputs", "out": out.as_str(), "written": written})
        ),
        (LogFormat::Text, Some(out)) => {
            println!("outputs written under {out}: {}", written.join(", "))
        }
    }
    if let Some(published) = &published {
        super::publish::print_published(published, format, false);
    }
    if let Some((outreach, report)) = sent {
        super::outreach::print_send(&report, &outreach);
        return Ok(super::outreach::exit_code(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &CatchUpReport) {
    let secs = r.elapsed.as_secs_f64();
    println!(
        "applied {} new file(s), {} change rows ({} changed nothing: older than, or the same as, what the state held for their key) in {:.2} s ({:.0} rows/s); {} quarantined, {} unreadable",
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
    for entry in &r.skipped_entries {
        println!("  skipped {entry}");
    }
    println!();
}

/// The process's peak resident memory, from /proc (Linux only).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MiB", kib / 1024.0))
}

/// The service until Ctrl-C or SIGTERM, with the dashboard (`layout`) or a line per refresh,
/// per outputs written and per outreach send.
pub(crate) async fn serve(
    plan: &Plan,
    format: LogFormat,
    layout: Option<crate::dashboard::layout::Layout>,
    sql: Option<crate::sql_server::SqlServer>,
) -> anyhow::Result<ExitCode> {
    // Installed first, so that a signal during the first catch-up also stops cleanly.
    let cancel = stop_on_signals();
    let lines = Lines {
        json: format == LogFormat::Json,
        pipeline: plan.pipeline.as_ref().map(|p| p.name.clone()),
    };
    let mut server = Server::new(plan.clone())?;
    if let Some(layout) = layout {
        server = server.with_dashboard(layout);
    }
    if let Some(sql) = sql {
        server = server.with_sql(sql);
    }
    let stopped = server.run(&cancel, |event| lines.event(event)).await?;
    lines.stopped(stopped.ran, stopped.during_catch_up);
    Ok(ExitCode::SUCCESS)
}

/// The service's lines: refresh, quarantined, outputs and stopped on stdout, errors on stderr.
struct Lines {
    json: bool,
    pipeline: Option<String>,
}

impl Lines {
    fn event(&self, event: Event) {
        match event {
            Event::Refresh(snapshot) => self.refresh(&snapshot),
            Event::Notice(notice) => self.notice(&notice),
            Event::Consumer(Report::Written(written)) => self.written(&written),
            Event::Consumer(Report::Sent(sent)) => self.sent(&sent),
            Event::Consumer(Report::Sql(serving)) => self.sql(&serving),
            Event::Consumer(Report::Published(published)) => self.published(&published),
        }
    }

    fn refresh(&self, s: &Snapshot) {
        let r = &s.refresh.catch_up;
        for v in &r.quarantined {
            match self.json {
                true => println!(
                    "{}",
                    serde_json::json!({"event": "quarantined", "code": v.code, "reason": v.reason()})
                ),
                false => println!("quarantined code={} reason={:?}", v.code, v.reason()),
            }
        }
        let took_ms = s.refresh.took.as_millis();
        let (ar, dso) = (s.kpi.total_ar, s.kpi.dso);
        if self.json {
            let line = serde_json::json!({
                "event": "refresh",
                "pipeline": self.pipeline,
                "sequence": s.sequence,
                "generation": s.generation,
                "files_applied": r.files_applied,
                "rows_changed": r.rows_applied,
                "quarantined": r.quarantined.len(),
                "took_ms": took_ms,
                "as_of": s.params.as_of.to_string(),
                "total_ar": ar,
                "dso": dso,
            });
            println!("{line}");
            return;
        }
        let fmt = |v: Option<f64>, digits: usize| {
            v.map_or("null".to_string(), |v| format!("{v:.digits$}"))
        };
        println!(
            "refresh files_applied={} rows_changed={} quarantined={} took_ms={took_ms} as_of={} total_ar={} dso={}",
            r.files_applied,
            r.rows_applied,
            r.quarantined.len(),
            s.params.as_of,
            fmt(ar, 2),
            fmt(dso, 1)
        );
    }

    fn written(&self, event: &Written) {
        match event {
            Written::Done {
                sequence,
                names,
                took,
                since_refresh_began,
            } => match self.json {
                true => println!(
                    "{}",
                    serde_json::json!({"event": "outputs", "sequence": sequence, "written": names, "took_ms": took.as_millis(), "since_refresh_began_ms": since_refresh_began.as_millis()})
                ),
                false => println!(
                    "outputs written={} sequence={sequence} took_ms={} since_refresh_began_ms={}",
                    names.join(","),
                    took.as_millis(),
                    since_refresh_began.as_millis()
                ),
            },
            Written::Failed {
                sequence,
                names,
                error,
            } => match self.json {
                true => eprintln!(
                    "{}",
                    serde_json::json!({"event": "error", "outputs": names, "sequence": sequence, "error": error})
                ),
                false => eprintln!(
                    "error outputs={} sequence={sequence} error={error:?}",
                    names.join(",")
                ),
            },
        }
    }

    fn sent(&self, event: &Sent) {
        match event {
            Sent::Done { sequence, report } => {
                let closed = report.window_closed.as_deref();
                match self.json {
                    true => println!(
                        "{}",
                        serde_json::json!({"event": "outreach", "sequence": sequence, "day": report.day, "sent": report.sent, "failed": report.failed, "waiting": report.waiting, "skipped": report.skipped, "deferred": report.deferred, "redecided": report.redecided, "window_closed": closed, "refused": report.refused, "policy_changes": report.policy_changes})
                    ),
                    false => {
                        println!(
                            "outreach sequence={sequence} day={} sent={} failed={} waiting={} skipped={} deferred={} redecided={}{}",
                            report.day.map(|d| d.to_string()).unwrap_or_default(),
                            report.sent,
                            report.failed,
                            report.waiting,
                            report.skipped,
                            report.deferred,
                            report.redecided,
                            closed
                                .map(|c| format!(" window_closed={c:?}"))
                                .unwrap_or_default()
                        );
                        for change in &report.policy_changes {
                            println!("outreach sequence={sequence} policy_changed={change:?}");
                        }
                        for (channel, answer) in &report.refused {
                            eprintln!(
                                "error outreach sequence={sequence} channel={channel} refused={answer:?} (its messages wait; fix the server's settings)"
                            );
                        }
                    }
                }
            }
            Sent::Failed { sequence, error } => match self.json {
                true => eprintln!(
                    "{}",
                    serde_json::json!({"event": "error", "outreach": true, "sequence": sequence, "error": error})
                ),
                false => eprintln!("error outreach sequence={sequence} error={error:?}"),
            },
        }
    }

    fn sql(&self, serving: &Serving) {
        match (serving, self.json) {
            (Serving::Ready { sequence, took }, true) => println!(
                "{}",
                serde_json::json!({"event": "sql", "sequence": sequence, "ready_ms": took.as_millis()})
            ),
            (Serving::Ready { sequence, took }, false) => {
                println!(
                    "sql serving sequence={sequence} ready_ms={}",
                    took.as_millis()
                )
            }
            (Serving::Failed { sequence, error }, true) => eprintln!(
                "{}",
                serde_json::json!({"event": "error", "sql": true, "sequence": sequence, "error": error})
            ),
            (Serving::Failed { sequence, error }, false) => {
                eprintln!("error sql sequence={sequence} error={error:?}")
            }
        }
    }

    fn published(&self, report: &PublishReport) {
        let format = match self.json {
            true => LogFormat::Json,
            false => LogFormat::Text,
        };
        match (report, self.json) {
            (PublishReport::Published(p), _) => super::publish::print_published(p, format, false),
            (PublishReport::Failed { generation, error }, true) => eprintln!(
                "{}",
                serde_json::json!({"event": "error", "publish": true, "generation": generation, "error": error})
            ),
            (PublishReport::Failed { generation, error }, false) => {
                eprintln!("error publish generation={generation} error={error:?}")
            }
        }
    }

    fn notice(&self, notice: &Notice) {
        let Notice::Failed {
            error,
            transient,
            failures,
            retry_in,
        } = notice;
        let retry_s = retry_in.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0);
        match self.json {
            true => eprintln!(
                "{}",
                serde_json::json!({"event": "error", "error": error, "transient": transient, "failures": failures, "retry_in_s": retry_s})
            ),
            false => {
                let retry = retry_s.map_or("when the feed or a view changes".to_string(), |s| {
                    format!("in {s} s")
                });
                eprintln!("error failures={failures} retry={retry:?} error={error:?}");
            }
        }
    }

    fn stopped(&self, ran: Duration, during_catch_up: bool) {
        let ran = ran.as_secs_f64();
        match self.json {
            true => println!(
                "{}",
                serde_json::json!({"event": "stopped", "after_s": ran, "during_catch_up": during_catch_up})
            ),
            false if during_catch_up => println!(
                "stopped after {ran:.1} s, during the catch-up (what was applied is checkpointed; the next run goes on from there)"
            ),
            false => println!("stopped after {ran:.1} s"),
        }
    }
}
