//! `arstream-bench service`: the service as a collections team runs it, at the generated feed's
//! size: `arstream run --headless` with a pipeline writing the KPI summary and the worklist at
//! every refresh. Three customers from the top of the worklist each pay every open invoice,
//! one file per customer landed in the feed (written aside, renamed in); a file's latency runs
//! from its rename to the moment this process reads a `worklist/latest.parquet` without that
//! customer (polled every 5 ms). Then the service's CPU while nothing lands, and its peak
//! memory (the kernel's high-water mark of its resident set). The state is built by
//! `run --once` with the same pipeline; the landed files and the state are removed afterwards.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::generate::simulate::Op;

use super::workspace::{Workspace, decode, output_in};
use super::write_section;

/// Customers who pay everything, one file each.
const PAYERS: usize = 3;
/// How long the idle CPU is measured, once the service has settled.
const IDLE: Duration = Duration::from_secs(60);

const PIPELINE: &str = r#"# The KPI summary and the worklist written at every refresh.
name = "service"
as_of = "feed"

[schedule]
every = "1s"

[[steps]]
view = "kpi_summary"
keep = "per_as_of"

[[steps]]
view = "worklist"
keep = "latest"
"#;

/// An open invoice a payer settles.
struct Open {
    customer: String,
    invoice: String,
    currency: String,
    /// In hundredths of its currency.
    cents: i64,
}

pub fn run(feed: &Path, label: &str, data: &Path, report: &Path) -> anyhow::Result<()> {
    let pipelines = data.join("service-pipelines");
    std::fs::create_dir_all(&pipelines)?;
    std::fs::write(pipelines.join("service.toml"), PIPELINE)?;
    let work = Workspace::new(&data.join("service-work"), feed, &pipelines)?;
    let (out, once_out) = (work.dir.join("out"), work.dir.join("once-out"));
    let landed = feed.join("payments/bench-service");
    let _ = std::fs::remove_dir_all(&landed);
    println!("{label}: building the state (run --once)");
    let built = Instant::now();
    work.run_once("service", &once_out)?;
    println!("  {:.1} s", built.elapsed().as_secs_f64());

    let as_of = as_of_of(&once_out.join("kpi_summary"))?;
    let as_of_date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")
        + chrono::Days::new(as_of as u64);
    let worklist = read_worklist(&once_out.join("worklist/latest.parquet"))
        .ok_or_else(|| anyhow::anyhow!("run --once wrote no worklist"))?;
    let payers: Vec<String> = worklist.into_iter().take(PAYERS).collect();
    let open = open_invoices(&work, &payers)?;

    let log = std::fs::File::create(data.join("service.log"))?;
    let started = Instant::now();
    let child = (work.arstream())
        .args(["run", "--pipeline", "service", "--headless", "--out"])
        .arg(&out)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    let written = out.join("worklist/latest.parquet");
    let deadline = Instant::now() + Duration::from_secs(1800);
    while !written.exists() {
        anyhow::ensure!(Instant::now() < deadline, "run wrote no worklist");
        std::thread::sleep(Duration::from_millis(5));
    }
    let startup_s = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&landed)?;
    let mut latencies_ms = Vec::new();
    for (n, payer) in payers.iter().enumerate() {
        let settled = settle(pid, Duration::from_secs(300));
        println!("  settled in {:.1} s", settled.as_secs_f64());
        let batch = payments(&open, payer, as_of, n);
        let bytes = arstream::parquet_io::encode(&batch.schema(), &[batch])?;
        let hidden = landed.join(format!(".payer-{n}.parquet"));
        std::fs::write(&hidden, bytes)?;
        std::fs::rename(&hidden, landed.join(format!("payer-{n}.parquet")))?;
        let landed_at = Instant::now();
        let deadline = landed_at + Duration::from_secs(600);
        let mut seen = None;
        loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{payer} was still in the worklist 600 s after paying"
            );
            let id = std::fs::metadata(&written)
                .ok()
                .map(|m| (m.ino(), m.mtime_nsec()));
            if id.is_some() && id != seen {
                seen = id;
                if let Some(customers) = read_worklist(&written)
                    && !customers.contains(payer)
                {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let ms = landed_at.elapsed().as_secs_f64() * 1000.0;
        println!("  {payer} paid everything: gone from the worklist after {ms:.0} ms");
        latencies_ms.push(ms);
    }
    let settled = settle(pid, Duration::from_secs(300));
    let idle = cpu_share(pid, IDLE);
    let peak_mib = peak_memory_mib(pid);
    work.stop(child)?;
    let _ = std::fs::remove_dir_all(&landed);
    let _ = std::fs::remove_dir_all(&pipelines);

    let all: Vec<String> = latencies_ms.iter().map(|v| format!("{v:.0}")).collect();
    let max = latencies_ms.iter().copied().fold(f64::NAN, f64::max);
    let text = format!(
        "Feed: {label}. `arstream run --pipeline service --headless`, the pipeline writing `kpi_summary` and `worklist` at every refresh (the feed polled every 1 s, and watched), on a state built by `run --once` with the same pipeline. Each of the worklist's top {PAYERS} customers pays every open invoice, one file per customer (its open amounts, dated the as-of date {as_of_date}), landed once the service is idle (its CPU under 10 % of a core over 2 s: {settled:.1} s after the last file). Latency: from the file's rename to the moment another process (the benchmark) reads a `worklist/latest.parquet` without the customer (polled every 5 ms). Idle CPU: the service's user and system time over {idle_s} s with nothing landing, once settled. Peak memory: the service's resident high-water mark (VmHWM) at the end.\n\n| start-up (to the first worklist) | payer leaves the worklist: max | all (ms) | idle CPU | peak memory |\n|---|---|---|---|---|\n| {startup_s:.1} s | {max:.0} ms | {} | {:.1} % of a core | {peak_mib} MiB |\n\nTargets at 10 million invoices: the payer gone within 5 s; idle CPU under 5 % of a core; peak memory 6 GiB.\n\nCommand: `cargo build --release && cargo run --release -p arstream-bench -- service`.\n",
        all.join(", "),
        idle * 100.0,
        settled = settled.as_secs_f64(),
        idle_s = IDLE.as_secs(),
    );
    write_section(report, "service", &text)?;
    println!("{text}");
    Ok(())
}

/// The as-of date of the one `kpi_summary` file under `dir`, as a day number.
fn as_of_of(dir: &Path) -> anyhow::Result<i32> {
    let batch =
        output_in(dir).ok_or_else(|| anyhow::anyhow!("no kpi_summary under {}", dir.display()))?;
    let column = (batch.column_by_name("as_of"))
        .ok_or_else(|| anyhow::anyhow!("kpi_summary has no as_of"))?;
    Ok(column
        .as_primitive::<arrow::datatypes::Date32Type>()
        .value(0))
}

/// The customers of a written worklist, in rank order; `None` while it cannot be read.
fn read_worklist(file: &Path) -> Option<Vec<String>> {
    let batch = decode(file)?;
    let ranks = batch
        .column_by_name("rank")?
        .as_primitive::<arrow::datatypes::UInt64Type>();
    let ids = arrow::compute::cast(
        batch.column_by_name("customer_id")?,
        &arrow::datatypes::DataType::Utf8,
    )
    .ok()?;
    let ids = ids.as_string::<i32>();
    let mut ranked: Vec<(u64, String)> = (0..batch.num_rows())
        .map(|r| (ranks.value(r), ids.value(r).to_string()))
        .collect();
    ranked.sort();
    Some(ranked.into_iter().map(|(_, id)| id).collect())
}

/// The open invoices of `customers`, read from the state with `--offline sql`.
fn open_invoices(work: &Workspace, customers: &[String]) -> anyhow::Result<Vec<Open>> {
    let list: Vec<String> = customers.iter().map(|c| format!("'{c}'")).collect();
    let sql = format!(
        "SELECT customer_id, invoice_id, currency, CAST(round(open_amount * 100) AS BIGINT) AS cents FROM open_items WHERE open_amount > 0 AND customer_id IN ({})",
        list.join(", ")
    );
    let output = (work.arstream())
        .args(["--offline", "sql", "--format", "csv", &sql])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let mut open = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        anyhow::ensure!(fields.len() == 4, "unexpected line {line}");
        open.push(Open {
            customer: fields[0].to_string(),
            invoice: fields[1].to_string(),
            currency: fields[2].to_string(),
            cents: fields[3].parse()?,
        });
    }
    let paying: HashSet<&str> = open.iter().map(|o| o.customer.as_str()).collect();
    anyhow::ensure!(
        paying.len() == customers.len(),
        "open invoices for {} of {} customers",
        paying.len(),
        customers.len()
    );
    Ok(open)
}

/// File `n`: `payer` pays each of its open invoices in full on day `as_of`.
fn payments(open: &[Open], payer: &str, as_of: i32, n: usize) -> RecordBatch {
    let mut b = BatchBuilder::new(Entity::Payments);
    for (i, o) in open.iter().filter(|o| o.customer == payer).enumerate() {
        let seq = 9_100_000_000_000 + (n * 100_000 + i) as i64;
        let id = format!("BENCH-PAYER-{n}-{i}");
        // `_ts` 0 leaves the feed's last day (the as-of date) where it was.
        b.row(Op::Create, seq, 0)
            .text(Some(&id))
            .text(Some(&o.customer))
            .text(Some(&o.invoice))
            .date(Some(as_of))
            .decimal(o.cents as i128)
            .text(Some(&o.currency));
    }
    b.finish()
}

/// User and system CPU time of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's name, which is in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / per_second)
}

/// The share of a core process `pid` used over `span`.
fn cpu_share(pid: u32, span: Duration) -> f64 {
    let before = cpu_time(pid);
    std::thread::sleep(span);
    (cpu_time(pid) - before).as_secs_f64() / span.as_secs_f64()
}

/// Wait until process `pid` uses under 10 % of a core over 2 s (at most `limit`): how long it took.
fn settle(pid: u32, limit: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit && cpu_share(pid, Duration::from_secs(2)) >= 0.10 {}
    started.elapsed()
}

/// The resident high-water mark of process `pid`, in MiB.
pub(crate) fn peak_memory_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (status.lines())
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
