//! `arstream run --watch`: files landed while it runs show up in the next refresh line, a bad
//! file is quarantined while it keeps going, and SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use arstream::generate::{GenerateOptions, generate};

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
    let opts = GenerateOptions {
        customers: 30,
        months: 2,
        seed: 5,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        out: staging.display().to_string(),
        rows_per_file: 100_000,
    };
    generate(&opts, None).unwrap();
    let feed = dir.path().join("feed");
    copy_tree(&staging, &feed, &|p| p.contains("month=2025-01"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_arstream"))
        .args(["--feed", feed.to_str().unwrap(), "--state"])
        .arg(dir.path().join("state"))
        .args([
            "--as-of",
            "2025-02-28",
            "run",
            "--watch",
            "--interval",
            "0.2",
        ])
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
    let opts = GenerateOptions {
        customers: 10,
        months: 1,
        seed: 9,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        out: feed.display().to_string(),
        rows_per_file: 100_000,
    };
    generate(&opts, None).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_arstream"))
        .args([
            "--log-format",
            "json",
            "--feed",
            feed.to_str().unwrap(),
            "--state",
        ])
        .arg(dir.path().join("state"))
        .args(["run", "--watch", "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "refresh");
    assert!(first["files_applied"].as_u64().unwrap() > 0, "{first}");
    assert!(first["total_ar"].is_number(), "{first}");
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let last: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(last["event"], "stopped");
    assert!(child.wait().unwrap().success());
}
