//! `arstream run --watch`: files landed while it runs show up in the next refresh line, a bad
//! file is quarantined while it keeps going, and SIGTERM stops it cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&str) -> bool) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, keep);
        } else if keep(&entry.path().to_string_lossy()) {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn watch_applies_files_landed_while_running_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    common::generated_feed(&staging, 30, 2, 5, 100_000);
    let feed = dir.path().join("feed");
    copy_tree(&staging, &feed, &|p| p.contains("month=2025-01"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_arstream"))
        .current_dir(std::env::temp_dir())
        .args(["--feed", feed.to_str().unwrap(), "--state"])
        .arg(dir.path().join("state"))
        .args(["--as-of", "2025-02-28", "run", "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next_line = |what: &str| {
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no line while waiting for {what}"))
    };

    let first = next_line("the first refresh");
    assert!(first.starts_with("refresh files_applied="), "{first}");
    assert!(
        !first.contains("files_applied=0 "),
        "the first refresh applies the first month: {first}"
    );

    // The second month lands while it runs, with a corrupt file.
    copy_tree(&staging, &feed, &|p| p.contains("month=2025-02"));
    std::fs::write(feed.join("payments/broken.parquet"), b"garbage").unwrap();
    let mut lines = Vec::new();
    loop {
        let line = next_line("the refresh of the second month");
        let done = line.starts_with("refresh") && !line.contains("files_applied=0 ");
        lines.push(line);
        if done {
            break;
        }
    }
    let all = lines.join("\n");
    assert!(all.contains("quarantined code=not_parquet"), "{all}");
    assert!(all.contains("quarantined=1"), "{all}");

    // SIGTERM: it stops after the refresh in flight, with success.
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let last = next_line("the stop line");
    assert!(last.starts_with("stopped after"), "{last}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn watch_logs_json_lines_for_services() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 10, 1, 9, 100_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_arstream"))
        .current_dir(std::env::temp_dir())
        .args([
            "--log-format",
            "json",
            "--feed",
            feed.to_str().unwrap(),
            "--state",
        ])
        .arg(dir.path().join("state"))
        .args(["run", "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "refresh");
    // Every file of the feed, applied by the first refresh.
    let files = (common::walk(&feed).iter())
        .filter(|f| f.extension().is_some_and(|x| x == "parquet"))
        .count();
    assert_eq!(first["files_applied"], files, "{first}");
    assert!(first["total_ar"].as_f64().unwrap() > 0.0, "{first}");
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let last: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(last["event"], "stopped");
    assert!(child.wait().unwrap().success());
}

#[test]
fn watch_killed_at_random_moments_ends_with_the_outputs_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    common::generated_feed(&staging, 40, 3, 21, 200);
    let config = dir.path().join("arstream.toml");
    std::fs::write(&config, "[state]\ncheckpoint_every_files = 2\n").unwrap();
    let arstream = |feed: &Path, state: &Path, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arstream"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--feed")
            .arg(feed)
            .arg("--state")
            .arg(state);
        cmd.args(["--as-of", "2025-03-31"]).args(args);
        cmd
    };

    let reference = dir.path().join("reference");
    common::succeeded(&mut arstream(
        &staging,
        &reference.join("state"),
        &[
            "run",
            "--once",
            "--out",
            reference.join("out").to_str().unwrap(),
        ],
    ));

    let feed = dir.path().join("feed");
    let (state, outputs) = (dir.path().join("state"), dir.path().join("out"));
    let mut rng = common::Xorshift::from_env_or_clock();
    for round in 0..9 {
        // The months land one after the other while the service is being killed and restarted.
        let month = format!("month=2025-0{}", 1 + round / 3);
        copy_tree(&staging, &feed, &|p| p.contains(&month));
        let mut child = arstream(
            &feed,
            &state,
            &[
                "run",
                "--interval",
                "0.05",
                "--out",
                outputs.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(50 + rng.next() % 700));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    common::succeeded(&mut arstream(
        &feed,
        &state,
        &["run", "--once", "--out", outputs.to_str().unwrap()],
    ));

    let partitions: Vec<_> = std::fs::read_dir(outputs.join("kpi_summary"))
        .unwrap()
        .collect();
    assert_eq!(
        partitions.len(),
        1,
        "exactly one kpi_summary partition for the one as-of date"
    );
    let want = common::read_parquet(&reference.join("out/kpi_summary/2025-03-31.parquet"));
    let got = common::read_parquet(&outputs.join("kpi_summary/2025-03-31.parquet"));
    assert_eq!(got.num_rows(), 1);
    assert_eq!(
        got, want,
        "the KPI summary of the killed runs equals the uninterrupted one"
    );
    for latest in ["aging/latest.parquet", "open_items/latest.parquet"] {
        let (w, g) = (
            common::read_parquet(&reference.join("out").join(latest)),
            common::read_parquet(&outputs.join(latest)),
        );
        assert_eq!(common::sorted_rows(&g), common::sorted_rows(&w), "{latest}");
    }
}
