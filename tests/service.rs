//! The service core: the runner driven as a library (subscribe, land a file, get the snapshot
//! that reflects it), a stop in the middle of a catch-up, a view of the analyst's that the
//! ledger must not ignore, and a broken view reported once while the service stays up.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arstream::service::compose::{Event, Service};
use arstream::service::consumer::{self, Consumer, Next, Retry};
use arstream::service::schedule::Schedule;
use arstream::service::session::SessionOptions;
use arstream::service::{Notice, Runner, RunnerOptions, Snapshot, Snapshots};
use common::{invoices, write};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

/// A config file of its own, so that the repository's `arstream.toml` plays no part.
fn config(dir: &std::path::Path, queries: &str) -> std::path::PathBuf {
    let file = dir.join("arstream.toml");
    std::fs::write(
        &file,
        format!("[engine]\nqueries = \"{queries}\"\npipelines = \"none\"\n"),
    )
    .unwrap();
    file
}

fn options(dir: &std::path::Path, every: Duration) -> RunnerOptions {
    RunnerOptions {
        session: SessionOptions {
            config: Some(config(dir, "queries")),
            feed: Some(dir.join("feed").display().to_string()),
            state: Some(dir.join("state").display().to_string()),
            as_of: Some("2026-03-31".into()),
            ..SessionOptions::default()
        },
        schedule: Schedule::Every(every),
        watch_feed: true,
    }
}

/// Land a file as connectors should: written aside, then renamed into the feed.
fn land(feed: &std::path::Path, rel: &str, batch: &arrow::array::RecordBatch) {
    let aside = feed.parent().unwrap().join("landing.tmp");
    let bytes = arstream::parquet_io::encode(&batch.schema(), std::slice::from_ref(batch)).unwrap();
    std::fs::write(&aside, bytes).unwrap();
    let target = feed.join(rel);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::rename(&aside, target).unwrap();
}

/// The next snapshot after `after`, within `limit`.
async fn next_snapshot(snapshots: &mut Snapshots, after: u64, limit: Duration) -> Arc<Snapshot> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(s) = snapshots.borrow_and_update().clone()
            && s.sequence > after
        {
            return s;
        }
        tokio::time::timeout_at(deadline, snapshots.changed())
            .await
            .expect("a snapshot in time")
            .unwrap();
    }
}

/// `<dir>/feed` with one invoice, I1 of 100.00.
fn one_invoice_feed(dir: &std::path::Path) -> std::path::PathBuf {
    let feed = dir.join("feed");
    write(
        &feed,
        "invoices/a.parquet",
        &invoices(&[("c", 1, "I1".into(), 10_000)]),
    );
    feed
}

/// `<dir>/queries`, the folder `options` names, made empty.
fn queries_folder(dir: &std::path::Path) -> std::path::PathBuf {
    let queries = dir.join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    queries
}

/// Run `runner` as a service on a task of its own, until the token is cancelled.
fn start(
    runner: &Arc<Runner>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<arstream::service::Stopped, arstream::service::ServiceError>>,
) {
    let cancel = CancellationToken::new();
    let (runner, token) = (runner.clone(), cancel.clone());
    (
        cancel,
        tokio::spawn(async move { runner.run(&token, false).await }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_the_snapshot_of_a_landed_file() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    // A poll a minute apart: the landing is seen through file-system notifications.
    let runner = Arc::new(Runner::new(options(dir.path(), Duration::from_secs(60))));
    let mut snapshots = runner.subscribe();
    let (cancel, task) = start(&runner);

    let first = next_snapshot(&mut snapshots, 0, Duration::from_secs(60)).await;
    assert_eq!(first.kpi.total_ar, Some(100.0));
    assert_eq!(first.refresh.catch_up.files_applied, 1);

    land(
        &feed,
        "invoices/b.parquet",
        &invoices(&[("c", 2, "I2".into(), 25_000)]),
    );
    // Seen within the wait, though the next poll is a minute away (timing: the refresh
    // benchmark).
    let second = next_snapshot(&mut snapshots, first.sequence, Duration::from_secs(30)).await;
    assert_eq!(second.kpi.total_ar, Some(350.0));
    assert_eq!(second.refresh.catch_up.files_applied, 1);
    assert_eq!(second.generation, first.generation + 1);
    // The snapshot's engine answers over exactly its state.
    let rows = second
        .engine
        .query("SELECT count(*) AS n FROM invoices")
        .await
        .unwrap();
    assert_eq!(
        arrow::util::display::array_value_to_string(rows[0].column(0), 0).unwrap(),
        "2"
    );
    // The first snapshot is unchanged by the second.
    let rows = first
        .engine
        .query("SELECT count(*) AS n FROM invoices")
        .await
        .unwrap();
    assert_eq!(
        arrow::util::display::array_value_to_string(rows[0].column(0), 0).unwrap(),
        "1"
    );
    let (_, rows) = first
        .query("SELECT total_ar FROM kpi_summary", None)
        .await
        .unwrap();
    assert_eq!(
        arrow::util::display::array_value_to_string(rows[0].column(0), 0).unwrap(),
        "100.00"
    );

    cancel.cancel();
    let stopped = task.await.unwrap().unwrap();
    assert_eq!(stopped.published, 2);
}

/// The single value of `sql` over a snapshot, as text.
/// A consumer that answers as its script says, telling the test what it was handed and when.
struct Scripted {
    answers: std::collections::VecDeque<&'static str>,
    handed: tokio::sync::mpsc::UnboundedSender<(u64, Instant)>,
}

impl Consumer for Scripted {
    type Report = u64;

    fn name(&self) -> &'static str {
        "scripted"
    }

    fn retry(&self) -> Retry {
        Retry {
            first: Duration::from_millis(200),
            max: Duration::from_millis(300),
        }
    }

    async fn consume(
        &mut self,
        snapshot: &Arc<Snapshot>,
        _cancel: &CancellationToken,
    ) -> (Option<u64>, Next) {
        self.handed
            .send((snapshot.sequence, Instant::now()))
            .unwrap();
        let next = match self.answers.pop_front().unwrap_or("newer") {
            "fail" => Next::Retry,
            "not before 1.5 s" => {
                Next::NewerNotBefore(tokio::time::Instant::now() + Duration::from_millis(1500))
            }
            "again in 0.3 s" => {
                Next::Again(tokio::time::Instant::now() + Duration::from_millis(300))
            }
            _ => Next::Newer,
        };
        (Some(snapshot.sequence), next)
    }
}

/// What the consumer is handed next, within a minute.
async fn next(handed: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>) -> (u64, Instant) {
    tokio::time::timeout(Duration::from_secs(60), handed.recv())
        .await
        .expect("handed a snapshot in time")
        .unwrap()
}

// The one seam every consumer goes through: a failure is tried again on the same snapshot
// after its backoff (doubling up to its cap); a consumer that wants the next snapshot gets
// each new one once and nothing in between; "not before" holds a new snapshot back until
// then; "again" hands the same snapshot over once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consumer_is_driven_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    let runner = Arc::new(Runner::new(options(dir.path(), Duration::from_secs(60))));
    let (handed_tx, mut handed) = tokio::sync::mpsc::unbounded_channel();
    let scripted = Scripted {
        answers: [
            "fail",
            "fail",
            "fail",
            "newer",
            "not before 1.5 s",
            "again in 0.3 s",
        ]
        .into(),
        handed: handed_tx,
    };
    let (reports_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let (cancel, task) = start(&runner);
    let driven = consumer::spawn(scripted, runner.subscribe(), cancel.clone(), move |r| {
        reports_tx.send(r).unwrap()
    });
    // Three failures and a success on the first snapshot: 0.2, 0.3 (capped), 0.3 s apart.
    let mut calls = Vec::new();
    for _ in 0..4 {
        calls.push(next(&mut handed).await);
    }
    assert!(
        calls.iter().all(|(sequence, _)| *sequence == 1),
        "{calls:?}"
    );
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].1 - w[0].1).collect();
    for (gap, least) in gaps.iter().zip([200, 300, 300]) {
        assert!(*gap >= Duration::from_millis(least), "{gaps:?}");
        assert!(*gap < Duration::from_millis(least + 1500), "{gaps:?}");
    }
    // Nothing more until a new snapshot.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(handed.try_recv().is_err(), "handed the same snapshot again");
    land(
        &feed,
        "invoices/b.parquet",
        &invoices(&[("c", 2, "I2".into(), 25_000)]),
    );
    let (second, at) = next(&mut handed).await;
    assert_eq!(second, 2);
    // It asked not before 1.5 s: a snapshot landing now waits until then.
    land(
        &feed,
        "invoices/c.parquet",
        &invoices(&[("c", 3, "I3".into(), 5_000)]),
    );
    let (third, third_at) = next(&mut handed).await;
    assert_eq!(third, 3);
    assert!(
        third_at - at >= Duration::from_millis(1500),
        "{:?}",
        third_at - at
    );
    // It asked again in 0.3 s with nothing new: the same snapshot once more, then nothing.
    let (again, again_at) = next(&mut handed).await;
    assert_eq!(again, 3);
    assert!(again_at - third_at >= Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        handed.try_recv().is_err(),
        "handed a snapshot not asked for"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
    driven.await.unwrap();
    let mut reported = Vec::new();
    while let Ok(r) = reports.try_recv() {
        reported.push(r);
    }
    assert_eq!(reported, [1, 1, 1, 1, 2, 3, 3]);
}

/// The KPI summary's total AR of each snapshot it is handed (the README's example).
struct Total;

impl Consumer for Total {
    type Report = Option<f64>;

    fn name(&self) -> &'static str {
        "total"
    }

    async fn consume(
        &mut self,
        snapshot: &Arc<Snapshot>,
        _cancel: &CancellationToken,
    ) -> (Option<Option<f64>>, Next) {
        (Some(snapshot.kpi.total_ar), Next::Newer)
    }
}

// A service composed of the runner and a consumer hands each refresh, and each report of the
// consumer, to one callback, until the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composed_service_hands_every_event_to_one_callback() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    let cancel = CancellationToken::new();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let service =
        Service::new(options(dir.path(), Duration::from_secs(60))).consumer(Total, |total| total);
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        let print = |event| {
            let line = match event {
                Event::Refresh(s) => format!("refresh {}", s.sequence),
                Event::Notice(n) => format!("notice {n:?}"),
                Event::Consumer(total) => format!("total {total:?}"),
            };
            events_tx.send(line).unwrap();
        };
        service.run(&stop, print).await
    });
    let mut seen = Vec::new();
    let mut landed = false;
    while seen.len() < 4 {
        let line = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("an event in time")
            .unwrap();
        seen.push(line);
        if seen.len() == 2 && !landed {
            landed = true;
            land(
                &feed,
                "invoices/b.parquet",
                &invoices(&[("c", 2, "I2".into(), 25_000)]),
            );
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "refresh 1",
            "refresh 2",
            "total Some(100.0)",
            "total Some(350.0)"
        ]
    );
    cancel.cancel();
    let stopped = task.await.unwrap().unwrap();
    assert_eq!(stopped.published, 2);
}

async fn value(snapshot: &Snapshot, sql: &str) -> String {
    let (_, rows) = snapshot.query(sql, None).await.unwrap();
    arrow::util::display::array_value_to_string(rows[0].column(0), 0).unwrap()
}

/// A service's refreshes share the views planned by the first (and the plans kept): a view
/// edited while it runs, and a table that grows a column, are still seen at the next
/// refresh, and every snapshot keeps answering over its own rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_views_and_new_columns_are_seen_while_snapshots_keep_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    let queries = queries_folder(dir.path());
    let view = |min: u32| {
        std::fs::write(
            queries.join("big_invoices.sql"),
            format!("CREATE OR REPLACE VIEW big_invoices AS SELECT count(*) AS n FROM invoices WHERE amount > {min}"),
        )
        .unwrap()
    };
    view(150);
    let runner = Arc::new(Runner::new(options(dir.path(), Duration::from_secs(60))));
    let mut snapshots = runner.subscribe();
    let (cancel, task) = start(&runner);
    let big = "SELECT n FROM big_invoices";
    let ar = "SELECT total_ar FROM kpi_summary";

    let first = next_snapshot(&mut snapshots, 0, Duration::from_secs(60)).await;
    assert_eq!(value(&first, big).await, "0");

    // The same views: the second refresh shares the first's catalog.
    land(
        &feed,
        "invoices/b.parquet",
        &invoices(&[("c", 2, "I2".into(), 25_000)]),
    );
    let second = next_snapshot(&mut snapshots, first.sequence, Duration::from_secs(30)).await;
    assert_eq!(value(&second, big).await, "1");
    assert_eq!(value(&second, ar).await, "350.00");

    // The view edited: the next refresh makes its views again.
    view(50);
    land(
        &feed,
        "invoices/c.parquet",
        &invoices(&[("c", 3, "I3".into(), 7_000)]),
    );
    let third = next_snapshot(&mut snapshots, second.sequence, Duration::from_secs(30)).await;
    assert_eq!(value(&third, big).await, "3");
    assert_eq!(value(&third, ar).await, "420.00");

    // A column the invoices did not have: the tables are registered anew.
    let regions = arrow::array::StringArray::from(vec!["north"]);
    let widened = common::with_column(
        &invoices(&[("c", 4, "I4".into(), 1_000)]),
        "region",
        Arc::new(regions),
    );
    land(&feed, "invoices/d.parquet", &widened);
    let fourth = next_snapshot(&mut snapshots, third.sequence, Duration::from_secs(30)).await;
    assert_eq!(
        value(&fourth, "SELECT max(region) FROM invoices").await,
        "north"
    );
    assert_eq!(value(&fourth, ar).await, "430.00");

    // Every earlier snapshot still answers over its own rows and views.
    assert_eq!(value(&first, big).await, "0");
    assert_eq!(value(&first, ar).await, "100.00");
    assert_eq!(value(&second, big).await, "1");
    assert_eq!(value(&second, ar).await, "350.00");
    assert_eq!(value(&third, ar).await, "420.00");

    cancel.cancel();
    assert_eq!(task.await.unwrap().unwrap().published, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_view_is_reported_once_and_the_service_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    let queries = queries_folder(dir.path());
    let broken = queries.join("collector_productivity.sql");
    std::fs::write(
        &broken,
        "CREATE OR REPLACE VIEW collector_productivity AS SELECT nosuch FROM activities;",
    )
    .unwrap();
    let runner = Arc::new(Runner::new(options(dir.path(), Duration::from_millis(100))));
    let mut snapshots = runner.subscribe();
    let mut notices = runner.notices();
    let (cancel, task) = start(&runner);
    let notice = tokio::time::timeout(Duration::from_secs(60), notices.recv())
        .await
        .unwrap()
        .unwrap();
    let Notice::Failed {
        error, transient, ..
    } = notice;
    assert!(!transient, "{error}");
    assert!(
        error.contains("queries/collector_productivity.sql"),
        "{error}"
    );

    // New files are still applied, and the same error is not reported again.
    land(
        &feed,
        "invoices/b.parquet",
        &invoices(&[("c", 2, "I2".into(), 25_000)]),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        notices.try_recv().is_err(),
        "the same error was reported again"
    );
    assert!(snapshots.borrow().is_none());

    // Fixed: the next poll notices the edit and publishes, with both files.
    std::fs::write(
        &broken,
        "CREATE OR REPLACE VIEW collector_productivity AS SELECT collector_id FROM activities;",
    )
    .unwrap();
    let fixed = next_snapshot(&mut snapshots, 0, Duration::from_secs(30)).await;
    assert_eq!(fixed.kpi.total_ar, Some(350.0));
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// Run the command line in `dir` with its own config.
fn arstream(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sigterm_during_catch_up_exits_at_once_and_a_restart_applies_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 200, 12, 3, 150);
    let files = walk(&feed).len();
    std::fs::write(
        dir.path().join("arstream.toml"),
        "[engine]\npipelines = \"none\"\n[state]\ncheckpoint_every_files = 5\n[kpi]\nas_of = \"2025-12-31\"\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--feed",
            "feed",
            "--state",
            "state",
            "run",
            "--headless",
            "--interval",
            "60",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Into the catch-up: some checkpoints written, far from all files.
    let deadline = Instant::now() + Duration::from_secs(60);
    while walk(&dir.path().join("state/checkpoints")).len() < 2 {
        assert!(Instant::now() < deadline, "no checkpoint written");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{status:?}: {out}");
    // Stopped inside the catch-up, not after it (how soon is the refresh benchmark's).
    assert!(out.contains("during the catch-up"), "{out}");
    // What a state holds, read offline: files applied, and its tables.
    let on = |state: &str, args: &[&str]| {
        let mut all = vec!["--feed", "feed", "--state", state];
        all.extend_from_slice(args);
        arstream(dir.path(), &all)
    };
    let applied = |state: &str| {
        let status = on(state, &["--offline", "status", "--format", "json"]);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        status["files_applied"].as_u64().unwrap() as usize
    };
    let stopped_at = applied("state");
    assert!(
        stopped_at > 0 && stopped_at < files,
        "{stopped_at} of {files} applied before the stop"
    );

    // The restart applies the rest, each file once: the same tables as a run never stopped.
    on("state", &["run", "--once"]);
    on("reference", &["run", "--once"]);
    let q = "SELECT (SELECT count(*) FROM invoices) AS invoices, (SELECT count(*) FROM invoices_changes) AS changes, (SELECT sum(amount) FROM payments) AS paid";
    let tables = |state: &str| on(state, &["--offline", "sql", "--format", "csv", q]);
    assert_eq!(tables("state"), tables("reference"));
    assert_eq!(applied("state"), files);
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match path.is_dir() {
            true => out.extend(walk(&path)),
            false => out.push(path),
        }
    }
    out
}

#[test]
fn an_edited_view_changes_the_kpis_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 30, 3, 11, 100_000);
    let builtin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/queries/invoice_balances.sql"
    ))
    .unwrap();
    let edited = builtin.replace(
        "  AND i.status <> 'void';",
        "  AND i.status <> 'void'\n  AND i.customer_id NOT LIKE '%1';",
    );
    assert_ne!(edited, builtin);
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/invoice_balances.sql"), edited).unwrap();
    let total = |queries: &str, plain: bool| -> f64 {
        config(dir.path(), queries);
        let mut args = vec![
            "--feed",
            "feed",
            "--state",
            "state",
            "--as-of",
            "2025-03-31",
        ];
        if plain {
            args.push("--plain");
        }
        args.extend(["kpi", "--format", "json"]);
        let json: serde_json::Value = serde_json::from_str(&arstream(dir.path(), &args)).unwrap();
        json["total_ar"].as_f64().unwrap()
    };
    let (shipped, shipped_plain) = (total("none", false), total("none", true));
    let (mine, mine_plain) = (total("mine", false), total("mine", true));
    assert_eq!(shipped, shipped_plain);
    assert_eq!(
        mine, mine_plain,
        "the edited view is used by default as with --plain"
    );
    assert!(
        mine < shipped,
        "{mine} should leave customers out of {shipped}"
    );
}
