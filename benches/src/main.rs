//! `arstream-bench`: the benchmarks, a binary of their own (as DataFusion's `dfbench`), so that
//! they do not ship in the product.
//!
//! ```text
//! cargo build --release
//! cargo run --release -p arstream-bench -- ingest                    # 100,000 customers, 24 months
//! cargo run --release -p arstream-bench -- ingest --customers 2000   # a quick run
//! cargo run --release -p arstream-bench -- kpi                       # against DuckDB
//! cargo run --release -p arstream-bench -- refresh                   # file landed -> output read
//! cargo run --release -p arstream-bench -- risk                      # train, score, assign
//! ```
//!
//! `ingest`: `arstream generate` at scale, a full catch-up of what it wrote, a reload of the
//! checkpointed state, and the same catch-up of the same changes as AWS DMS writes them
//! (`--feed-format dms`). Each step runs as its own process; time, change rows per second and
//! peak memory go to `docs/benchmarks.md`. Feeds are kept in `target/bench-data/` and reused
//! when made with the same sizes. Run from the repository root.

mod cluster;
mod dms;
mod publish;
mod refresh;
mod serve;
mod service;
mod workspace;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// arstream's benchmarks: each step runs the release binary of arstream as its own process
/// (build it first: `cargo build --release`), and each benchmark writes its figures into
/// docs/benchmarks.md with the command that reproduces them.
#[derive(Debug, clap::Parser)]
#[command(name = "arstream-bench", max_term_width = 100)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: Which,
}

#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// Generate a feed, ingest it into a new state, reload the state, ingest it again in the
    /// `dms` format; write docs/benchmarks.md
    Ingest(Scale),
    /// The KPI summary from the raw feed and from a loaded state, against DuckDB running the
    /// same views on the same feed (Python package `duckdb`, installed when missing)
    Kpi {
        /// Customers of the generated feed (made by `bench ingest` when missing)
        #[arg(long, default_value_t = 100_000)]
        customers: u64,
        /// Months of the generated feed
        #[arg(long, default_value_t = 24)]
        months: u64,
        /// As-of date of the summary [default: the generated feed's last day]
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, default_value = "target/bench-data")]
        data: PathBuf,
        #[arg(long, default_value = "docs/benchmarks.md")]
        report: PathBuf,
    },
    /// Time from a file of 10,000 changes landing in the feed to updated outputs, with
    /// `arstream run` running: on the sample feed and on the generated feed
    Refresh {
        /// Customers of the generated feed (made by `bench ingest` when missing)
        #[arg(long, default_value_t = 100_000)]
        customers: u64,
        /// Months of the generated feed
        #[arg(long, default_value_t = 24)]
        months: u64,
        /// Files landed (and refreshes timed) per case
        #[arg(long, default_value_t = 7)]
        files: usize,
        #[arg(long, default_value = "target/bench-data")]
        data: PathBuf,
        #[arg(long, default_value = "docs/benchmarks.md")]
        report: PathBuf,
    },
    /// The risk model at scale: scores, worklist and assignment from the ingest benchmark's
    /// state (`sql "SELECT count(*) FROM worklist"`), and its backtest (`model report`)
    Risk(Scale),
    /// The cash forecast at scale: the forecast and its backtest from the ingest benchmark's
    /// state (`sql "SELECT * FROM cash_forecast"`), `kpi` with its WAPE, and `model report`
    Forecast(Scale),
    /// Outreach at scale: `outreach send` of the as-of date over the ingest benchmark's state
    /// to the file outbox (a fresh ledger), then the same send again (nothing left to send)
    Outreach(Scale),
    /// The dashboard at scale: the release binary's `dashboard` in tmux at 160x48 over the
    /// ingest benchmark's state: the first frame while the state loads, and the frames drawn
    /// once everything is loaded (keys sent: tabs, moves), from its debug log
    Dashboard(Scale),
    /// SQL over the Postgres wire protocol: `arstream serve` on the ingest benchmark's state,
    /// psycopg clients (one, then 20 at once) on the KPI summary and the worklist's top 100
    Serve(Scale),
    /// The service at scale: `run --headless` with a pipeline writing the KPI summary and the
    /// worklist at every refresh; customers paying every open invoice timed until they leave
    /// the written worklist; the service's idle CPU and peak memory
    Service(Scale),
    /// The state published as Delta Lake tables: `publish` of the ingest benchmark's state to
    /// a new folder (time, memory, size), then again (nothing to commit)
    Publish(Scale),
    /// The views on a Ballista cluster: `sql --cluster` with one `arstream executor` on this
    /// machine, beside the single-node engine (the state, and the published tables)
    Cluster(Scale),
}

/// The generated feed a benchmark runs on, and where it keeps data and writes figures.
#[derive(Debug, clap::Args)]
pub struct Scale {
    /// Customers of the generated feed
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
    /// Months of the generated feed
    #[arg(long, default_value_t = 24)]
    months: u64,
    /// Where feeds and states are kept between runs
    #[arg(long, default_value = "target/bench-data")]
    data: PathBuf,
    /// The report to update
    #[arg(long, default_value = "docs/benchmarks.md")]
    report: PathBuf,
}

fn main() -> ExitCode {
    let args = <BenchArgs as clap::Parser>::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which {
        Which::Ingest(s) => ingest(s.customers, s.months, &s.data, &s.report),
        Which::Kpi {
            customers,
            months,
            as_of,
            data,
            report,
        } => {
            let as_of = as_of.unwrap_or_else(|| feed_end(months).to_string());
            kpi(customers, months, &as_of, &data, &report)
        }
        Which::Refresh {
            customers,
            months,
            files,
            data,
            report,
        } => {
            let (feed, _) = bench_feed(customers, months, &data)?;
            let label = format!("{customers} customers, {months} months");
            refresh::run(&feed, &label, files, &data, &report)
        }
        Which::Risk(s) => risk(s.customers, s.months, &s.data, &s.report),
        Which::Forecast(s) => forecast(s.customers, s.months, &s.data, &s.report),
        Which::Outreach(s) => outreach(s.customers, s.months, &s.data, &s.report),
        Which::Dashboard(s) => dashboard(s.customers, s.months, &s.data, &s.report),
        Which::Serve(s) => {
            let (feed, state) = ingested_state(s.customers, s.months, &s.data, &s.report)?;
            let label = format!("{} customers, {} months", s.customers, s.months);
            serve::run(&feed, &state, &label, &s.data, &s.report)
        }
        Which::Service(s) => {
            let (feed, _) = bench_feed(s.customers, s.months, &s.data)?;
            let label = format!("{} customers, {} months", s.customers, s.months);
            service::run(&feed, &label, &s.data, &s.report)
        }
        Which::Publish(s) => {
            let (feed, state) = ingested_state(s.customers, s.months, &s.data, &s.report)?;
            let label = format!("{} customers, {} months", s.customers, s.months);
            publish::run(&feed, &state, &label, &s.data, &s.report)
        }
        Which::Cluster(s) => {
            let (feed, state) = ingested_state(s.customers, s.months, &s.data, &s.report)?;
            let label = format!("{} customers, {} months", s.customers, s.months);
            cluster::run(&feed, &state, &label, &s.data, &s.report)
        }
    }
}

/// The ingest benchmark's feed and state of these sizes, made when missing.
fn ingested_state(
    customers: u64,
    months: u64,
    data: &Path,
    report_path: &Path,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (feed, _) = bench_feed(customers, months, data)?;
    let state = data.join(format!("state-{customers}x{months}"));
    if !state.join("checkpoints").exists() {
        ingest(customers, months, data, report_path)?;
    }
    Ok((feed, state))
}

/// See [`Which::Risk`].
fn risk(customers: u64, months: u64, data: &Path, report_path: &Path) -> anyhow::Result<()> {
    let (feed, state) = ingested_state(customers, months, data, report_path)?;
    let (feed, state) = (feed.to_string_lossy(), state.to_string_lossy());
    let base = ["--feed", &feed, "--state", &state, "--offline"];
    let with = |extra: &[&'static str]| [base.as_slice(), extra].concat();
    let debug = [("ARSTREAM_LOG", "arstream=debug")];
    let loaded = measure_with(&with(&["sql", "SELECT count(*) FROM invoices"]), &[]);
    let worklist = measure_with(&with(&["sql", "SELECT count(*) FROM worklist"]), &debug);
    let backtest = measure_with(
        &with(&["model", "report", "--format", "json", "--origins", "1"]),
        &[],
    );
    let spans = model_spans(&worklist.stderr);
    let span = |key: &str| span_of(&spans, key);
    let report: serde_json::Value = serde_json::from_str(&backtest.stdout)?;
    let (read, train, score, assign) = (
        span("read_s"),
        span("train_s"),
        span("score_s"),
        span("assign_s"),
    );
    let mut text = format!(
        "State: the ingest benchmark's ({customers} customers, {months} months), loaded offline.\n\n"
    );
    text.push_str(&command_table(&[
        (
            "`sql \"SELECT count(*) FROM invoices\"` (loading the state only)",
            &loaded,
        ),
        (
            "`sql \"SELECT count(*) FROM worklist\"` (load, train, score, assign)",
            &worklist,
        ),
        (
            "`model report --format json` (load, train at the cut-off, backtest)",
            &backtest,
        ),
    ]));
    text.push_str(&format!(
        "\nInner spans of the worklist command (debug log `model tables made`): reading the history {read:.1} s, training {train:.1} s ({} rows), scoring {score:.1} s ({} open invoices), the worklist query and assignment {assign:.1} s; **training and scoring with the history they read: {:.1} s** (the same command then makes the cash forecast: see its section).\n\n",
        spans.split("training_rows=").nth(1).unwrap_or("?").trim(),
        spans.split("invoices=").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or("?"),
        read + train + score,
    ));
    text.push_str(&format!(
        "Backtest at this size: AUC {:.3} (baseline {:.3}), Brier {:.4} (baseline {:.4}), {} test invoices, cut-off {}.\n",
        report["auc"].as_f64().unwrap_or(f64::NAN),
        report["baseline_auc"].as_f64().unwrap_or(f64::NAN),
        report["brier"].as_f64().unwrap_or(f64::NAN),
        report["baseline_brier"].as_f64().unwrap_or(f64::NAN),
        report["test_invoices"],
        report["cutoff"].as_str().unwrap_or("?"),
    ));
    text.push_str(
        "\nCommand: `cargo build --release && cargo run --release -p arstream-bench -- risk`.\n",
    );
    write_section(report_path, "risk", &text)?;
    println!("{text}");
    Ok(())
}

/// The debug line `model tables made` of a command's log.
fn model_spans(stderr: &str) -> String {
    (stderr.lines())
        .find(|l| l.contains("model tables made"))
        .unwrap_or("model tables made: n/a")
        .to_string()
}

/// The seconds of span `key` (`key_s=…`) of [`model_spans`].
fn span_of(spans: &str, key: &str) -> f64 {
    (spans.split_whitespace())
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// See [`Which::Forecast`].
fn forecast(customers: u64, months: u64, data: &Path, report_path: &Path) -> anyhow::Result<()> {
    let (feed, state) = ingested_state(customers, months, data, report_path)?;
    let (feed, state) = (feed.to_string_lossy(), state.to_string_lossy());
    let base = ["--feed", &feed, "--state", &state, "--offline"];
    let with = |extra: &[&'static str]| [base.as_slice(), extra].concat();
    let debug = [("ARSTREAM_LOG", "arstream=debug")];
    let loaded = measure_with(&with(&["sql", "SELECT count(*) FROM invoices"]), &[]);
    let weeks = measure_with(&with(&["sql", "SELECT * FROM cash_forecast"]), &debug);
    let kpi = measure_with(&with(&["kpi", "--format", "json"]), &[]);
    let backtest = measure_with(
        &with(&["model", "report", "--format", "json", "--origins", "1"]),
        &[],
    );
    let spans = model_spans(&weeks.stderr);
    let (read, forecast, backtested) = (
        span_of(&spans, "read_s"),
        span_of(&spans, "forecast_s"),
        span_of(&spans, "backtest_s"),
    );
    let report: serde_json::Value = serde_json::from_str(&backtest.stdout)?;
    let kpi: (serde_json::Value, Measured) = (serde_json::from_str(&kpi.stdout)?, kpi);
    let mut text = format!(
        "State: the ingest benchmark's ({customers} customers, {months} months), loaded offline.\n\n"
    );
    text.push_str(&command_table(&[
        (
            "`sql \"SELECT count(*) FROM invoices\"` (loading the state only)",
            &loaded,
        ),
        (
            "`sql \"SELECT * FROM cash_forecast\"` (load; risk model, worklist, forecast and backtest)",
            &weeks,
        ),
        (
            "`kpi --format json` (load, the KPIs, the forecast's backtest)",
            &kpi.1,
        ),
        (
            "`model report --format json` (load, both backtests)",
            &backtest,
        ),
    ]));
    text.push_str(&format!(
        "\nInner spans of the `cash_forecast` command (debug log `model tables made`): reading the history {read:.1} s, the forecast of the as-of date with its band {forecast:.1} s, the backtest 13 weeks before {backtested:.1} s; **forecast and backtest with the history they read: {:.1} s**.\n\n",
        read + forecast + backtested,
    ));
    text.push_str(&format!(
        "Backtest at this size, from {}: WAPE {:.3} (paid on due date {:.3}, average delay {:.3}), band coverage {:.2}, {} open invoices; `kpi` shows cash_forecast_wape {}.\n",
        report["forecast_from"].as_str().unwrap_or("?"),
        report["wape"].as_f64().unwrap_or(f64::NAN),
        report["wape_due_date"].as_f64().unwrap_or(f64::NAN),
        report["wape_average_delay"].as_f64().unwrap_or(f64::NAN),
        report["band_coverage"].as_f64().unwrap_or(f64::NAN),
        report["forecast_invoices"],
        kpi.0["cash_forecast_wape"],
    ));
    text.push_str(
        "\nCommand: `cargo build --release && cargo run --release -p arstream-bench -- forecast`.\n",
    );
    write_section(report_path, "forecast", &text)?;
    println!("{text}");
    Ok(())
}

/// The benchmark's policy: the shipped sequence without the risk-segment rule (which would
/// time the risk model, measured in its own section), no send window, its ledger in `folder`.
const OUTREACH_POLICY: &str = r#"name = "bench-dunning"
sender = "Accounts Receivable <ar@example.com>"
templates = "TEMPLATES"
ledger = "LEDGER"
payment_link = "https://pay.example.com/c/{{ customer_id | urlencode }}?invoices={{ invoice_ids | urlencode }}"

[[rules]]
name = "standard"
trigger = "days_past_due >= -3"
min_open_amount = 25

[[rules.stages]]
name = "courtesy"
day = -3
channel = "email"
template = "courtesy"

[[rules.stages]]
name = "first-reminder"
day = 1
channel = "email"
template = "reminder"

[[rules.stages]]
name = "second-reminder"
day = 7
channel = "email"
template = "reminder"

[[rules.stages]]
name = "sms-reminder"
day = 15
channel = "sms"
template = "sms-reminder"

[[rules.stages]]
name = "final-notice"
day = 30
channel = "email"
template = "final-notice"

[[rules.stages]]
name = "escalate"
day = 45
channel = "email"
template = "escalation"
to = "collector"
"#;

/// The as-of date of the outreach benchmark: the last day of the generated feed.
const OUTREACH_DAY: &str = "2026-11-30";

/// See [`Which::Outreach`].
fn outreach(customers: u64, months: u64, data: &Path, report_path: &Path) -> anyhow::Result<()> {
    let (feed, state) = ingested_state(customers, months, data, report_path)?;
    let folder = std::path::absolute(data.join("outreach-bench"))?;
    let ledger = folder.join("ledger");
    let _ = std::fs::remove_dir_all(&ledger);
    std::fs::create_dir_all(&folder)?;
    let templates =
        std::path::absolute(Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/templates"))?;
    let policy = folder.join("outreach.toml");
    let text = OUTREACH_POLICY
        .replace("TEMPLATES", &templates.to_string_lossy())
        .replace("LEDGER", &ledger.to_string_lossy());
    std::fs::write(&policy, text)?;
    let (feed, state, policy) = (
        feed.to_string_lossy(),
        state.to_string_lossy(),
        policy.to_string_lossy(),
    );
    // A fixed day, so that every run sends the same messages.
    let base = [
        "--feed",
        &feed,
        "--state",
        &state,
        "--offline",
        "--as-of",
        OUTREACH_DAY,
    ];
    let debug = [("ARSTREAM_LOG", "arstream=debug")];
    let loaded = measure_with(
        &[base.as_slice(), &["sql", "SELECT count(*) FROM invoices"]].concat(),
        &[],
    );
    let send = [base.as_slice(), &["outreach", "--policy", &policy, "send"]].concat();
    let first = measure_with(&send, &debug);
    anyhow::ensure!(
        first.stdout.contains(" sent"),
        "the send failed: {}",
        first.stderr
    );
    let again = measure_with(&send, &[]);
    let outbox = du(&ledger.join("outbox"));
    let files = walk_count(&ledger.join("outbox"));
    let line = |m: &Measured| m.stdout.lines().next().unwrap_or("").to_string();
    let span = |key: &str| {
        (first.stderr.lines())
            .find(|l| l.contains("outreach sent"))
            .map(|l| span_of(l, key))
            .unwrap_or(f64::NAN)
    };
    let mut text = format!(
        "State: the ingest benchmark's ({customers} customers, {months} months), loaded offline, as of {OUTREACH_DAY}. Policy: the shipped sequence (courtesy, reminders, SMS, final notice, escalation) without its risk-segment rule, no send window; every channel to the file outbox.\n\n"
    );
    text.push_str(&command_table(&[
        (
            "`sql \"SELECT count(*) FROM invoices\"` (loading the state only)",
            &loaded,
        ),
        (
            "`outreach send` (load, candidates, plan, render, record, write the outbox)",
            &first,
        ),
        (
            "`outreach send` again (the same day: nothing left to send)",
            &again,
        ),
    ]));
    text.push_str(&format!(
        "\nFirst send: `{}`; the outbox holds {files} files ({:.0} MiB). Second: `{}`.\n\nInner spans of the first send (debug log `outreach sent`): the engine over the loaded state and the candidates query {:.1} s ({} rows), planning, rendering, recording and writing the messages {:.1} s.\n",
        line(&first),
        outbox / 1_048_576.0,
        line(&again),
        span("candidates_s"),
        (first.stderr.lines()).find(|l| l.contains("outreach sent")).and_then(|l| l.split("rows=").nth(1)).and_then(|r| r.split_whitespace().next()).unwrap_or("?"),
        span("send_s"),
    ));
    text.push_str("\nCommand: `cargo build --release && cargo run --release -p arstream-bench -- outreach`.\n");
    write_section(report_path, "outreach", &text)?;
    println!("{text}");
    Ok(())
}

/// See [`Which::Dashboard`].
fn dashboard(customers: u64, months: u64, data: &Path, report_path: &Path) -> anyhow::Result<()> {
    use std::process::Command;
    use std::time::{Duration, Instant};
    anyhow::ensure!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "the dashboard benchmark needs tmux"
    );
    let (feed, state) = ingested_state(customers, months, data, report_path)?;
    let bin = arstream_binary()?;
    let folder = std::path::absolute(data.join("dashboard-bench"))?;
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder)?;
    // The dashboard started twice on the same state: the first time nothing is stored for it
    // (its ledger's tables, model tables and KPI history are made, and stored), the next
    // time they are read.
    let run = |log: &Path, wait_for_history: bool| -> anyhow::Result<(f64, f64, f64)> {
        let session = format!("arstream-bench-{}", std::process::id());
        let command = format!(
            "ARSTREAM_LOG=arstream=debug '{}' --feed '{}' --state '{}' dashboard --out '{}' 2> '{}'; echo dashboard-exited-$?; sleep 5",
            bin.display(),
            std::path::absolute(&feed)?.display(),
            std::path::absolute(&state)?.display(),
            folder.join("out").display(),
            log.display()
        );
        let screen = || -> String {
            Command::new("tmux")
                .args(["capture-pane", "-p", "-t", &session])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let keys = |k: &str| {
            let _ = Command::new("tmux")
                .args(["send-keys", "-t", &session, k])
                .status();
        };
        let wait_for = |text: &str, limit: Duration, every: Duration| -> anyhow::Result<f64> {
            let started = Instant::now();
            while started.elapsed() < limit {
                if screen().contains(text) {
                    return Ok(started.elapsed().as_secs_f64());
                }
                std::thread::sleep(every);
            }
            anyhow::bail!("the dashboard never showed '{text}':\n{}", screen())
        };
        let started = Instant::now();
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "160",
                "-y",
                "48",
                &command,
            ])
            .status()?;
        anyhow::ensure!(status.success(), "tmux could not start");
        let result = (|| -> anyhow::Result<(f64, f64, f64)> {
            wait_for(
                "arstream",
                Duration::from_secs(10),
                Duration::from_millis(5),
            )?;
            let first = started.elapsed().as_secs_f64();
            let loading = screen().contains("loading the state");
            anyhow::ensure!(loading, "the first frame does not say the state is loading");
            wait_for(
                "refresh #1",
                Duration::from_secs(600),
                Duration::from_millis(50),
            )?;
            let loaded = started.elapsed().as_secs_f64();
            // The models' panels (risk, worklist, forecast) come last.
            let deadline = Instant::now() + Duration::from_secs(900);
            while screen().contains("preparing") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            let ready = started.elapsed().as_secs_f64();
            // The KPI history comes after the models' panels; the first start waits until it
            // is stored, for the next to read it.
            let deadline = Instant::now() + Duration::from_secs(900);
            let history_stored = || {
                let manifests = std::fs::read_dir(state.join("models"))
                    .into_iter()
                    .flatten();
                (manifests.flatten()).any(|folder| {
                    std::fs::read_to_string(folder.path().join("manifest.json"))
                        .is_ok_and(|m| m.contains("dashboard_kpi_history"))
                })
            };
            while wait_for_history && !history_stored() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
            }
            for round in 0..20 {
                for k in ["2", "j", "j", "k", "3", "1"] {
                    keys(k);
                    std::thread::sleep(Duration::from_millis(if round == 0 { 300 } else { 60 }));
                }
            }
            keys("q");
            wait_for(
                "dashboard-exited-0",
                Duration::from_secs(30),
                Duration::from_millis(50),
            )?;
            Ok((first, loaded, ready))
        })();
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &session])
            .status();
        result
    };
    for stored in ["ledger", "models", "backtests"] {
        let _ = std::fs::remove_dir_all(state.join(stored));
    }
    let (_, cold_loaded, cold_ready) = run(&folder.join("first.log"), true)?;
    let log = folder.join("frames.log");
    let (first, loaded, ready) = run(&log, false)?;
    let text = std::fs::read_to_string(&log)?;
    let field = |line: &str, key: &str| -> Option<String> {
        let rest = line.split(&format!("{key}=")).nth(1)?;
        Some(rest.split_whitespace().next()?.to_string())
    };
    let times = |key: &str| -> Vec<f64> {
        let mut out: Vec<f64> = (text.lines())
            .filter(|l| l.contains("frame drawn"))
            .filter(|l| {
                field(l, "width").as_deref() == Some("160")
                    && field(l, "height").as_deref() == Some("48")
            })
            .filter(|l| field(l, "preparing").as_deref() == Some("false"))
            .filter_map(|l| field(l, key)?.parse::<f64>().ok())
            .map(|us| us / 1000.0)
            .collect();
        out.sort_by(f64::total_cmp);
        out
    };
    let (rendered, frames) = (times("render_us"), times("frame_us"));
    anyhow::ensure!(
        !frames.is_empty(),
        "no frame of the loaded state in the log"
    );
    let quantile = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let at = |q: f64| quantile(&frames, q);
    let mut body = format!(
        "State: the ingest benchmark's ({customers} customers, {months} months), the shipped `controller` layout, the standard pipeline behind it (its outputs written as it runs); `dashboard` in tmux at 160x48.\n\n"
    );
    body.push_str("| what | figure |\n|---|---|\n");
    body.push_str(&format!(
        "| first start on the state, nothing stored for it: first snapshot on the screen; every panel drawn | {cold_loaded:.1} s; {cold_ready:.1} s |\n"
    ));
    body.push_str("| the next start (what the first stored read back): |  |\n");
    body.push_str(&format!(
        "| first frame (\"loading the state…\"), from starting the command | {first:.2} s |\n"
    ));
    body.push_str(&format!(
        "| first snapshot on the screen (the state loaded, the KPIs drawn) | {loaded:.1} s |\n"
    ));
    body.push_str(&format!(
        "| every panel drawn (the models' panels: risk, worklist, forecast) | {ready:.1} s |\n"
    ));
    body.push_str(&format!(
        "| a full frame at 160x48, everything loaded (draw and write to the terminal; {} frames: tabs switched, rows moved) | median {:.3} ms, p99 {:.3} ms, max {:.3} ms |\n",
        frames.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    ));
    if !rendered.is_empty() {
        body.push_str(&format!(
            "| of which rendering the frame (every widget into the frame's buffer; inner span) | median {:.3} ms, p99 {:.3} ms, max {:.3} ms |\n",
            quantile(&rendered, 0.5),
            quantile(&rendered, 0.99),
            quantile(&rendered, 1.0)
        ));
    }
    body.push_str("\nFrame times are the dashboard's own (debug log `frame drawn`: from the start of the draw to the changed cells written to the terminal, and the inner span to the frame rendered into its buffer), the first frame is timed from outside (tmux polled every 5 ms).\n\nCommand: `cargo build --release && cargo run --release -p arstream-bench -- dashboard` (needs tmux).\n");
    write_section(report_path, "dashboard", &body)?;
    println!("{body}");
    Ok(())
}

/// How many files are under `dir`.
fn walk_count(dir: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => pending.push(e.path()),
                _ => count += 1,
            }
        }
    }
    count
}

/// The generated feed of these sizes, made when missing; returns its folder.
/// The first day of the generated feeds: `months` before this month, so that they end on
/// the last day of last month (commit times cannot lie in the future).
fn feed_start(months: u64) -> chrono::NaiveDate {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let this_month = today.with_day(1).unwrap_or(today);
    this_month - chrono::Months::new(months as u32)
}

/// The last day of the generated feeds.
fn feed_end(months: u64) -> chrono::NaiveDate {
    feed_start(months) + chrono::Months::new(months as u32) - chrono::Days::new(1)
}

fn bench_feed(
    customers: u64,
    months: u64,
    data: &Path,
) -> anyhow::Result<(PathBuf, Option<Measured>)> {
    let start = feed_start(months).to_string();
    let feed = data.join(format!("feed-{customers}x{months}-from-{start}"));
    if feed.join("DONE").exists() {
        println!("reusing {}", feed.display());
        return Ok((feed, None));
    }
    let _ = std::fs::remove_dir_all(&feed);
    let (c, m) = (customers.to_string(), months.to_string());
    let g = measure(&[
        "generate",
        "--out",
        &feed.to_string_lossy(),
        "--customers",
        &c,
        "--months",
        &m,
        "--seed",
        "1",
        "--start",
        &start,
    ]);
    std::fs::write(feed.join("DONE"), &g.stdout)?;
    println!("{}", g.stdout);
    Ok((feed, Some(g)))
}

/// The one file named `name` in the folders under `folder`.
fn glob_one(folder: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path().join(name);
        if path.exists() {
            found.push(path);
        }
    }
    anyhow::ensure!(
        found.len() == 1,
        "{} {name} under {}",
        found.len(),
        folder.display()
    );
    Ok(found.remove(0))
}

/// The collectors' first question of a state.
const WORKLIST_TOP_10: &str = "SELECT customer_id FROM worklist ORDER BY rank LIMIT 10";

fn kpi(
    customers: u64,
    months: u64,
    as_of: &str,
    data: &Path,
    report_path: &Path,
) -> anyhow::Result<()> {
    let (feed, _) = bench_feed(customers, months, data)?;
    let feed_s = feed.to_string_lossy().to_string();
    let state = data.join(format!("kpi-state-{customers}x{months}"));
    let _ = std::fs::remove_dir_all(&state);
    let state_s = state.to_string_lossy().to_string();
    let base = [
        "--feed", &feed_s, "--state", &state_s, "--as-of", as_of, "--window", "90",
    ];

    let mut args = base.to_vec();
    args.extend(["kpi", "--format", "json", "--timing"]);
    let raw = measure(&args);
    let mut args = base.to_vec();
    args.extend(["--offline", "kpi", "--format", "json", "--timing"]);
    // The state as the first command left it: its ledger's tables and the forecast's
    // backtest stored. Then the same without them (as a state checkpointed by a service).
    let loaded = measure(&args);
    // What a collector and a data scientist ask of the same state: the worklist's top 10 and
    // `model report`, each the first time (made and stored) and the next (read as stored).
    let offline = |command: &[&'static str]| {
        let mut args = base.to_vec();
        args.push("--offline");
        args.extend_from_slice(command);
        [measure(&args), measure(&args)]
    };
    let worklist = offline(&["sql", WORKLIST_TOP_10]);
    let report = offline(&["model", "report"]);
    // The backtest as arstream stored it, for DuckDB (which cannot run the models).
    let accuracy = data.join("kpi-forecast_accuracy.parquet");
    let stored = glob_one(&state.join("models"), "forecast_accuracy.parquet")?;
    std::fs::copy(&stored, &accuracy)?;
    for cache in ["ledger", "models", "backtests"] {
        let _ = std::fs::remove_dir_all(state.join(cache));
    }
    let cold = measure(&args);

    let python = python_with_duckdb(data)?;
    let python = python.to_str().unwrap_or("python3");
    let script = Path::new("benches/duckdb_kpi.py");
    anyhow::ensure!(
        script.exists(),
        "run from the repository root: benches/duckdb_kpi.py not found"
    );
    let duck = measure_program(
        python,
        &[
            &script.to_string_lossy(),
            &feed_s,
            as_of,
            "90",
            "queries",
            &accuracy.to_string_lossy(),
        ],
    );

    let ours: serde_json::Value = serde_json::from_str(&raw.stdout)?;
    let theirs: serde_json::Value = serde_json::from_str(&duck.stdout)?;
    let mut differences = Vec::new();
    for (key, value) in theirs["summary"].as_object().into_iter().flatten() {
        let (a, b) = (ours[key].as_f64(), value.as_f64());
        let same = match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * a.abs().max(1.0),
            _ => ours[key] == *value,
        };
        if !same {
            differences.push(format!("{key}: arstream {} duckdb {}", ours[key], value));
        }
    }
    let timing = |m: &Measured| {
        m.stderr
            .lines()
            .find(|l| l.starts_with("timing:"))
            .unwrap_or("timing: n/a")
            .to_string()
    };
    let ratio = raw.seconds / duck.seconds;
    let mut text = format!(
        "Feed: the ingest benchmark's ({customers} customers, {months} months); as of {as_of}, window 90 days.\n\n"
    );
    text.push_str("| what | time | peak memory |\n|---|---|---|\n");
    text.push_str(&format!(
        "| arstream, from the raw feed (new state, `kpi --format json`) | {:.1} s | {:.0} MiB |\n",
        raw.seconds, raw.peak_mib
    ));
    text.push_str(&format!(
        "| DuckDB {}, 2 threads, from the raw feed (dedup by window function, then the same views; the backtest as arstream stored it) | {:.1} s | {:.0} MiB |\n",
        "2.0", duck.seconds, duck.peak_mib
    ));
    text.push_str(&format!(
        "| arstream, state already checkpointed, its ledger's tables and backtest stored by the command before (`--offline kpi`) | {:.1} s | {:.0} MiB |\n",
        loaded.seconds, loaded.peak_mib
    ));
    text.push_str(&format!(
        "| arstream, state already checkpointed, nothing stored (`--offline kpi` after deleting `ledger/`, `models/` and `backtests/`) | {:.1} s | {:.0} MiB |\n",
        cold.seconds, cold.peak_mib
    ));
    for (what, [first, next]) in [
        (format!("`--offline sql \"{WORKLIST_TOP_10}\"`"), &worklist),
        ("`--offline model report`".to_string(), &report),
    ] {
        text.push_str(&format!(
            "| arstream, {what}, the first time (made and stored) | {:.1} s | {:.0} MiB |\n| arstream, {what}, the next time (read as stored) | {:.1} s | {:.0} MiB |\n",
            first.seconds, first.peak_mib, next.seconds, next.peak_mib
        ));
    }
    text.push('\n');
    text.push_str(&format!(
        "Ratio arstream / DuckDB from the raw feed: **{ratio:.2}** (target at most 1.0).\n\n"
    ));
    text.push_str(&format!(
        "Stages, from the raw feed: `{}`\n\nStages, state loaded, tables stored: `{}`\n\nStages, state loaded, nothing stored: `{}`\n\nDuckDB: load and dedup {:.1} s, views and summary {:.1} s.\n\n",
        timing(&raw),
        timing(&loaded),
        timing(&cold),
        theirs["load_seconds"].as_f64().unwrap_or(0.0),
        theirs["summary_seconds"].as_f64().unwrap_or(0.0)
    ));
    if differences.is_empty() {
        text.push_str("Both summaries agree on every column (to 1e-6).\n");
    } else {
        text.push_str(&format!(
            "The summaries differ: {}\n",
            differences.join("; ")
        ));
    }
    write_section(report_path, "kpi", &text)?;
    println!("{text}");
    Ok(())
}

/// Wall time and peak resident memory of one child process.
struct Measured {
    seconds: f64,
    peak_mib: f64,
    stdout: String,
    stderr: String,
}

fn measure(args: &[&str]) -> Measured {
    measure_with(args, &[])
}

/// [`measure`] with these environment variables set for the child.
fn measure_with(args: &[&str], envs: &[(&str, &str)]) -> Measured {
    let bin = arstream_binary().expect("the arstream binary");
    measure_program_with(&bin.to_string_lossy(), args, envs)
}

/// The release binary of arstream beside this one (`cargo build --release` makes it).
pub(crate) fn arstream_binary() -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe()?;
    let bin = own.with_file_name(format!("arstream{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it first with `cargo build --release`",
        bin.display()
    );
    Ok(bin)
}

/// The Python of a virtual environment under the data folder with DuckDB 2.0 in it (made on
/// first use), so that nothing is installed into the system's Python.
fn python_with_duckdb(data: &Path) -> anyhow::Result<PathBuf> {
    python_with(data, "duckdb==2.0.0", "duckdb")
}

/// The Python of the data folder's virtual environment with `package` (a pip requirement)
/// installed, made and installed on first use.
pub(crate) fn python_with(data: &Path, package: &str, module: &str) -> anyhow::Result<PathBuf> {
    let venv = data.join("venv");
    let python = venv.join("bin/python3");
    let has = |python: &Path| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(&python) {
        return Ok(python);
    }
    println!("installing {package} into {}", venv.display());
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?;
        anyhow::ensure!(
            made.success(),
            "cannot make a virtual environment at {}",
            venv.display()
        );
    }
    let ok = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", package])
        .status()?;
    anyhow::ensure!(
        ok.success() && has(&python),
        "could not install {package} into {}",
        venv.display()
    );
    Ok(python)
}

fn measure_program(program: &str, args: &[&str]) -> Measured {
    measure_program_with(program, args, &[])
}

// The child is reaped by wait4, which also gives its own peak memory.
#[allow(clippy::zombie_processes)]
fn measure_program_with(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Measured {
    println!("running {program} {}", args.join(" "));
    let tmp = std::env::temp_dir();
    let out_path = tmp.join(format!("arstream-bench-{}.out", std::process::id()));
    let err_path = tmp.join(format!("arstream-bench-{}.err", std::process::id()));
    let out_file = std::fs::File::create(&out_path).expect("create output file");
    let err_file = std::fs::File::create(&err_path).expect("create output file");
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
        .expect("start the benchmarked program");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid pointers; reaps it and fills its usage.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4 failed");
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{program} {args:?} failed:\n{stdout}\n{stderr}"
    );
    Measured {
        seconds,
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
        stdout,
        stderr,
    }
}

/// Full ingests of each format, in turn, for the ingest benchmark's medians.
const INGEST_RUNS: usize = 3;

/// The run of median time.
fn median_run(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    runs.swap_remove(runs.len() / 2)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The query that reads a checkpointed state back, and shows that two states agree.
const RELOAD_QUERY: &str = "SELECT count(*) AS invoices, sum(amount) AS amount FROM invoices";

fn ingest(customers: u64, months: u64, data: &Path, report_path: &Path) -> anyhow::Result<()> {
    let (feed, generated) = bench_feed(customers, months, data)?;
    let state = data.join(format!("state-{customers}x{months}"));
    let summary = std::fs::read_to_string(feed.join("DONE")).unwrap_or_default();
    let rows: u64 = summary
        .split("files (")
        .nth(1)
        .and_then(|s| s.split(", ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let invoices: u64 = summary
        .lines()
        .find(|l| l.trim_start().starts_with("invoices"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);

    // The ingest alone: a config without pipelines, so that `run --once` writes no outputs.
    let config = data.join("ingest-only.toml");
    std::fs::write(&config, "[engine]\npipelines = \"no-pipelines\"\n")?;
    // The same changes as AWS DMS writes them, read with `--feed-format dms`.
    let dms_feed = dms::feed(&feed, data)?;
    let dms_state = data.join(format!("state-{customers}x{months}-dms"));
    // arstream on a feed and state of the given format, with the ingest-only config.
    let on = |feed: &Path, state: &Path, format: &str, command: &[&str]| {
        let (feed, state) = (feed.to_str().unwrap(), state.to_str().unwrap());
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "--feed-format",
            format,
        ];
        args.extend(["--feed", feed, "--state", state]);
        args.extend(command);
        measure(&args)
    };
    let full_ingest = |feed: &Path, state: &Path, format: &str| {
        let _ = std::fs::remove_dir_all(state);
        let run = on(feed, state, format, &["run", "--once"]);
        println!("{}", run.stdout);
        run
    };
    // Each format three times, in turn, so that a drift of the machine's speed touches both.
    let mut native_runs = Vec::new();
    let mut dms_runs = Vec::new();
    for _ in 0..INGEST_RUNS {
        native_runs.push(full_ingest(&feed, &state, "arstream"));
        dms_runs.push(full_ingest(&dms_feed, &dms_state, "dms"));
    }
    let ratios: Vec<f64> = (native_runs.iter().zip(&dms_runs))
        .map(|(n, d)| d.seconds / n.seconds)
        .collect();
    let ingest = median_run(native_runs);
    let dms_ingest = median_run(dms_runs);
    let ratio = median(ratios);
    let reload_of = |feed: &Path, state: &Path, format: &str| {
        on(feed, state, format, &["--offline", "sql", RELOAD_QUERY])
    };
    let reload = reload_of(&feed, &state, "arstream");
    let dms_reload = reload_of(&dms_feed, &dms_state, "dms");
    anyhow::ensure!(
        dms_reload.stdout == reload.stdout,
        "the DMS feed's state differs from the native one's:\n{}\n{}",
        dms_reload.stdout,
        reload.stdout
    );
    let disk = du(&feed);

    let mut report = String::new();
    report.push_str(&format!(
        "Feed: `arstream generate --customers {customers} --months {months} --seed 1 --start {}`: {rows} change rows, {invoices} invoice changes, {:.0} MB of Parquet.\n\n",
        feed_start(months),
        disk / 1e6
    ));
    report.push_str("| step | time | change rows / s | peak memory |\n|---|---|---|---|\n");
    let row = |step: &str, run: &Measured, with_rate: bool| {
        let rate = match with_rate {
            true => format!("{:.0}", rows as f64 / run.seconds),
            false => String::new(),
        };
        format!(
            "| {step} | {:.1} s | {rate} | {:.0} MiB |\n",
            run.seconds, run.peak_mib
        )
    };
    if let Some(g) = &generated {
        report.push_str(&row("generate", g, true));
    }
    let native_step = format!("full ingest (`run`, new state; median of {INGEST_RUNS})");
    report.push_str(&row(&native_step, &ingest, true));
    let reload_step =
        format!("reload of the checkpointed state (`--offline sql \"{RELOAD_QUERY}\"`)");
    report.push_str(&row(&reload_step, &reload, false));
    let dms_step = format!(
        "full ingest of the same changes as AWS DMS writes them (`--feed-format dms`, new state; median of {INGEST_RUNS})"
    );
    report.push_str(&row(&dms_step, &dms_ingest, true));
    report.push('\n');
    report.push_str(&format!(
        "The `dms` format's ingest takes {:.2} times the native one's (median of the {INGEST_RUNS} pairs, each run in turn; target: at most 1.20); both states hold the same invoices (`{RELOAD_QUERY}` gives the same on each). The DMS copy of the feed (`{}`, made once by the benchmark: each native file as one change file under `dbo/<table>/YYYY/MM/DD/`, with `Op`, `ar_timestamp` and a 35-digit `ar_change_seq`) is {:.0} MB.\n\n",
        ratio,
        dms_feed.file_name().unwrap_or_default().to_string_lossy(),
        du(&dms_feed) / 1e6
    ));
    for (label, run) in [("native", &ingest), ("dms", &dms_ingest)] {
        let detail: Vec<&str> = run.stdout.lines().take(2).collect();
        report.push_str(&format!(
            "Where the ingest time went ({label}):\n\n    {}\n\n",
            detail.join("\n    ")
        ));
    }
    write_section(report_path, "ingest", &report)?;
    println!("{report}");
    Ok(())
}

fn du(path: &Path) -> f64 {
    let mut total = 0.0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += du(&p);
            } else if let Ok(m) = e.metadata() {
                total += m.len() as f64;
            }
        }
    }
    total
}

/// A table of whole commands: what each did, its time and its peak memory.
fn command_table(rows: &[(&str, &Measured)]) -> String {
    let mut text = String::from("| command | time | peak memory |\n|---|---|---|\n");
    for (what, m) in rows {
        text.push_str(&format!(
            "| {what} | {:.1} s | {:.0} MiB |\n",
            m.seconds, m.peak_mib
        ));
    }
    text
}

/// Replace the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` (appended when absent).
pub(crate) fn write_section(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let machine = format!(
        "Measured {} on {} cores ({}), release build.\n\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::env::consts::ARCH
    );
    let (start, end) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    let block = format!("{start}\n{machine}{body}{end}");
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let text = match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) => format!("{}{block}{}", &text[..a], &text[b + end.len()..]),
        _ => format!("{}\n{block}\n", text.trim_end()),
    };
    std::fs::write(path, text)?;
    Ok(())
}
