//! `arstream-bench cluster`: the views on a Ballista cluster of one executor, beside the
//! single-node engine on the same machine. The ingest benchmark's state is published (as the
//! publish benchmark does; nothing is written when it already is), an `arstream scheduler` and
//! one `arstream executor` are started, and each query runs as a whole command three ways:
//! single node on the state (`--plain`, the definition the cluster runs), single node over the
//! published tables, and `--cluster` over the same published tables. The executor's and the
//! scheduler's own peak memory are read at the end.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Measured, arstream_binary, measure_with, write_section};

/// The queries timed: the KPI summary (which reads the cash forecast's backtest, so the
/// models are made for it) and the aging totals (no models).
const QUERIES: [(&str, &str); 2] = [
    ("kpi_summary", "SELECT * FROM kpi_summary"),
    ("aging_totals", "SELECT * FROM aging_totals"),
];

pub fn run(
    feed: &Path,
    state: &Path,
    label: &str,
    data: &Path,
    report: &Path,
) -> anyhow::Result<()> {
    let to = std::path::absolute(data.join("published"))?;
    let (feed, state, to_text) = (
        feed.to_string_lossy(),
        state.to_string_lossy(),
        to.to_string_lossy(),
    );
    let base = ["--feed", &*feed, "--state", &*state, "--offline"];
    let with = |extra: &[&str]| -> Vec<String> {
        (base.iter().chain(extra)).map(|s| s.to_string()).collect()
    };
    let published = measure(&with(&["publish", "--to", &to_text]));

    let bin = arstream_binary()?;
    let mut scheduler = Command::new(&bin)
        .args(["scheduler", "--bind", "127.0.0.1:0"])
        .args(["--external-host", "127.0.0.1"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(scheduler.stdout.take().expect("piped")).read_line(&mut line)?;
    let port = (line.split("127.0.0.1:").nth(1))
        .and_then(|rest| rest.split(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("the scheduler did not say where it listens: {line}"))?;
    let executor = Command::new(&bin)
        .args(["executor", "--scheduler", &format!("127.0.0.1:{port}")])
        .args(["--port", &free_port()?.to_string()])
        .args(["--grpc-port", &free_port()?.to_string()])
        .stdout(Stdio::null())
        .spawn()?;
    let cluster = format!("df://127.0.0.1:{port}");

    let mut rows = Vec::new();
    let mut agree = Vec::new();
    for (name, sql) in QUERIES {
        let single = measure(&with(&["--plain", "sql", "--format", "csv", sql]));
        let now = chrono::Utc::now().to_rfc3339();
        let as_published = measure(&with(&[
            "sql",
            "--format",
            "csv",
            "--as-known",
            &now,
            "--published",
            &to_text,
            sql,
        ]));
        let on_cluster = measure(&with(&[
            "sql",
            "--format",
            "csv",
            "--cluster",
            &cluster,
            "--published",
            &to_text,
            sql,
        ]));
        agree.push(format!(
            "`{name}`: the cluster's first line {} the single node's",
            match same_lines(&first_line(&on_cluster), &first_line(&single)) {
                true => "equals",
                false => "DIFFERS from",
            }
        ));
        rows.push((
            format!(
                "`{name}`, single node, plain views on the state (its models as stored beside it)"
            ),
            single,
        ));
        rows.push((
            format!("`{name}`, single node, over the published tables"),
            as_published,
        ));
        rows.push((
            format!("`{name}` on the cluster (one executor)"),
            on_cluster,
        ));
    }
    let executor_peak = super::service::peak_memory_mib(executor.id());
    let scheduler_peak = super::service::peak_memory_mib(scheduler.id());
    for child in [executor.id(), scheduler.id()] {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child as i32, libc::SIGTERM) };
    }

    let mut text = format!(
        "State: the ingest benchmark's ({label}), published ({:.1} s, nothing new to commit when it already was). One `arstream scheduler` and one `arstream executor` on this machine, over gRPC on loopback; each query a whole `arstream sql` command (the client: planning, the models it needs, the rows back). On the state, the models' tables stored beside it by an earlier command are read; over the published tables (single node or cluster) they are made from the tables, as `--as-known` and `--cluster` always do: those two rows are the like-for-like pair.\n\n| command | time | client's peak memory |\n|---|---|---|\n",
        published.seconds
    );
    for (what, m) in &rows {
        text.push_str(&format!(
            "| {what} | {:.1} s | {:.0} MiB |\n",
            m.seconds, m.peak_mib
        ));
    }
    text.push_str(&format!(
        "\nThe executor's peak memory over all the queries: {executor_peak} MiB; the scheduler's: {scheduler_peak} MiB. {}.\n\nCommand: `cargo build --release && cargo run --release -p arstream-bench -- cluster`.\n",
        agree.join("; ")
    ));
    write_section(report, "cluster", &text)?;
    println!("{text}");
    Ok(())
}

fn measure(args: &[String]) -> Measured {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    measure_with(&args, &[])
}

/// The header and first row of a CSV result.
fn first_line(m: &Measured) -> String {
    m.stdout.lines().take(2).collect::<Vec<_>>().join("\n")
}

/// Whether two CSV texts agree cell by cell, numbers to a relative 1e-9 (sums run in
/// another order on the cluster).
fn same_lines(a: &str, b: &str) -> bool {
    let cells = |t: &str| -> Vec<String> { t.split([',', '\n']).map(str::to_string).collect() };
    let (a, b) = (cells(a), cells(b));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                _ => x == y,
            })
}

/// A port on loopback nobody listens on now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
