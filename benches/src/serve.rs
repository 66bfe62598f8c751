//! `arstream-bench serve`: SQL over the Postgres wire protocol at scale. `arstream serve` is
//! started on the ingest benchmark's state; psycopg clients (`benches/sql_load.py`, in the
//! data folder's venv) send the same query again and again, one client and then many at
//! once, and each latency runs from sending the query to its last row received.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{arstream_binary, python_with, write_section};

/// The queries timed, each after one untimed run (which makes what it reads, once).
const QUERIES: [(&str, &str); 2] = [
    ("KPI summary", "SELECT * FROM kpi_summary"),
    (
        "worklist, top 100",
        "SELECT * FROM worklist ORDER BY rank LIMIT 100",
    ),
];

/// Seconds each load runs.
const SECONDS: f64 = 20.0;

pub fn run(
    feed: &Path,
    state: &Path,
    label: &str,
    data: &Path,
    report: &Path,
) -> anyhow::Result<()> {
    let python = python_with(data, "psycopg[binary]", "psycopg")?;
    let bin = arstream_binary()?;
    // The ingest benchmark's config without pipelines: no outputs written beside the queries.
    let config = data.join("ingest-only.toml");
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .arg("--feed")
        .arg(feed)
        .arg("--state")
        .arg(state)
        .args(["--as-of", "feed", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(data.join("serve-bench.log"))?)
        .spawn()?;
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let result = (|| -> anyhow::Result<String> {
        let wait_for = |text: &str| -> anyhow::Result<String> {
            loop {
                let line = lines.recv_timeout(Duration::from_secs(900))?;
                if line.contains(text) {
                    return Ok(line);
                }
            }
        };
        let listening = wait_for("SQL server on ")?;
        let port = (listening.split_whitespace().nth(3))
            .and_then(|a| a.rsplit(':').next())
            .ok_or_else(|| anyhow::anyhow!("no port in '{listening}'"))?
            .to_string();
        wait_for("sql serving sequence=1")?;
        let ready_s = started.elapsed().as_secs_f64();
        let load = |clients: usize, seconds: f64, sql: &str| -> anyhow::Result<serde_json::Value> {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql_load.py");
            let out = Command::new(&python)
                .arg(script)
                .args([
                    "127.0.0.1",
                    &port,
                    &clients.to_string(),
                    &seconds.to_string(),
                    sql,
                ])
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "the load failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(serde_json::from_slice(&out.stdout)?)
        };
        let mut table = String::from(
            "| query | clients | p50 | p99 | max | queries/s | first run |\n|---|---|---|---|---|---|---|\n",
        );
        for (name, sql) in QUERIES {
            let first = Instant::now();
            load(1, 0.0, sql)?;
            let first_s = first.elapsed().as_secs_f64();
            for clients in [1, 20] {
                let m = load(clients, SECONDS, sql)?;
                anyhow::ensure!(m["errors"] == 0, "errors: {}", m["first_error"]);
                let ms = |key: &str| m[key].as_f64().map_or("-".into(), |v| format!("{v:.1} ms"));
                table.push_str(&format!(
                    "| {name} (`{sql}`) | {clients} | {} | {} | {} | {:.0} | {} |\n",
                    ms("p50_ms"),
                    ms("p99_ms"),
                    ms("max_ms"),
                    m["qps"].as_f64().unwrap_or(0.0),
                    match clients {
                        1 => format!("{first_s:.1} s"),
                        _ => String::new(),
                    }
                ));
            }
        }
        Ok(format!(
            "`arstream serve` on the ingest benchmark's state ({label}) at the feed's last day, its defaults (at most 4 queries computing at once, the others waiting their turn; 2 GiB per query), with its config without pipelines (no outputs written meanwhile; the models' consumer still makes each snapshot's model tables in the background), on a state whose ledger and model tables earlier commands stored; ready for queries {ready_s:.1} s after the start (its first snapshot served). Each load: psycopg 3 clients (`benches/sql_load.py`) on loopback, each on its own connection sending the query again and again for {SECONDS:.0} s; a latency runs from sending the query to its last row received. \"first run\": one client's first query, with the process (per query) starting Python and connecting, which makes what the query reads when the snapshot has not made it yet (the worklist's model tables, then the worklist's rows, which the snapshot keeps for every later query: the summary views are computed once per snapshot).\n\n{table}"
        ))
    })();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let body = result?;
    write_section(
        report,
        "serve",
        &format!(
            "## SQL over the Postgres wire (`arstream-bench serve`)\n\nReproduce: `cargo build --release && cargo run --release -p arstream-bench -- serve`.\n\n{body}"
        ),
    )?;
    println!("{body}");
    Ok(())
}
