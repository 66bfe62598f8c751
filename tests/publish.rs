//! `arstream publish`: the state as Delta Lake tables that other engines read with no
//! arstream code. Python's `deltalake` package and DuckDB (its `delta` extension) read every
//! published table, and each equals `arstream sql` over the same state, row for row; a second
//! publish of the same state commits nothing, and one after more files appends exactly their
//! changes (no change row twice).

mod common;

use std::path::Path;
use std::process::Command;

/// What the readers run: every table read by `deltalake` and by DuckDB's `delta_scan`, each
/// written to Parquet for the test to compare; a line `table version` per table.
const READ: &str = r#"
import glob, os, sys
import deltalake, duckdb, duckdb_extension_delta
import pyarrow.parquet as pq

src, out, tables = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"LOAD '{ext}'")
for t in tables:
    path = os.path.join(src, t)
    table = deltalake.DeltaTable(path)
    pq.write_table(table.to_pyarrow_table(), os.path.join(out, f"deltalake_{t}.parquet"))
    con.execute(f"COPY (SELECT * FROM delta_scan('{path}')) TO '{os.path.join(out, 'duckdb_' + t + '.parquet')}' (FORMAT parquet)")
    print(t, table.version(), flush=True)
# deltalake's threads sometimes abort the interpreter's own exit: leave at once.
os._exit(0)
"#;

const TABLES: [&str; 9] = [
    "customers",
    "invoices",
    "payments",
    "adjustments",
    "disputes",
    "promises",
    "activities",
    "collectors",
    "fx_rates",
];

fn arstream(feed: &Path, state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arstream"));
    command.current_dir(std::env::temp_dir()).args([
        "--feed",
        feed.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    command
}

fn publish(feed: &Path, state: &Path, to: &Path) -> String {
    let out =
        common::succeeded(arstream(feed, state).args(["publish", "--to", to.to_str().unwrap()]));
    String::from_utf8(out.stdout).unwrap()
}

/// The rows of `sql` over the state, as `arstream sql --format parquet` writes them.
fn arstream_rows(feed: &Path, state: &Path, sql: &str) -> Vec<String> {
    let out = common::succeeded(arstream(feed, state).args([
        "--offline",
        "sql",
        "--format",
        "parquet",
        sql,
    ]));
    let batch = arstream::feed::validate::decode_parquet("stdout", out.stdout.into()).unwrap();
    normalized(&batch)
}

/// Rows as text, sorted, with DuckDB's spelling of UTC (`+00:00`) as Arrow's (`Z`).
fn normalized(batch: &arrow::array::RecordBatch) -> Vec<String> {
    let mut rows: Vec<String> = (common::sorted_rows(batch).into_iter())
        .map(|r| r.replace("+00:00", "Z"))
        .collect();
    rows.sort();
    rows
}

/// Every published table read by both readers, compared with `arstream sql`; the versions
/// `deltalake` saw, by table.
fn read_and_compare(feed: &Path, state: &Path, published: &Path, dir: &Path) -> Vec<(String, u64)> {
    let python = common::python_with(
        "deltalake==1.6.6 pyarrow duckdb==1.5.5 duckdb-extension-delta==1.5.5",
        "deltalake, pyarrow, duckdb, duckdb_extension_delta",
    );
    let script = dir.join("read.py");
    std::fs::write(&script, READ).unwrap();
    let out = dir.join("read");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let names: Vec<String> = (TABLES.iter())
        .flat_map(|t| [t.to_string(), format!("{t}_changes")])
        .collect();
    let read = common::succeeded(
        Command::new(python)
            .arg(&script)
            .arg(published)
            .arg(&out)
            .arg(names.join(",")),
    );
    for name in &names {
        let expected = arstream_rows(feed, state, &format!("SELECT * FROM {name}"));
        assert!(!expected.is_empty(), "{name} has rows in this feed");
        for reader in ["deltalake", "duckdb"] {
            let batch = common::read_parquet(&out.join(format!("{reader}_{name}.parquet")));
            let got = normalized(&batch);
            assert_eq!(
                got.len(),
                expected.len(),
                "{reader} reads as many rows of {name}"
            );
            assert_eq!(got, expected, "{reader} reads {name} as arstream has it");
        }
    }
    (String::from_utf8(read.stdout).unwrap().lines())
        .map(|l| {
            let (table, version) = l.split_once(' ').unwrap();
            (table.to_string(), version.parse().unwrap())
        })
        .collect()
}

#[test]
fn published_delta_tables_read_by_deltalake_and_duckdb_equal_arstream_sql() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all");
    common::generated_feed(&all, 30, 4, 7, 100_000);
    let (feed, state, published) = (
        dir.path().join("feed"),
        dir.path().join("state"),
        dir.path().join("published"),
    );
    common::copy_months_up_to(&all, &feed, "2025-02");

    let first = publish(&feed, &state, &published);
    assert!(first.contains("18 table(s) committed"), "{first}");
    let versions = read_and_compare(&feed, &state, &published, dir.path());
    assert!(versions.iter().all(|(_, v)| *v == 0), "{versions:?}");

    // The same state again: nothing to commit.
    let again = publish(&feed, &state, &published);
    assert!(
        again.contains("0 table(s) committed, 18 unchanged"),
        "{again}"
    );

    // Two more months: the tables of the entities they change take one commit each, the
    // changes tables exactly the rows of the new files (compared above with arstream's, which
    // holds each change once).
    // With no retention, the files the second publish replaced are vacuumed at once, and so
    // is what a publish killed midway wrote without committing.
    let orphan = published.join("invoices/part-00000-never-committed.parquet");
    std::fs::write(&orphan, b"PAR1 a write that never committed").unwrap();
    common::copy_months_up_to(&all, &feed, "2025-04");
    let config = dir.path().join("arstream.toml");
    std::fs::write(&config, "[publish]\nretention_hours = 0\n").unwrap();
    let second = common::succeeded(arstream(&feed, &state).arg("--config").arg(&config).args([
        "publish",
        "--to",
        published.to_str().unwrap(),
    ]));
    let second = String::from_utf8(second.stdout).unwrap();
    assert!(second.contains("published generation 2"), "{second}");
    assert!(!second.contains(" 0 old file(s) vacuumed"), "{second}");
    assert!(!orphan.exists(), "the uncommitted file is vacuumed");
    let versions = read_and_compare(&feed, &state, &published, dir.path());
    let version = |t: &str| versions.iter().find(|(n, _)| n == t).unwrap().1;
    // Replaced: a write, and the vacuum's start and end; appended: a write (nothing to vacuum).
    assert_eq!(version("invoices"), 3, "{second}");
    assert_eq!(version("invoices_changes"), 1, "{second}");
    // The collectors' file came with the first months only.
    assert_eq!(version("collectors"), 0, "{second}");
}

#[test]
fn publishing_inside_the_feed_nowhere_or_over_another_states_tables_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 5, 1, 1, 100_000);
    let state = dir.path().join("state");
    let inside = arstream(&feed, &state)
        .args(["publish", "--to", feed.join("published").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!inside.status.success());
    let said = String::from_utf8_lossy(&inside.stderr);
    assert!(said.contains("publish location"), "{said}");
    // A new state read offline has no checkpoint, nor an identity to mark commits with.
    let empty = (arstream(&feed, &dir.path().join("new")))
        .args([
            "--offline",
            "publish",
            "--to",
            dir.path().join("p").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!empty.status.success());
    let said = String::from_utf8_lossy(&empty.stderr);
    assert!(said.contains("nothing to publish"), "{said}");
    let nowhere = arstream(&feed, &state).args(["publish"]).output().unwrap();
    assert_eq!(nowhere.status.code(), Some(2));
    let said = String::from_utf8_lossy(&nowhere.stderr);
    assert!(said.contains("nowhere to publish"), "{said}");

    // The state folder deleted and rebuilt from the same feed: its generations start again,
    // and appending its changes to the tables the first state published would hold them twice.
    let published = dir.path().join("published");
    publish(&feed, &state, &published);
    std::fs::remove_dir_all(&state).unwrap();
    let rebuilt = arstream(&feed, &state)
        .args(["publish", "--to", published.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!rebuilt.status.success());
    let said = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(said.contains("published from another state"), "{said}");
}

#[test]
fn the_service_publishes_each_checkpoint_as_it_refreshes() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all");
    common::generated_feed(&all, 20, 2, 11, 100_000);
    let (feed, state, published) = (
        dir.path().join("feed"),
        dir.path().join("state"),
        dir.path().join("published"),
    );
    common::copy_months_up_to(&all, &feed, "2025-01");
    let mut child = arstream(&feed, &state)
        .args(["run", "--headless", "--interval", "0.2", "--publish"])
        .arg(&published)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line_with = |what: &str| loop {
        let line = (rx.recv_timeout(std::time::Duration::from_secs(60)))
            .unwrap_or_else(|_| panic!("no line while waiting for '{what}'"));
        if line.contains(what) {
            return line;
        }
    };
    let first = line_with("published generation");
    assert!(first.contains("18 table(s) committed"), "{first}");
    common::copy_months_up_to(&all, &feed, "2025-02");
    let second = line_with("published generation");
    assert!(!second.contains(" 0 table(s) committed"), "{second}");
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    line_with("stopped after");
    assert!(child.wait().unwrap().success());

    // Two commits of the invoices' changes, one per generation; publishing the state again
    // finds every table holding its generation.
    let commits = (common::walk(&published.join("invoices_changes/_delta_log")).iter())
        .filter(|f| f.extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(commits, 2);
    let again = publish(&feed, &state, &published);
    assert!(
        again.contains("0 table(s) committed, 18 unchanged"),
        "{again}"
    );
}

/// `kpi --format json` as of the month-end, live (`--plain`: the definition the published
/// tables are read with) or as known at a time.
fn month_end(feed: &Path, state: &Path, as_known: Option<&str>) -> serde_json::Value {
    let mut command = arstream(feed, state);
    command.args([
        "--offline",
        "--plain",
        "--as-of",
        "2025-02-28",
        "kpi",
        "--format",
        "json",
    ]);
    if let Some(at) = as_known {
        command.args(["--as-known", at, "--published"]);
        command.arg(feed.parent().unwrap().join("published"));
    }
    serde_json::from_slice(&common::succeeded(&mut command).stdout).unwrap()
}

/// Whether two KPI summaries agree, figures to a relative 1e-9 (sums run in another order).
fn same_figures(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
    a.len() == b.len()
        && a.iter().all(|(k, x)| match (x.as_f64(), b[k].as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => *x == b[k],
        })
}

#[test]
fn kpis_as_known_before_a_back_dated_payment_are_the_earlier_figures() {
    use arrow::array::{Date32Array, StringArray};
    let dir = tempfile::tempdir().unwrap();
    let (feed, state, published) = (
        dir.path().join("feed"),
        dir.path().join("state"),
        dir.path().join("published"),
    );
    common::generated_feed(&feed, 30, 3, 13, 100_000);
    publish(&feed, &state, &published);
    let known = chrono::Utc::now().to_rfc3339();
    let before = month_end(&feed, &state, None);
    std::thread::sleep(std::time::Duration::from_millis(50));
    // February is closed with what was published: its figures are kept.
    let closed = common::succeeded(
        arstream(&feed, &state)
            .args(["close", "2025-02", "--published"])
            .arg(&published),
    );
    let said = String::from_utf8(closed.stdout).unwrap();
    assert!(said.contains("closed 2025-02 (as of 2025-02-28"), "{said}");

    // A payment of March, recorded as received on 20 February, lands after the month-end
    // was published: it restates February.
    let march = (common::walk(&feed.join("payments")).into_iter())
        .find(|p| p.to_string_lossy().contains("month=2025-03"))
        .unwrap();
    let rows = common::read_parquet(&march).slice(0, 1);
    let rows = common::with_column(
        &rows,
        "payment_id",
        std::sync::Arc::new(StringArray::from(vec!["BACKDATED-1"])),
    );
    let feb_20 = (chrono::NaiveDate::from_ymd_opt(2025, 2, 20).unwrap()
        - chrono::NaiveDate::default())
    .num_days() as i32;
    let rows = common::with_column(
        &rows,
        "payment_date",
        std::sync::Arc::new(Date32Array::from(vec![feb_20])),
    );
    common::write(&feed, "payments/late/backdated.parquet", &rows);
    let again = publish(&feed, &state, &published);
    assert!(again.contains("published generation 2"), "{again}");
    let after = month_end(&feed, &state, None);
    assert!(
        !same_figures(&before, &after),
        "the back-dated payment restates February: {before} / {after}"
    );

    let as_known_then = month_end(&feed, &state, Some(&known));
    assert!(
        same_figures(&as_known_then, &before),
        "{as_known_then}\n{before}"
    );
    let as_known_now = month_end(&feed, &state, Some(&chrono::Utc::now().to_rfc3339()));
    assert!(
        same_figures(&as_known_now, &after),
        "{as_known_now}\n{after}"
    );

    // The closed period keeps the figures reported then, and is not closed again.
    let kept = common::succeeded(
        arstream(&feed, &state)
            .args([
                "sql",
                "--format",
                "json",
                "--as-known",
                "now",
                "--published",
            ])
            .arg(&published)
            .arg("SELECT total_ar, dso, cei FROM closed_periods WHERE period = '2025-02'"),
    );
    let kept: serde_json::Value = serde_json::from_slice(&kept.stdout).unwrap();
    let number = |v: &serde_json::Value| v.as_f64().or_else(|| v.as_str()?.parse().ok()).unwrap();
    for figure in ["total_ar", "dso", "cei"] {
        let (kept, then) = (number(&kept[0][figure]), number(&before[figure]));
        assert!(
            (kept - then).abs() <= 1e-9 * then.abs().max(1.0),
            "{figure}: {kept} kept, {then} reported"
        );
    }
    assert!(number(&after["total_ar"]) != number(&kept[0]["total_ar"]));
    let again = arstream(&feed, &state)
        .args(["close", "2025-02", "--published"])
        .arg(&published)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("2025-02 is closed already"), "{said}");
    let open = arstream(&feed, &state)
        .args(["close", "2999-01"])
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2), "{open:?}");

    // Before anything was published, nothing was known.
    let mut too_early = arstream(&feed, &state);
    too_early
        .args(["kpi", "--as-known", "2020-01-01", "--published"])
        .arg(&published);
    let out = too_early.output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("nothing of it was published at or before"),
        "{said}"
    );
}

#[test]
fn run_once_publishes_without_outputs_too() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 5, 1, 2, 100_000);
    let (state, published) = (dir.path().join("state"), dir.path().join("published"));
    // No pipelines folder where it runs: no outputs, only the publish.
    let out = common::succeeded(
        arstream(&feed, &state)
            .args(["run", "--once", "--publish"])
            .arg(&published),
    );
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("published generation 1"), "{said}");
    assert!(!said.contains("outputs written"), "{said}");
    assert!(published.join("invoices/_delta_log").is_dir());
}

#[test]
fn the_model_report_as_known_now_is_the_live_report() {
    let dir = tempfile::tempdir().unwrap();
    let (feed, state, published) = (
        dir.path().join("feed"),
        dir.path().join("state"),
        dir.path().join("published"),
    );
    common::generated_feed(&feed, 40, 6, 17, 100_000);
    publish(&feed, &state, &published);
    let report = |extra: &[&str]| -> serde_json::Value {
        let mut command = arstream(&feed, &state);
        command.args(["--offline", "--plain", "--as-of", "feed", "model", "report"]);
        command.args([
            "--cutoff",
            "2025-04-01",
            "--origins",
            "1",
            "--format",
            "json",
        ]);
        command.args(extra);
        serde_json::from_slice(&common::succeeded(&mut command).stdout).unwrap()
    };
    let live = report(&[]);
    let published = published.to_str().unwrap();
    let as_known = report(&["--as-known", "now", "--published", published]);
    assert!(live["auc"].as_f64().is_some(), "{live}");
    assert!(common::same_json(&live, &as_known), "{as_known}\n{live}");
}
