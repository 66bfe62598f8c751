//! The same SQL on a Ballista cluster: the state published as Delta tables, the views of
//! `queries/` planned by `arstream sql --cluster` and run by a scheduler and an executor over
//! gRPC on loopback, give the same `kpi_summary`, `aging` and `worklist_queue` as the
//! single-node engine on the same state: once with the scheduler and executor in this test's
//! process (the library), once as `arstream scheduler` and `arstream executor` processes; on
//! the bundled sample feed and on a random generated one.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const VIEWS: [&str; 3] = ["kpi_summary", "aging", "worklist_queue"];

fn arstream(feed: &Path, state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arstream"));
    command.current_dir(std::env::temp_dir()).args([
        "--feed",
        feed.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        // The sample's KPIs are as of its last day; a generated feed's too.
        "--as-of",
        "feed",
    ]);
    command
}

/// The rows of `SELECT * FROM view` as JSON objects, in a fixed order; `options` are `sql`'s.
fn rows(command: &mut Command, options: &[&str], view: &str) -> Vec<serde_json::Value> {
    let query = format!("SELECT * FROM {view}");
    let out = common::succeeded(
        command
            .arg("sql")
            .args(options)
            .args(["--format", "json", &query]),
    );
    let serde_json::Value::Array(mut rows) = serde_json::from_slice(&out.stdout).unwrap() else {
        panic!("--format json prints an array");
    };
    rows.sort_by_key(|r| r.to_string());
    rows
}

/// Publish the state of `feed`, then check each view on the cluster at `cluster` against the
/// single-node engine.
fn check_views_on_cluster(feed: &Path, dir: &Path, cluster: &str) {
    let state = dir.join("state");
    let published = dir.join("published");
    common::succeeded(arstream(feed, &state).args([
        "publish",
        "--to",
        published.to_str().unwrap(),
    ]));
    for view in VIEWS {
        let single = rows(
            arstream(feed, &state).args(["--offline", "--plain"]),
            &[],
            view,
        );
        let published = published.to_str().unwrap();
        let on_cluster = rows(
            &mut arstream(feed, &state),
            &["--cluster", cluster, "--published", published],
            view,
        );
        assert!(!single.is_empty(), "{view} has rows on {}", feed.display());
        assert_eq!(single.len(), on_cluster.len(), "{view}: as many rows");
        for (a, b) in single.iter().zip(&on_cluster) {
            assert!(
                common::same_json(a, b),
                "{view} on the cluster:\n{b}\nsingle node:\n{a}"
            );
        }
    }
}

fn sample_feed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/feed")
}

/// A generated feed of random size and seed (printed, to repeat a failure).
fn random_feed(dir: &Path) -> PathBuf {
    let mut random = common::Xorshift::from_env_or_clock();
    let customers = 10 + (random.next() % 30) as u32;
    let months = 2 + (random.next() % 3) as usize;
    let seed = random.next() % 1_000;
    println!("random feed: {customers} customers, {months} months, seed {seed}");
    let feed = dir.join("feed");
    common::generated_feed(&feed, customers, months, seed, 100_000);
    feed
}

#[test]
fn views_on_an_in_process_scheduler_and_executor_equal_the_single_node_engine() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(arstream::cli::STACK_BYTES)
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let options = arstream::cluster::SchedulerOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        external_host: "127.0.0.1".into(),
    };
    runtime.spawn(arstream::cluster::run_scheduler(
        options,
        move |address| tx.send(address).unwrap(),
        std::future::pending(),
    ));
    let scheduler = rx.recv().unwrap();
    let executor = arstream::cluster::ExecutorOptions {
        scheduler_host: "127.0.0.1".into(),
        scheduler_port: scheduler.port(),
        bind_host: "127.0.0.1".into(),
        external_host: None,
        port: common::servers::free_port(),
        grpc_port: common::servers::free_port(),
        vcores: Some(2),
        work_dir: None,
    };
    runtime.spawn(arstream::cluster::run_executor(executor));
    let cluster = format!("df://127.0.0.1:{}", scheduler.port());

    let dir = tempfile::tempdir().unwrap();
    check_views_on_cluster(&sample_feed(), &dir.path().join("sample"), &cluster);
    let random = dir.path().join("random");
    check_views_on_cluster(&random_feed(&random), &random, &cluster);
    runtime.shutdown_background();
}

/// A child process stopped (SIGTERM) when dropped.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        // One that stopped before its time says how (in a failing test's output).
        if let Ok(Some(status)) = self.0.try_wait() {
            eprintln!("process {} had stopped: {status}", self.0.id());
        }
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[test]
fn views_on_arstream_scheduler_and_executor_processes_equal_the_single_node_engine() {
    let mut scheduler = Command::new(env!("CARGO_BIN_EXE_arstream"))
        .args([
            "scheduler",
            "--bind",
            "127.0.0.1:0",
            "--external-host",
            "127.0.0.1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut said = BufReader::new(scheduler.stdout.take().unwrap());
    said.read_line(&mut line).unwrap();
    // Whatever it says later is read too: its stdout stays open.
    std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
    let scheduler = Stopped(scheduler);
    let port = (line.split("127.0.0.1:").nth(1))
        .and_then(|rest| rest.split(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("the scheduler says where it listens: {line}"));
    let executor = Stopped(
        Command::new(env!("CARGO_BIN_EXE_arstream"))
            .args(["executor", "--scheduler", &format!("127.0.0.1:{port}")])
            .args(["--port", &common::servers::free_port().to_string()])
            .args(["--grpc-port", &common::servers::free_port().to_string()])
            .args(["--concurrent-tasks", "2"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cluster = format!("df://127.0.0.1:{port}");

    let dir = tempfile::tempdir().unwrap();
    check_views_on_cluster(&sample_feed(), &dir.path().join("sample"), &cluster);
    let random = dir.path().join("random");
    check_views_on_cluster(&random_feed(&random), &random, &cluster);
    drop(executor);
    drop(scheduler);
}
