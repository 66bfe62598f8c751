//! `arstream run`: the service. It runs a pipeline (`pipelines/<name>.toml`, by default
//! `standard` when there is one): catches up with the feed (applying each new file once,
//! quarantining bad ones), checkpoints the state, writes the pipeline's outputs and logs one
//! line per refresh, then waits for the next poll of its schedule, until Ctrl-C or SIGTERM.
//! `--once` does one refresh and exits (for cron and orchestrators, as `pipeline run` does).

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::status::{print_table, status_of};
use super::{GlobalArgs, Session};
use crate::ingest::{IngestError, IngestOptions, catch_up, open_and_catch_up};
use crate::pipeline::spec::{Pipeline, Schedule, Step};
use crate::state::StateError;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 done (quarantined files are logged, not failures), 1 failed, 2 invalid pipeline.\n\nExamples, on the bundled sample feed:\n  arstream run                      (the standard pipeline, until Ctrl-C)\n  arstream run --once               (one refresh, then exit)\n  arstream run --interval 2 --headless --log-format json\n  arstream sql \"SELECT count(*) FROM invoices\""
)]
pub struct RunArgs {
    /// The pipeline to run: a file of the pipelines folder, without .toml [default: standard,
    /// when there is such a file]
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Write the outputs under this folder or URL instead of the pipeline's `out`
    #[arg(long, value_name = "URL")]
    pub out: Option<String>,
    /// Do one refresh and exit
    #[arg(long)]
    pub once: bool,
    /// Log one line per refresh (as always without a terminal: the dashboard comes later).
    /// Refresh, quarantine and stop lines go to stdout; errors and logs to stderr
    #[arg(long)]
    pub headless: bool,
    /// Poll the feed every this many seconds instead of the pipeline's schedule (0.05 to
    /// 86400)
    #[arg(long, value_name = "SECONDS", value_parser = poll_interval, allow_negative_numbers = true)]
    pub interval: Option<f64>,
}

/// A poll interval in seconds: a finite number from 50 ms to a day.
fn poll_interval(text: &str) -> Result<f64, String> {
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

/// What a run does: the pipeline's steps, where they go and when.
pub(crate) struct Plan {
    pub pipeline: Option<Pipeline>,
    pub steps: Vec<Step>,
    pub out: Option<String>,
    pub schedule: Schedule,
}

/// Exit code of an invalid pipeline or command line.
pub(crate) const INVALID: u8 = 2;

/// The pipeline named (or the default one) and the command line merged: the command line wins
/// over the pipeline, which wins over the config.
pub(crate) fn plan(
    global: &GlobalArgs,
    name: Option<&str>,
    out: Option<&str>,
    interval: Option<f64>,
) -> Result<(GlobalArgs, Plan), super::pipeline::Invalid> {
    let pipeline = super::pipeline::find(global, name)?;
    let mut global = global.clone();
    let mut steps = crate::pipeline::outputs::standard_steps();
    let mut schedule = Schedule::Every(Duration::from_secs(5));
    let mut out = out.map(str::to_string);
    if let Some(p) = &pipeline {
        global.feed = global.feed.or_else(|| p.feed.clone());
        global.state = global.state.or_else(|| p.state.clone());
        global.as_of = global.as_of.or_else(|| p.as_of.clone());
        out = out.or_else(|| Some(p.out.clone()));
        steps = p.steps.clone();
        schedule = p.schedule.clone();
    }
    if let Some(seconds) = interval {
        schedule = Schedule::Every(Duration::from_secs_f64(seconds));
    }
    Ok((
        global,
        Plan {
            pipeline,
            steps,
            out,
            schedule,
        },
    ))
}

pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (global, plan) = match plan(
        global,
        args.pipeline.as_deref(),
        args.out.as_deref(),
        args.interval,
    ) {
        Ok(planned) => planned,
        Err(invalid) => {
            eprintln!("error: {invalid}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    if !args.once {
        return watch(&global, &plan).await;
    }
    once(&global, &plan, true).await
}

/// One refresh: catch up, write the outputs, report. Quarantined files do not fail it (the
/// rest of the feed went on); they are logged and listed by `status`.
pub(crate) async fn once(
    global: &GlobalArgs,
    plan: &Plan,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    let mut session = Session::open(global).await?;
    refuse_outputs_inside_feed(&session, plan)?;
    if let Some(out) = &plan.out {
        let (engine, params) = session.engine().await?;
        write_outputs(&engine, &plan.steps, &params, out).await?;
    }
    if verbose {
        print_report(&session);
        print_table(&status_of(session.feed.url.as_str(), &session.state));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(session: &Session) {
    let Some(r) = &session.report else { return };
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

/// The process's peak resident memory, from /proc (Linux only).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MiB", kib / 1024.0))
}

/// Poll the feed until asked to stop, logging one line per refresh.
async fn watch(global: &GlobalArgs, plan: &Plan) -> anyhow::Result<ExitCode> {
    // Installed first, so that a signal during the first catch-up also stops cleanly.
    let mut stop = Box::pin(shutdown_signal());
    let started = Instant::now();
    let mut session = Session::open(global).await?;
    refuse_outputs_inside_feed(&session, plan)?;
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
    let mut outputs = Outputs::default();
    refresh(&mut session, plan, &mut outputs, done, json).await?;
    // After a transient failure (the store unreachable, a timeout), wait longer each time.
    let mut failures: u32 = 0;
    loop {
        let wait = match failures {
            0 => plan.schedule.wait_from(chrono::Utc::now()),
            n => Duration::from_secs_f64((0.5 * 2f64.powi(n as i32)).min(60.0)),
        };
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let began = Instant::now();
        let report = match catch_up(&mut session.state, &session.feed, &opts, None).await {
            Ok(report) => report,
            Err(IngestError::State(StateError::Concurrent { .. })) => {
                let location = session.state.location().clone();
                let (state, report) =
                    open_and_catch_up(&location, &session.feed, &opts, None, 20).await?;
                session.state = state;
                report
            }
            Err(e) if e.is_transient() => {
                failures += 1;
                report_error(json, &e.to_string(), failures);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        failures = 0;
        for v in &report.quarantined {
            if json {
                let line = serde_json::json!({"event": "quarantined", "code": v.code, "reason": v.reason()});
                println!("{line}");
            } else {
                println!("quarantined code={} reason={:?}", v.code, v.reason());
            }
        }
        let changed = report.files_applied > 0 || !report.quarantined.is_empty();
        if changed || outputs.catching_up(&plan.steps, Instant::now()) {
            let done = Refreshed {
                files: report.files_applied,
                rows: report.rows_applied,
                quarantined: report.quarantined.len(),
                began,
            };
            if let Err(e) = refresh(&mut session, plan, &mut outputs, done, json).await {
                // Written again at the next poll, new files or not.
                (outputs.behind).extend(plan.steps.iter().map(|s| s.name.clone()));
                failures += 1;
                report_error(json, &super::one_line(&e), failures);
            }
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

/// Refuse outputs that would land where feed discovery reads them as feed files.
fn refuse_outputs_inside_feed(session: &Session, plan: &Plan) -> anyhow::Result<()> {
    let sinks = (plan.out.iter()).chain(plan.steps.iter().filter_map(|s| s.to.as_ref()));
    for url in sinks {
        let sink = crate::store::open(url, true)?;
        super::refuse_inside_feed(&session.feed, &sink, "output folder")?;
    }
    Ok(())
}

/// Write the outputs of the plan's steps under `out`.
async fn write_outputs(
    engine: &crate::engine::Engine,
    steps: &[Step],
    params: &crate::engine::params::KpiParams,
    out: &str,
) -> anyhow::Result<()> {
    let location = crate::store::open(out, true)?;
    let written =
        crate::pipeline::outputs::write_steps(engine, steps, &location, params.as_of).await?;
    tracing::info!(outputs = ?written, "outputs written to {}", location.url);
    Ok(())
}

/// Log a failed poll or refresh; the run goes on and tries again after a backoff.
fn report_error(json: bool, error: &str, failures: u32) {
    let retry_s = (0.5 * 2f64.powi(failures as i32)).min(60.0);
    if json {
        let line = serde_json::json!({"event": "error", "error": error, "failures": failures, "retry_in_s": retry_s});
        eprintln!("{line}");
    } else {
        eprintln!("error failures={failures} retry_in_s={retry_s} error={error:?}");
    }
}

/// Which outputs are up to date, for steps written at most `every` so often: when each was
/// last written in this run, and which have missed changes since.
#[derive(Default)]
struct Outputs {
    written: HashMap<String, Instant>,
    behind: HashSet<String>,
}

impl Outputs {
    /// Whether `step` may be written at `now`: at every refresh without `every`, else once
    /// `every` has passed since it was last written (and at the first refresh of the run).
    fn may_write(&self, step: &Step, now: Instant) -> bool {
        match (step.every, self.written.get(&step.name)) {
            (Some(every), Some(at)) => now.duration_since(*at) >= every,
            _ => true,
        }
    }

    /// Whether an output that missed changes may be written now (a refresh without new
    /// files then writes it).
    fn catching_up(&self, steps: &[Step], now: Instant) -> bool {
        (steps.iter()).any(|s| self.behind.contains(&s.name) && self.may_write(s, now))
    }

    /// Split `steps` into those to write after a refresh that `changed` the state (every one
    /// that may be, or, without changes, those behind that may be) and the names of those left
    /// for later.
    fn plan(&self, steps: &[Step], changed: bool, now: Instant) -> (Vec<Step>, Vec<String>) {
        let (now_steps, later): (Vec<&Step>, Vec<&Step>) = steps
            .iter()
            .filter(|s| changed || self.behind.contains(&s.name))
            .partition(|s| self.may_write(s, now));
        let later = later.iter().map(|s| s.name.clone()).collect();
        (now_steps.into_iter().cloned().collect(), later)
    }

    fn mark(&mut self, written: &[Step], later: &[String], at: Instant) {
        for step in written {
            self.written.insert(step.name.clone(), at);
            self.behind.remove(&step.name);
        }
        self.behind.extend(later.iter().cloned());
    }
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
    plan: &Plan,
    outputs: &mut Outputs,
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
    let changed = files > 0 || quarantined > 0 || outputs.written.is_empty();
    let (steps, later) = outputs.plan(&plan.steps, changed, began);
    if let Some(out) = &plan.out {
        write_outputs(&engine, &steps, &params, out).await?;
        outputs.mark(&steps, &later, began);
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
            "pipeline": plan.pipeline.as_ref().map(|p| p.name.as_str()),
            "files_applied": files,
            "rows_changed": rows,
            "quarantined": quarantined,
            "took_ms": took_ms,
            "as_of": params.as_of.to_string(),
            "total_ar": ar,
            "dso": dso,
            "outputs_written": steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "outputs_later": later,
        });
        println!("{line}");
        return Ok(());
    }
    let fmt =
        |v: Option<f64>, digits: usize| v.map_or("null".to_string(), |v| format!("{v:.digits$}"));
    let later = match later.is_empty() {
        true => String::new(),
        false => format!(" outputs_later={}", later.join(",")),
    };
    println!(
        "refresh files_applied={files} rows_changed={rows} quarantined={quarantined} took_ms={took_ms} as_of={} total_ar={} dso={}{later}",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::outputs::Keep;
    use crate::pipeline::spec::Source;

    fn step(name: &str, every: Option<u64>) -> Step {
        Step {
            name: name.into(),
            source: Source::View(name.into()),
            keep: Keep::Latest,
            to: None,
            every: every.map(Duration::from_secs),
            line: 0,
        }
    }

    fn names(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn a_slow_output_is_written_once_its_interval_has_passed_new_files_or_not() {
        let steps = [step("kpi", None), step("extract", Some(10))];
        let t0 = Instant::now();
        let mut outputs = Outputs::default();
        let at = |s: u64| t0 + Duration::from_secs(s);

        let (now, later) = outputs.plan(&steps, true, at(0));
        assert_eq!((names(&now), later.len()), (vec!["kpi", "extract"], 0));
        outputs.mark(&now, &later, at(0));

        // New files a second later: the extract waits, and is known to be behind.
        let (now, later) = outputs.plan(&steps, true, at(1));
        assert_eq!(
            (names(&now), later.clone()),
            (vec!["kpi"], vec!["extract".into()])
        );
        outputs.mark(&now, &later, at(1));
        assert!(!outputs.catching_up(&steps, at(5)));

        // No new files, but its interval has passed: only the extract is written.
        assert!(outputs.catching_up(&steps, at(10)));
        let (now, later) = outputs.plan(&steps, false, at(10));
        assert_eq!((names(&now), later.len()), (vec!["extract"], 0));
        outputs.mark(&now, &later, at(10));
        assert!(!outputs.catching_up(&steps, at(100)));
    }
}
