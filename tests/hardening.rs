//! The bad inputs and faults that once lost access to the state, corrupted numbers or crashed
//! a refresh: one test per class. Each one failed before its fix.

mod common;

use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, RecordBatch, TimestampMicrosecondArray,
};
use arstream::engine::Engine;
use arstream::engine::params::KpiParams;
use arstream::engine::views::ViewSet;
use arstream::feed::ViolationCode;
use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::ingest::{IngestOptions, catch_up, open_state};
use arstream::state::State;
use common::{ingest, invoice_rows, invoices, op, with_column, write};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

fn arstream(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("ARSTREAM_LOG")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

async fn ingest_dir(
    feed: &std::path::Path,
    state: &std::path::Path,
) -> (State, arstream::ingest::CatchUpReport) {
    ingest(path(feed), path(state), &IngestOptions::default()).await
}

/// One scalar of a query, as text.
async fn scalar(state: &mut State, sql: &str, params: &KpiParams) -> String {
    let engine = Engine::new()
        .with_queries(None, ViewSet::Incremental)
        .unwrap();
    engine.refresh(state, params).await.unwrap();
    let batches = engine.query(sql).await.unwrap();
    arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap()
}

// 1. Names with non-ASCII letters, '#', '?' and '%' round-trip: applied once, replayed on
//    every later load, readable through `<entity>_changes`, copied to quarantine as named.
#[tokio::test]
async fn file_names_with_any_characters_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (feed, state) = (dir.path().join("feed"), dir.path().join("state"));
    let names = ["März.parquet", "a#1.parquet", "50%.parquet", "why?.parquet"];
    for (n, name) in names.iter().enumerate() {
        let batch = invoices(&[("c", n as i64 + 1, format!("I{n}"), 100)]);
        write(&feed, &format!("invoices/{name}"), &batch);
    }
    std::fs::write(feed.join("invoices/bäd #%?.parquet"), b"not parquet").unwrap();

    let (_, report) = ingest_dir(&feed, &state).await;
    assert_eq!((report.files_applied, report.quarantined.len()), (4, 1));
    assert!(state.join("quarantine/invoices/bäd #%?.parquet").is_file());
    assert!(
        state
            .join("quarantine/invoices/bäd #%?.parquet.reason.json")
            .is_file()
    );

    // Loading replays those files from the feed by the names recorded.
    let (mut reloaded, again) = ingest_dir(&feed, &state).await;
    assert_eq!((again.files_applied, again.quarantined.len()), (0, 0));
    assert_eq!(invoice_rows(&mut reloaded).len(), 4);
    let params = KpiParams::new(chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap());
    let changes = scalar(
        &mut reloaded,
        "SELECT count(*) FROM invoices_changes",
        &params,
    )
    .await;
    assert_eq!(changes, "4");
}

/// A feed of one invoice, `A`, under `dir/feed`.
fn one_invoice_feed(dir: &std::path::Path) -> std::path::PathBuf {
    let feed = dir.join("feed");
    write(
        &feed,
        "invoices/a.parquet",
        &invoices(&[("c", 1, "A".into(), 100)]),
    );
    feed
}

/// A state of two generations: `a` in the first, `b` in the second.
async fn two_generations(feed: &std::path::Path, state: &std::path::Path) -> Vec<(String, i128)> {
    write(
        feed,
        "invoices/a.parquet",
        &invoices(&[("c", 1, "A".into(), 100)]),
    );
    ingest_dir(feed, state).await;
    write(
        feed,
        "invoices/b.parquet",
        &invoices(&[("c", 2, "B".into(), 200)]),
    );
    let (mut st, _) = ingest_dir(feed, state).await;
    assert_eq!(st.checkpoint().generation, 2);
    invoice_rows(&mut st)
}

// 2. A damaged newest checkpoint (a power loss, a cut copy) is skipped with a warning, the
//    files it recorded are applied again, and the next writer goes on past it.
#[tokio::test]
async fn a_damaged_newest_checkpoint_is_skipped_and_writing_goes_on() {
    for damage in ["truncated", "empty", "format only"] {
        let dir = tempfile::tempdir().unwrap();
        let (feed, state) = (dir.path().join("feed"), dir.path().join("state"));
        let want = two_generations(&feed, &state).await;
        let newest = state.join("checkpoints/00000000000000000002.json");
        let bytes = std::fs::read(&newest).unwrap();
        let damaged: Vec<u8> = match damage {
            "truncated" => bytes[..100].to_vec(),
            "empty" => Vec::new(),
            _ => br#"{"format":2}"#.to_vec(),
        };
        std::fs::write(&newest, damaged).unwrap();

        let feed_at = arstream::store::open(path(&feed), false).unwrap();
        let location = arstream::store::open(path(&state), true).unwrap();
        let opts = IngestOptions::default();
        let mut st = open_state(location.clone(), &feed_at, &opts).await.unwrap();
        assert_eq!(st.checkpoint().generation, 1, "{damage}");
        assert_eq!(st.damaged_checkpoints().len(), 1, "{damage}");
        assert!(st.damaged_checkpoints()[0].contains("00000000000000000002.json"));

        let report = catch_up(&mut st, &feed_at, &opts, None).await.unwrap();
        assert_eq!(report.files_applied, 1, "{damage}: b is applied again");
        assert_eq!(st.checkpoint().generation, 3, "{damage}");
        assert_eq!(invoice_rows(&mut st), want, "{damage}");
        // And the next process loads the new generation, nothing damaged in its way.
        let mut next = open_state(location, &feed_at, &opts).await.unwrap();
        assert!(next.damaged_checkpoints().is_empty());
        assert_eq!(invoice_rows(&mut next), want, "{damage}");
    }
}

// 3. A snapshot part replaced by another file (fewer rows, or the same rows changed) is not
//    trusted: it is named, and the state is rebuilt from the feed, with every row.
#[tokio::test]
async fn a_changed_snapshot_part_is_rebuilt_from_the_feed() {
    for change in ["fewer rows", "same rows"] {
        let dir = tempfile::tempdir().unwrap();
        let (feed, state) = (dir.path().join("feed"), dir.path().join("state"));
        let rows: Vec<_> = (0..20)
            .map(|n| ("c", n, format!("I{n}"), 100 + n))
            .collect();
        write(&feed, "invoices/a.parquet", &invoices(&rows));
        let feed_at = arstream::store::open(path(&feed), false).unwrap();
        let location = arstream::store::open(path(&state), true).unwrap();
        let opts = IngestOptions::default();
        let mut st = open_state(location.clone(), &feed_at, &opts).await.unwrap();
        st.set_snapshot_policy(0.0, 0);
        catch_up(&mut st, &feed_at, &opts, None).await.unwrap();
        let part = st.checkpoint().snapshot[0].path.clone();
        let file = state.join(&part);
        let other = match change {
            "fewer rows" => invoices(&rows[..5]),
            _ => invoices(
                &rows
                    .iter()
                    .map(|r| (r.0, r.1, r.2.clone(), 7))
                    .collect::<Vec<_>>(),
            ),
        };
        let other = arstream::parquet_io::encode(&other.schema(), &[other]).unwrap();
        std::fs::write(&file, other).unwrap();

        let reopened = open_state(location, &feed_at, &opts).await.unwrap();
        let damaged = reopened.damaged_checkpoints();
        assert_eq!(damaged.len(), 1, "{change}: {damaged:?}");
        assert!(damaged[0].contains(&part), "{change}: {damaged:?}");
        assert!(damaged[0].contains("checksum"), "{change}: {damaged:?}");
        let table = reopened.table(Entity::Invoices);
        assert_eq!(table.live_rows(), 20, "{change}");
        let (batch, row) = table.get("I3").expect("I3 is back");
        let amount = batch.column_by_name("amount").unwrap();
        assert_eq!(
            arrow::util::display::array_value_to_string(amount, row).unwrap(),
            "1.03",
            "{change}"
        );
        // The next catch-up writes a sound snapshot, though nothing new came: the load after
        // it neither warns nor replays.
        let mut rebuilt = reopened;
        catch_up(&mut rebuilt, &feed_at, &opts, None).await.unwrap();
        let snapshot = &rebuilt.checkpoint().snapshot;
        assert!(
            !snapshot.is_empty() && snapshot[0].path != part,
            "{change}: {snapshot:?}"
        );
        let location = arstream::store::open(path(&state), false).unwrap();
        let again = open_state(location, &feed_at, &opts).await.unwrap();
        assert!(again.damaged_checkpoints().is_empty(), "{change}");
        assert!(again.to_replay().is_empty(), "{change}");
        assert_eq!(again.table(Entity::Invoices).live_rows(), 20, "{change}");
    }
}

// 4. A bad entry in a local feed (a symlink loop, a dangling link) is skipped and reported;
//    the rest of the feed goes on.
#[tokio::test]
async fn a_bad_directory_entry_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (feed, state) = (dir.path().join("feed"), dir.path().join("state"));
    write(
        &feed,
        "invoices/a.parquet",
        &invoices(&[("c", 1, "A".into(), 100)]),
    );
    write(&feed, "payments/x/b.parquet", &payment("P1", 1));
    std::os::unix::fs::symlink("..", feed.join("invoices/loop")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/x", feed.join("payments/gone.parquet")).unwrap();

    let (mut st, report) = ingest_dir(&feed, &state).await;
    assert_eq!(report.files_applied, 2, "{:?}", report.skipped_entries);
    assert_eq!(
        report.skipped_entries.len(),
        2,
        "{:?}",
        report.skipped_entries
    );
    assert!(
        report
            .skipped_entries
            .iter()
            .any(|e| e.starts_with("'invoices/loop'")),
        "{:?}",
        report.skipped_entries
    );
    assert!(
        report
            .skipped_entries
            .iter()
            .any(|e| e.starts_with("'payments/gone.parquet'"))
    );
    assert_eq!(invoice_rows(&mut st).len(), 1);
}

fn payment(id: &str, seq: i64) -> RecordBatch {
    let mut b = BatchBuilder::new(Entity::Payments);
    b.row(op("c"), seq, 1_767_225_600_000_000)
        .text(Some(id))
        .text(Some("C1"))
        .text(Some("I1"))
        .date(Some(20_510))
        .decimal(5_000)
        .text(Some("USD"));
    b.finish()
}

// 5. A state or output folder inside the feed is refused (its files would be read as feed
//    files, nesting quarantine copies one level deeper at every run); a hidden one is fine.
#[test]
fn a_state_or_output_folder_inside_the_feed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    let inside = feed.join("state");
    let o = arstream(
        &[
            "--feed",
            path(&feed),
            "--state",
            path(&inside),
            "run",
            "--once",
        ],
        dir.path(),
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("is inside the feed"), "{err}");
    assert!(!inside.join("checkpoints").exists());

    let state = dir.path().join("state");
    let out = feed.join("invoices/out");
    let o = arstream(
        &[
            "--feed",
            path(&feed),
            "--state",
            path(&state),
            "run",
            "--once",
            "--out",
            path(&out),
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("output folder"), "{}", text(&o).1);

    let hidden = feed.join(".arstream/state");
    let o = arstream(
        &["--feed", path(&feed), "--state", path(&hidden), "status"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o).1);
}

/// An FX rate file of one currency: (rate date in days, rate in 1e-8 units).
fn rates(currency: &str, rows: &[(i32, i128)]) -> RecordBatch {
    let mut b = BatchBuilder::new(Entity::FxRates);
    for (n, (day, rate)) in rows.iter().enumerate() {
        b.row(op("c"), n as i64 + 1, 1_767_225_600_000_000)
            .text(Some(currency))
            .date(Some(*day))
            .decimal(*rate);
    }
    b.finish()
}

/// Invoices of one customer: (id, currency, amount in cents), dated 2026-02-15, due 2026-03-17.
fn invoices_in(rows: &[(&str, &str, i128)]) -> RecordBatch {
    let mut b = BatchBuilder::new(Entity::Invoices);
    for (n, (id, ccy, cents)) in rows.iter().enumerate() {
        b.row(op("c"), n as i64 + 1, 1_767_225_600_000_000)
            .text(Some(id))
            .text(Some("C1"))
            .date(Some(20_499))
            .date(Some(20_529))
            .decimal(*cents)
            .text(Some(ccy))
            .text(Some("posted"));
    }
    b.finish()
}

// 6. An FX rate of zero or below breaks the contract; the good rates beside it apply.
#[tokio::test]
async fn a_non_positive_rate_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let (feed, state) = (dir.path().join("feed"), dir.path().join("state"));
    write(
        &feed,
        "fx_rates/good.parquet",
        &rates("EUR", &[(20_450, 110_000_000)]),
    );
    write(
        &feed,
        "fx_rates/zero.parquet",
        &rates("GBP", &[(20_450, 125_000_000), (20_451, 0)]),
    );
    write(
        &feed,
        "fx_rates/negative.parquet",
        &rates("CAD", &[(20_450, -150_000_000)]),
    );
    let (_, report) = ingest_dir(&feed, &state).await;
    assert_eq!(report.files_applied, 1);
    let mut found: Vec<_> = (report.quarantined.iter())
        .map(|v| (v.file.as_str(), v.code, v.row, v.column.as_deref()))
        .collect();
    found.sort_by_key(|f| f.0);
    assert_eq!(
        found,
        vec![
            (
                "fx_rates/negative.parquet",
                ViolationCode::NonPositiveRate,
                Some(1),
                Some("rate")
            ),
            (
                "fx_rates/zero.parquet",
                ViolationCode::NonPositiveRate,
                Some(2),
                Some("rate")
            ),
        ]
    );
}

// 7. A reporting currency other than the one rates are quoted in converts through cross
//    rates, its own invoices at 1.
#[tokio::test]
async fn another_reporting_currency_converts_through_cross_rates() {
    let dir = tempfile::tempdir().unwrap();
    let (feed, state) = (dir.path().join("feed"), dir.path().join("state"));
    let three = invoices_in(&[
        ("U", "USD", 11_000),
        ("E", "EUR", 10_000),
        ("G", "GBP", 8_800),
    ]);
    write(&feed, "invoices/a.parquet", &three);
    // USD per unit: 1 EUR = 1.10 USD, 1 GBP = 1.25 USD.
    write(
        &feed,
        "fx_rates/eur.parquet",
        &rates("EUR", &[(20_450, 110_000_000)]),
    );
    write(
        &feed,
        "fx_rates/gbp.parquet",
        &rates("GBP", &[(20_450, 125_000_000)]),
    );
    let (mut st, _) = ingest_dir(&feed, &state).await;
    let mut params = KpiParams::new(chrono::NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
    let total = "SELECT CAST(total_ar AS DOUBLE) FROM kpi_summary";
    // In USD: 110 + 110 + 110 = 330.
    assert_eq!(scalar(&mut st, total, &params).await, "330.0");
    // In EUR: 110 USD = 100 EUR, 100 EUR, 88 GBP = 110 USD = 100 EUR (rates to 8 decimals).
    params.currency = "EUR".into();
    let eur: f64 = scalar(&mut st, total, &params).await.parse().unwrap();
    assert!((eur - 300.0).abs() < 0.01, "{eur}");
    let missing = "SELECT count(*) FROM missing_fx_rates";
    assert_eq!(scalar(&mut st, missing, &params).await, "0");
    // A reporting currency with no rate at all converts nothing, and says so.
    params.currency = "JPY".into();
    assert_eq!(scalar(&mut st, missing, &params).await, "3");
}

// 8 and 9. Out-of-range values are quarantined at the contract with file, row and column:
//    a `_ts` in 2099 or at i64::MAX, a 0001-01-01 sentinel date, an amount past the range.
#[tokio::test]
async fn out_of_range_values_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let (feed, state) = (dir.path().join("feed"), dir.path().join("state"));
    let two = || invoices(&[("c", 1, "A".into(), 100), ("c", 2, "B".into(), 200)]);
    let ts = |second: i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(vec![1_767_225_600_000_000, second])
                .with_timezone("UTC"),
        )
    };
    write(
        &feed,
        "invoices/future.parquet",
        &with_column(&two(), "_ts", ts(4_070_908_800_000_000)),
    );
    write(
        &feed,
        "invoices/max-ts.parquet",
        &with_column(&two(), "_ts", ts(i64::MAX)),
    );
    let dates: ArrayRef = Arc::new(Date32Array::from(vec![20_500, -719_162]));
    write(
        &feed,
        "invoices/sentinel.parquet",
        &with_column(&two(), "invoice_date", dates),
    );
    let huge: ArrayRef = Arc::new(
        Decimal128Array::from(vec![100, 999_999_999_999_999_999])
            .with_precision_and_scale(18, 2)
            .unwrap(),
    );
    write(
        &feed,
        "invoices/huge.parquet",
        &with_column(&two(), "amount", huge),
    );
    write(
        &feed,
        "invoices/ok.parquet",
        &invoices(&[("c", 3, "C".into(), 300)]),
    );

    let (_, report) = ingest_dir(&feed, &state).await;
    assert_eq!(report.files_applied, 1);
    let mut found: Vec<_> = (report.quarantined.iter())
        .map(|v| (v.file.as_str(), v.code, v.row, v.column.as_deref()))
        .collect();
    found.sort_by_key(|f| f.0);
    let out = ViolationCode::OutOfRange;
    assert_eq!(
        found,
        vec![
            ("invoices/future.parquet", out, Some(2), Some("_ts")),
            ("invoices/huge.parquet", out, Some(2), Some("amount")),
            ("invoices/max-ts.parquet", out, Some(2), Some("_ts")),
            (
                "invoices/sentinel.parquet",
                out,
                Some(2),
                Some("invoice_date")
            ),
        ]
    );
    let sentinel = report
        .quarantined
        .iter()
        .find(|v| v.file.contains("sentinel"))
        .unwrap();
    assert!(
        sentinel
            .reason()
            .contains("0001-01-01 is outside 1900-01-01 to 2199-12-31"),
        "{}",
        sentinel.reason()
    );
}

// 9. An as-of date past the range is refused with a sentence, not a failed cast.
#[test]
fn an_as_of_date_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    let state = dir.path().join("state");
    let o = arstream(
        &[
            "--feed",
            path(&feed),
            "--state",
            path(&state),
            "--as-of",
            "9999-12-31",
            "kpi",
        ],
        dir.path(),
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("as-of date 9999-12-31 is out of range"),
        "{err}"
    );
    assert!(!err.contains("Cannot cast"), "{err}");
}

// 10. A poll interval that is not a finite number of seconds from 0.05 to a day is refused.
#[test]
fn a_bad_poll_interval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["inf", "1e30", "nan", "-1", "0", "soon"] {
        let o = arstream(&["run", "--interval", bad], dir.path());
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--interval"), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{bad}: {err}");
    }
}

// 13. Analysts' SQL reads: COPY, CREATE EXTERNAL TABLE and INSERT are refused; SET works.
#[test]
fn analysts_sql_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    let state = dir.path().join("state");
    let base = [
        "--feed",
        path(&feed),
        "--state",
        path(&state),
        "--as-of",
        "2026-01-31",
        "sql",
    ];
    let target = feed.join("invoices/x.parquet");
    let copy = format!("COPY (SELECT 1) TO '{}'", path(&target));
    let external = "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'";
    for refused in [
        copy.as_str(),
        external,
        "CREATE VIEW v AS SELECT 1",
        "INSERT INTO invoices SELECT * FROM invoices",
    ] {
        let mut args = base.to_vec();
        args.push(refused);
        let o = arstream(&args, dir.path());
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{refused} ran");
        assert!(err.contains("queries and SET only"), "{refused}: {err}");
    }
    assert!(!target.exists(), "COPY wrote into the feed");

    let mut args = base.to_vec();
    args.push("SET datafusion.execution.batch_size = 1000");
    assert!(arstream(&args, dir.path()).status.success());
    let mut args = base.to_vec();
    args.extend(["--format", "csv", "SELECT count(*) AS n FROM invoices"]);
    let o = arstream(&args, dir.path());
    assert_eq!(text(&o).0, "n\n1\n");
}

// Smaller: reasons without Rust debug values, an empty state URL, the shell's last statement
// without ';' at the end of its input, and `\d` of a table that is not there.
#[test]
fn smaller_rough_edges() {
    let dir = tempfile::tempdir().unwrap();
    let feed = one_invoice_feed(dir.path());
    let ops: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["U"]));
    write(
        &feed,
        "invoices/b.parquet",
        &with_column(&invoices(&[("c", 2, "B".into(), 1)]), "_op", ops),
    );
    let state = dir.path().join("state");
    let o = arstream(
        &["--feed", path(&feed), "--state", path(&state), "status"],
        dir.path(),
    );
    let (out, _) = text(&o);
    assert!(
        out.contains("_op is \"U\"; expected one of r, c, u, d"),
        "{out}"
    );
    assert!(!out.contains("Some("), "{out}");

    let o = arstream(
        &["--feed", path(&feed), "--state", "", "status"],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("the location is empty"),
        "{}",
        text(&o).1
    );
    assert!(!dir.path().join("checkpoints").exists());

    let mut shell = Command::new(BIN)
        .args([
            "--feed",
            path(&feed),
            "--state",
            path(&state),
            "--as-of",
            "2026-01-31",
            "sql",
            "--format",
            "csv",
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = shell.stdin.as_mut().unwrap();
        stdin
            .write_all(b"\\d nosuch\nSELECT 41 + 1 AS answer")
            .unwrap();
    }
    let o = shell.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert!(err.contains("no table or view named 'nosuch'"), "{err}");
    assert!(out.contains("answer\n42\n"), "{out}");
}

// 12. `--offline` says what it does: no new feed files, but the files after the last snapshot
//     are still re-read from the feed.
#[test]
fn offline_says_what_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let o = arstream(&["sql", "--help"], dir.path());
    let (out, _) = text(&o);
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("Do not look for new feed files"), "{out}");
    assert!(
        flat.contains("re-reads from the feed the files applied after its last snapshot"),
        "{out}"
    );
}

// 11. A stop is honoured while an object-store request hangs (a frozen S3 server that accepts
//     connections and never answers): the request in flight is dropped and run exits 0.
#[test]
fn a_stop_is_honoured_while_the_store_hangs() {
    let frozen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = frozen.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in frozen.incoming().take(100) {
            held.push(connection);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--feed",
            "s3://frozen/feed",
            "--state",
            path(&dir.path().join("state")),
            "run",
            "--headless",
        ])
        .current_dir(dir.path())
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "run ended before the stop"
    );
    let signalled = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = signalled + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit 10 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let o = child.wait_with_output().unwrap();
    assert!(status.success(), "{status:?}: {}", text(&o).1);
    assert!(text(&o).0.contains("stopped after"), "{}", text(&o).0);
}
