//! `arstream bench refresh`: how long a file of 10,000 changes takes to show up in the
//! outputs while `arstream run` is running, on the sample feed and on the big generated one.
//!
//! For each case the benchmark builds a state with `run --once`, starts `run --headless
//! --log-format json` on it, lands files of 10,000 new payments (on existing invoices) one at
//! a time (written under a hidden name, then renamed: a reader never sees half a file), and
//! times each from the rename to the refresh line that follows it, which `run` prints once the
//! outputs are written. The landed files and the state are removed afterwards, so the feed is
//! left as it was.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};

use super::bench::write_section;
use crate::feed::contract::Entity;
use crate::generate::render::BatchBuilder;
use crate::generate::simulate::Op;

/// Changes per landed file.
const CHANGES: usize = 10_000;

/// The pipelines timed: only the KPI outputs; the steps of the shipped `pipelines/standard.toml`
/// (whose per-invoice `open_items` is written at most every 15 minutes); and the same with
/// `open_items` written at every refresh (its cost follows the size of the state).
fn pipelines() -> anyhow::Result<Vec<(&'static str, String)>> {
    let shipped = std::fs::read_to_string("pipelines/standard.toml")?;
    let steps = shipped
        .find("[[steps]]")
        .map(|at| shipped[at..].to_string())
        .ok_or_else(|| anyhow::anyhow!("pipelines/standard.toml has no steps"))?;
    let step =
        |view: &str, keep: &str| format!("[[steps]]\nview = \"{view}\"\nkeep = \"{keep}\"\n\n");
    Ok(vec![
        (
            "kpi",
            step("kpi_summary", "per_as_of") + &step("aging_totals", "latest"),
        ),
        ("standard", steps),
        (
            "standard_eager",
            step("kpi_summary", "per_as_of")
                + &step("aging", "latest")
                + &step("open_items", "latest"),
        ),
    ])
}

/// One timed case.
struct Case {
    feed: String,
    pipeline: &'static str,
    startup_s: f64,
    latencies_ms: Vec<f64>,
    refresh_ms: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

pub fn run(
    big_feed: &Path,
    big_label: &str,
    files: usize,
    data: &Path,
    report: &Path,
) -> anyhow::Result<()> {
    // The sample feed is copied, so that the repository's stays as it is.
    let sample = data.join("refresh-sample-feed");
    let _ = std::fs::remove_dir_all(&sample);
    copy_tree(Path::new("sample-data/feed"), &sample)?;
    let mut cases = Vec::new();
    for (feed, label) in [(sample.as_path(), "sample feed"), (big_feed, big_label)] {
        for (name, steps) in pipelines()? {
            cases.push(time_case(feed, label, name, &steps, files, data)?);
        }
    }
    let mut text = format!(
        "Each case: `arstream run --pipeline NAME --headless --log-format json --interval 0.05` on a state built by `run --once`; {files} files of {CHANGES} new payments (on existing invoices) landed one at a time. Latency: from the file's rename into the feed to the refresh line, printed once the outputs are written (includes up to 50 ms of polling). Refresh: the `took_ms` of that line (catch-up, ledger, views, outputs). Pipeline `kpi` writes `kpi_summary` and `aging_totals`; `standard` is `pipelines/standard.toml`: `kpi_summary`, the per-customer `aging` and the per-invoice `open_items` at most every 15 minutes (so not in these refreshes); `standard_eager` writes `open_items` at every refresh.\n\n"
    );
    text.push_str("| feed | pipeline | start-up | median latency | median refresh | all latencies (ms) |\n|---|---|---|---|---|---|\n");
    for c in &cases {
        let all: Vec<String> = c.latencies_ms.iter().map(|v| format!("{v:.0}")).collect();
        text.push_str(&format!(
            "| {} | {} | {:.1} s | {:.0} ms | {:.0} ms | {} |\n",
            c.feed,
            c.pipeline,
            c.startup_s,
            median(&c.latencies_ms),
            median(&c.refresh_ms),
            all.join(", ")
        ));
    }
    text.push_str("\nTargets on 2 cores: under 200 ms on the sample feed and under 1 s at 10 million invoices (median).\n\nCommand: `cargo build --release && target/release/arstream bench refresh`.\n");
    write_section(report, "refresh", &text)?;
    println!("{text}");
    let _ = std::fs::remove_dir_all(&sample);
    Ok(())
}

fn time_case(
    feed: &Path,
    label: &str,
    pipeline: &'static str,
    steps: &str,
    files: usize,
    data: &Path,
) -> anyhow::Result<Case> {
    let work = data.join(format!("refresh-{pipeline}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("pipelines"))?;
    std::fs::write(work.join("arstream.toml"), "[kpi]\nas_of = \"feed\"\n")?;
    std::fs::write(
        work.join(format!("pipelines/{pipeline}.toml")),
        format!("name = \"{pipeline}\"\nout = \"out\"\n\n[schedule]\nevery = \"1s\"\n\n{steps}"),
    )?;
    let landed = feed.join("payments/bench-refresh");
    let _ = std::fs::remove_dir_all(&landed);
    let bin = std::env::current_exe()?;
    let base = |cmd: &mut Command| {
        cmd.arg("--config")
            .arg(work.join("arstream.toml"))
            .arg("--feed")
            .arg(feed)
            .arg("--state")
            .arg(work.join("state"));
    };
    println!("{label}, pipeline {pipeline}: building the state");
    let mut once = Command::new(&bin);
    base(&mut once);
    let status = once
        .args(["run", "--once", "--pipeline", pipeline])
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "run --once failed on {}", feed.display());

    let invoices = sample_invoices(feed, CHANGES)?;
    let started = Instant::now();
    let mut service = Command::new(&bin);
    base(&mut service);
    let mut child = service
        .args([
            "--log-format",
            "json",
            "run",
            "--headless",
            "--interval",
            "0.05",
        ])
        .args(["--pipeline", pipeline])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let refresh_line = |rx: &mpsc::Receiver<(Instant, String)>, wait: Duration| {
        let deadline = Instant::now() + wait;
        while let Ok((at, line)) =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if value["event"] == "refresh" {
                return Some((at, value));
            }
        }
        None
    };
    let first = refresh_line(&rx, Duration::from_secs(1800));
    anyhow::ensure!(first.is_some(), "run did not start on {}", feed.display());
    let startup_s = started.elapsed().as_secs_f64();
    let (mut latencies_ms, mut refresh_ms) = (Vec::new(), Vec::new());
    std::fs::create_dir_all(&landed)?;
    for n in 0..files {
        let batch = payments(&invoices, n);
        let bytes = crate::parquet_io::encode(&batch.schema(), &[batch])?;
        let hidden = landed.join(format!(".part-{n:03}.parquet"));
        std::fs::write(&hidden, bytes)?;
        std::fs::rename(&hidden, landed.join(format!("part-{n:03}.parquet")))?;
        let landed_at = Instant::now();
        let (at, line) = refresh_line(&rx, Duration::from_secs(600))
            .ok_or_else(|| anyhow::anyhow!("no refresh after landing file {n}"))?;
        anyhow::ensure!(
            line["files_applied"].as_u64() == Some(1),
            "refresh applied {} files, not 1: {line}",
            line["files_applied"]
        );
        latencies_ms.push(at.duration_since(landed_at).as_secs_f64() * 1000.0);
        refresh_ms.push(line["took_ms"].as_f64().unwrap_or(f64::NAN));
        println!("  file {n}: {:.0} ms", latencies_ms[n]);
    }
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    child.wait()?;
    let _ = std::fs::remove_dir_all(&landed);
    let _ = std::fs::remove_dir_all(&work);
    Ok(Case {
        feed: label.to_string(),
        pipeline,
        startup_s,
        latencies_ms,
        refresh_ms,
    })
}

/// An existing invoice to pay: id, customer, currency, due date.
struct Invoice {
    id: String,
    customer: String,
    currency: String,
    due: i32,
}

/// Up to `n` invoices read from the feed's invoice files.
fn sample_invoices(feed: &Path, n: usize) -> anyhow::Result<Vec<Invoice>> {
    let mut out = Vec::new();
    // Listed as a catch-up lists the feed (this runs on a blocking thread of the runtime).
    let location = crate::store::open(&feed.display().to_string(), false)?;
    let listed = tokio::runtime::Handle::current()
        .block_on(crate::feed::discover::discover(&location))?
        .files;
    let files = listed
        .iter()
        .filter(|f| f.entity == Some(Entity::Invoices))
        .map(|f| feed.join(&f.relative));
    for file in files {
        let bytes = bytes::Bytes::from(std::fs::read(&file)?);
        let batch = crate::feed::validate::decode_parquet(&file.display().to_string(), bytes)
            .map_err(|v| anyhow::anyhow!("{}", v.reason()))?;
        let col = |name: &str| batch.column_by_name(name).expect("contract column");
        let (ids, customers, currencies) = (
            col("invoice_id").as_string::<i32>(),
            col("customer_id").as_string::<i32>(),
            col("currency").as_string::<i32>(),
        );
        let dues = col("due_date").as_primitive::<arrow::datatypes::Date32Type>();
        for r in 0..batch.num_rows() {
            if ids.is_valid(r) && customers.is_valid(r) && dues.is_valid(r) {
                out.push(Invoice {
                    id: ids.value(r).to_string(),
                    customer: customers.value(r).to_string(),
                    currency: currencies.value(r).to_string(),
                    due: dues.value(r),
                });
            }
            if out.len() >= n {
                return Ok(out);
            }
        }
    }
    anyhow::ensure!(!out.is_empty(), "no invoices in {}", feed.display());
    Ok(out)
}

/// File `n` of the benchmark: a new payment of 1.00 on each invoice, dated its due date.
fn payments(invoices: &[Invoice], n: usize) -> RecordBatch {
    let mut b = BatchBuilder::new(Entity::Payments);
    for i in 0..CHANGES {
        let invoice = &invoices[i % invoices.len()];
        let seq = 9_000_000_000_000 + (n * CHANGES + i) as i64;
        let id = format!("BENCH-{n}-{i}");
        // `_ts` 0 leaves the feed's last day (the as-of date) where it was.
        b.row(Op::Create, seq, 0)
            .text(Some(&id))
            .text(Some(&invoice.customer))
            .text(Some(&invoice.id))
            .date(Some(invoice.due))
            .decimal(100)
            .text(Some(&invoice.currency));
    }
    b.finish()
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}
