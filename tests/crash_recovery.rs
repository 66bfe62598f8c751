//! A run killed with SIGKILL at random points while applying and checkpointing, then
//! restarted, ends with the same tables as a run never interrupted: no change lost, none
//! applied twice (the `_changes` tables count every change row exactly once).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

fn arstream(config: &Path, state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .arg("--state")
        .arg(state)
        .args(args);
    cmd
}

fn output(config: &Path, state: &Path, args: &[&str]) -> String {
    let out = arstream(config, state, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Everything the state shows: every table in key order, every change table's size, and the
/// files applied and quarantined.
fn snapshot(config: &Path, state: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for (table, key) in [
        ("customers", "customer_id"),
        ("invoices", "invoice_id"),
        ("payments", "payment_id"),
        ("adjustments", "adjustment_id"),
        ("disputes", "dispute_id"),
        ("promises", "promise_id"),
        ("activities", "activity_id"),
        ("collectors", "collector_id"),
        ("fx_rates", "currency, rate_date"),
    ] {
        let q = format!("SELECT * FROM {table} ORDER BY {key}");
        all.push(output(
            config,
            state,
            &["--offline", "sql", "--format", "csv", &q],
        ));
        let q = format!("SELECT count(*) AS n, max(_seq) AS last_seq FROM {table}_changes");
        all.push(format!(
            "{table}_changes: {}",
            output(config, state, &["--offline", "sql", "--format", "csv", &q])
        ));
    }
    let status: serde_json::Value = serde_json::from_str(&output(
        config,
        state,
        &["--offline", "status", "--format", "json"],
    ))
    .unwrap();
    all.push(format!(
        "applied {} quarantined {}",
        status["files_applied"], status["files_quarantined"]
    ));
    all
}

#[test]
fn killed_runs_end_like_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 80, 6, 7, 400);
    std::fs::write(feed.join("payments/garbage.parquet"), b"not parquet").unwrap();
    let config = dir.path().join("arstream.toml");
    std::fs::write(
        &config,
        format!(
            "[feed]\nurl = \"{}\"\nparallel_reads = 2\n[state]\ncheckpoint_every_files = 3\n",
            feed.display()
        ),
    )
    .unwrap();

    let reference = dir.path().join("reference");
    let started = Instant::now();
    output(&config, &reference, &["run", "--once"]);
    let full = started.elapsed();
    let want = snapshot(&config, &reference);
    assert!(
        want.last().unwrap().contains("quarantined [{"),
        "the bad file is quarantined: {want:?}"
    );

    println!("uninterrupted run {full:?}");
    let mut rng = common::Xorshift::from_env_or_clock();
    let crashed = dir.path().join("crashed");
    let mut kills = 0;
    for _ in 0..15 {
        let delay = Duration::from_micros(rng.next() % (full.as_micros() as u64 + 1));
        let mut child = arstream(&config, &crashed, &["run", "--once"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            kills += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    println!("{kills} of 15 runs were killed before they finished");
    assert!(
        kills > 0,
        "no run was interrupted; the kill schedule is too slow"
    );
    output(&config, &crashed, &["run", "--once"]);
    let got = snapshot(&config, &crashed);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[test]
fn two_processes_catching_up_the_same_state_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 60, 4, 11, 300);
    let config = dir.path().join("arstream.toml");
    std::fs::write(
        &config,
        format!(
            "[feed]\nurl = \"{}\"\n[state]\ncheckpoint_every_files = 2\n",
            feed.display()
        ),
    )
    .unwrap();
    let reference = dir.path().join("reference");
    output(&config, &reference, &["run", "--once"]);
    let want = snapshot(&config, &reference);

    // A service and an analyst's query race on one state: each writes checkpoints every two
    // files, and the one that loses a generation reloads and goes on.
    let shared = dir.path().join("shared");
    let racers: Vec<_> = (0..3)
        .map(|_| {
            arstream(&config, &shared, &["run", "--once"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for racer in racers {
        let out = racer.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a racing run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(snapshot(&config, &shared), want);
}
