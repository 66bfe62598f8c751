//! The risk model and the worklist: features never read the future; segments, next actions,
//! worklist order and collector assignment on a hand-made feed.

mod common;

use std::path::Path;

use arrow::array::{Array, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray};
use arstream::dates::days;
use arstream::engine::Engine;
use arstream::engine::derived::{self, INVOICE_SCORES};
use arstream::engine::params::KpiParams;
use arstream::engine::views::ViewSet;
use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::generate::simulate::Op;
use arstream::ingest::IngestOptions;
use arstream::models::facts::Customers;
use arstream::models::features::{self, record};
use arstream::models::history::{History, PaidDates};
use arstream::models::metrics;
use arstream::models::risk::{self, RiskOptions};
use arstream::service::models::{ModelTables, ScoredBy, assign_worklist};
use chrono::NaiveDate;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn engine_over(feed: &Path, state: &Path, as_of: &str) -> Engine {
    let (mut state, _) = common::ingest(
        feed.to_str().unwrap(),
        state.to_str().unwrap(),
        &IngestOptions::default(),
    )
    .await;
    let engine = Engine::new().with_queries(None, ViewSet::Plain).unwrap();
    engine
        .refresh(&mut state, &KpiParams::new(date(as_of)))
        .await
        .unwrap();
    engine
}

/// Every feature of every invoice open on `s`, and every customer's record that day, by id.
fn features_on(history: &History, s: i32, late_days: i32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in 0..history.customers.len() {
        let r = record(history, c, s, late_days);
        out.push((history.customers[c].clone(), format!("{r:?}")));
        for i in history.by_customer[c].clone() {
            let inv = &history.invoices[i];
            if inv.open_on(s) {
                let f = features::features(history, i, &r, s, 0.3);
                out.push((inv.invoice_id.clone(), format!("{f:?}")));
            }
        }
    }
    out.sort();
    out
}

// The features of a day, the model trained that day and its scores are the same whether the
// feed holds the months after it or not.
#[tokio::test]
async fn features_of_a_day_do_not_change_when_later_rows_land() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let early = dir.path().join("early");
    common::generated_feed(&full, 60, 10, 11, 500);
    common::copy_months_up_to(&full, &early, "2025-06");
    let known_then = engine_over(&early, &dir.path().join("s1"), "2025-06-30").await;
    let known_now = engine_over(&full, &dir.path().join("s2"), "2025-10-31").await;
    let (then, now) = (
        History::read(&known_then).await.unwrap(),
        History::read(&known_now).await.unwrap(),
    );
    assert!(
        now.invoices.len() > then.invoices.len() + 100,
        "later months add invoices"
    );
    let options = RiskOptions {
        late_days: 30,
        training_days: 365,
        backtest_days: 180,
    };
    for day in ["2025-03-31", "2025-05-15", "2025-06-30"] {
        let s = days(date(day));
        let (a, b) = (features_on(&then, s, 30), features_on(&now, s, 30));
        assert!(a.len() > 60, "{day}: open invoices to compare");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{day}: features differ once later rows landed");
        }
        assert_eq!(a.len(), b.len());
        let (ta, tb) = (
            risk::train(&then, s, options).unwrap(),
            risk::train(&now, s, options).unwrap(),
        );
        assert_eq!(ta.rows, tb.rows);
        assert_eq!(
            ta.model, tb.model,
            "{day}: the model trained that day differs"
        );
        let score = |h: &History, t: &risk::Trained| {
            let mut scores: Vec<(String, u64, Vec<String>)> = (risk::score_open(t, h, s, 30))
                .into_iter()
                .map(|x| {
                    let id = h.invoices[x.invoice].invoice_id.clone();
                    (id, x.probability.to_bits(), x.reasons)
                })
                .collect();
            scores.sort();
            scores
        };
        assert_eq!(score(&then, &ta), score(&now, &tb));
    }
}

// The paid dates the model computes from the settlements are those of `invoice_outcomes`.
#[tokio::test]
async fn paid_dates_are_those_of_invoice_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 60, 8, 5, 400);
    let engine = engine_over(&feed, &dir.path().join("state"), "2025-08-31").await;
    let (view, computed) = (
        History::read_with(&engine, PaidDates::FromView, Customers::All)
            .await
            .unwrap(),
        History::read_with(&engine, PaidDates::Computed, Customers::All)
            .await
            .unwrap(),
    );
    let paid = |h: &History| -> Vec<(String, Option<i32>)> {
        (h.invoices.iter())
            .map(|i| (i.invoice_id.clone(), i.paid_date))
            .collect()
    };
    assert!(
        view.invoices
            .iter()
            .filter(|i| i.paid_date.is_some())
            .count()
            > 500
    );
    assert_eq!(paid(&view), paid(&computed));
    assert_eq!(view.invoices, computed.invoices);
}

/// Money in cents.
fn m(units: i64) -> i128 {
    units as i128 * 100
}

fn d(s: &str) -> Option<i32> {
    Some(days(date(s)))
}

/// Four customers, all owned by COL1 (English only, room for 2), and COL2 (German and
/// English, room for 5):
/// - C1 (en-GB): 10,000 open, 45 days past due, a promise due in 3 days;
/// - C2 (de-DE): 4,000 open, 10 days past due;
/// - C3 (fr-FR): 6,000 open, 70 days past due;
/// - C4 (en-US): 8,000 open, 5 days past due, all in dispute;
/// - C5 (en-US): 500 open, not yet due (not on the worklist unless high risk).
fn write_hand_made_feed(feed: &Path) {
    let ts = 1_767_225_600_000_000;
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut b = BatchBuilder::new(Entity::Customers);
    for (id, lang) in [
        ("C1", "en-GB"),
        ("C2", "de-DE"),
        ("C3", "fr-FR"),
        ("C4", "en-US"),
        ("C5", "en-US"),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(&format!("Customer {id}")))
            .text(Some("US"))
            .text(Some("USD"))
            .decimal(m(100_000))
            .int(30)
            .text(Some("smb"))
            .text(Some(lang))
            .text(Some("ap@example.com"))
            .text(Some("+1-555-0100"))
            .text(Some("COL1"));
    }
    common::write(feed, "customers/part-0.parquet", &b.finish());
    let mut b = BatchBuilder::new(Entity::Collectors);
    for (id, languages, capacity) in [("COL1", "en", 2), ("COL2", "de,en", 5)] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(&format!("Collector {id}")))
            .text(Some("c@example.com"))
            .text(Some(languages))
            .int(capacity);
    }
    common::write(feed, "collectors/part-0.parquet", &b.finish());
    let mut b = BatchBuilder::new(Entity::Invoices);
    for (id, customer, due, amount) in [
        ("I1", "C1", "2026-02-14", 10_000),
        ("I2", "C2", "2026-03-21", 4_000),
        ("I3", "C3", "2026-01-20", 6_000),
        ("I4", "C4", "2026-03-26", 8_000),
        ("I5", "C5", "2026-04-20", 500),
    ] {
        let issued = days(date(due)) - 30;
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(customer))
            .date(Some(issued))
            .date(d(due))
            .decimal(m(amount))
            .text(Some("USD"))
            .text(Some("posted"));
    }
    common::write(feed, "invoices/part-0.parquet", &b.finish());
    let mut b = BatchBuilder::new(Entity::Disputes);
    b.row(Op::Create, next(), ts)
        .text(Some("D1"))
        .text(Some("I4"))
        .text(Some("C4"))
        .date(d("2026-03-28"))
        .decimal(m(8_000))
        .text(Some("USD"))
        .text(Some("pricing"))
        .text(Some("open"))
        .date(None);
    common::write(feed, "disputes/part-0.parquet", &b.finish());
    let mut b = BatchBuilder::new(Entity::Promises);
    b.row(Op::Create, next(), ts)
        .text(Some("PR1"))
        .text(Some("C1"))
        .text(Some("I1"))
        .date(d("2026-03-30"))
        .date(d("2026-04-03"))
        .decimal(m(10_000))
        .text(Some("USD"))
        .text(Some("COL1"));
    common::write(feed, "promises/part-0.parquet", &b.finish());
}

/// `invoice_scores` as the model would hand them over.
fn scores(rows: &[(&str, &str, f64)]) -> RecordBatch {
    let n = rows.len();
    RecordBatch::try_new(
        derived::schema(INVOICE_SCORES).unwrap(),
        vec![
            std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            std::sync::Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
            std::sync::Arc::new(StringArray::from(vec!["a reason"; n])),
            std::sync::Arc::new(Date32Array::from(vec![d("2026-03-31").unwrap(); n])),
            std::sync::Arc::new(Int32Array::from(vec![30; n])),
            std::sync::Arc::new(StringArray::from(vec!["risk model"; n])),
        ],
    )
    .unwrap()
}

async fn rows(engine: &Engine, sql: &str) -> Vec<Vec<String>> {
    let batches = engine.query(sql).await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        for row in 0..b.num_rows() {
            out.push(
                (b.columns().iter())
                    .map(|c| match c.is_null(row) {
                        true => "null".to_string(),
                        false => arrow::util::display::array_value_to_string(c, row).unwrap(),
                    })
                    .collect(),
            );
        }
    }
    out
}

#[tokio::test]
async fn segments_next_actions_worklist_order_and_assignment_on_a_hand_made_feed() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    write_hand_made_feed(&feed);
    let engine = engine_over(&feed, &dir.path().join("state"), "2026-03-31").await;
    // Empty before the model hands its tables over: the views plan, with no rows.
    assert!(rows(&engine, "SELECT * FROM worklist").await.is_empty());
    engine
        .put_derived(
            INVOICE_SCORES,
            scores(&[
                ("I1", "C1", 1.0),  // 45 days past due: late already
                ("I2", "C2", 0.3),  // medium
                ("I3", "C3", 1.0),  // 70 days past due
                ("I4", "C4", 0.55), // high
                ("I5", "C5", 0.1),  // low, not due: not on the worklist
            ]),
        )
        .unwrap();
    let segments = rows(
        &engine,
        "SELECT invoice_id, segment FROM invoice_risk ORDER BY invoice_id",
    )
    .await;
    let segments: Vec<String> = segments.iter().map(|r| r.join(" ")).collect();
    assert_eq!(
        segments,
        [
            "I1 critical",
            "I2 medium",
            "I3 critical",
            "I4 high",
            "I5 low"
        ]
    );
    engine
        .put_derived(
            derived::ASSIGNMENTS,
            assign_worklist(&engine).await.unwrap().0,
        )
        .unwrap();
    let list = rows(
        &engine,
        "SELECT rank, customer_id, CAST(expected_at_risk AS BIGINT), next_action, \
         collector_id, assignment FROM worklist ORDER BY rank",
    )
    .await;
    let list: Vec<String> = list.iter().map(|r| r.join(" | ")).collect();
    assert_eq!(
        list,
        [
            // 10,000 x 1.0: a promise falls due in 3 days; owner COL1 kept.
            "1 | C1 | 10000 | follow up a promise | COL1 | current owner kept",
            // 6,000 x 1.0, 70 days past due; nobody speaks French.
            "2 | C3 | 6000 | escalate | null | no collector speaks 'fr'",
            // 8,000 x 0.55, all in dispute; owner COL1 kept (its second account).
            "3 | C4 | 4400 | hold for dispute | COL1 | current owner kept",
            // 4,000 x 0.3; COL1 speaks no German: COL2.
            "4 | C2 | 1200 | reminder | COL2 | owner COL1 does not speak 'de': least expected amount at risk",
        ]
    );
    let probability = rows(
        &engine,
        "SELECT probability, segment FROM customer_risk WHERE customer_id = 'C4'",
    )
    .await;
    assert_eq!(probability, [["0.55", "high"]]);
    // The worklist's one-row-per-customer holds: no customer twice.
    let dupes = rows(
        &engine,
        "SELECT customer_id FROM worklist GROUP BY customer_id HAVING count(*) > 1",
    )
    .await;
    assert!(dupes.is_empty());
}

// The service scores in the background: the first snapshot's engine gets its risk tables
// without anyone asking, and the next snapshot serves them from its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_scores_each_snapshot_in_the_background() {
    use arstream::service::schedule::Schedule;
    use arstream::service::session::SessionOptions;
    use arstream::service::{Runner, RunnerOptions};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 40, 8, 3, 400);
    let runner = std::sync::Arc::new(Runner::new(RunnerOptions {
        session: SessionOptions {
            feed: Some(feed.display().to_string()),
            state: Some(dir.path().join("state").display().to_string()),
            as_of: Some("2025-08-31".into()),
            ..SessionOptions::default()
        },
        schedule: Schedule::Every(Duration::from_millis(200)),
        watch_feed: false,
    }));
    let mut snapshots = runner.subscribe();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = {
        let (runner, cancel) = (runner.clone(), cancel.clone());
        tokio::spawn(async move { runner.run(&cancel, false).await })
    };
    let count = |engine: std::sync::Arc<Engine>| async move {
        let rows = engine
            .query("SELECT count(*) FROM invoice_scores")
            .await
            .unwrap();
        arrow::util::display::array_value_to_string(rows[0].column(0), 0)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let first = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            if let Some(s) = snapshots.borrow_and_update().clone() {
                return s;
            }
            snapshots.changed().await.unwrap();
        }
    })
    .await
    .expect("a first snapshot");
    let mut scored = 0;
    for _ in 0..600 {
        scored = count(first.engine.clone()).await;
        if scored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every open invoice of the first snapshot, scored in the background.
    let open = first_cell(
        &first.engine,
        "SELECT count(*) FROM open_items WHERE open_amount > 0",
    )
    .await;
    assert_eq!(
        scored.to_string(),
        open,
        "the background scorer scored the first snapshot"
    );
    // Scores are served as soon as made; the forecast is made after them, and the tables
    // go to later snapshots once all are.
    tokio::time::timeout(Duration::from_secs(120), first.model_tables())
        .await
        .expect("the first snapshot's model tables")
        .unwrap();
    let batch = common::invoices(&[("c", 900_000, "LATE-1".into(), 10_000)]);
    common::write(&feed, "invoices/month=2025-08/late.parquet", &batch);
    let second = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Some(s) = snapshots.borrow_and_update().clone()
                && s.sequence > first.sequence
            {
                return s;
            }
            snapshots.changed().await.unwrap();
        }
    })
    .await
    .expect("a second snapshot");
    // The first snapshot's scores, or the second's own once made (with LATE-1).
    let carried = count(second.engine.clone()).await;
    assert!(
        carried == scored || carried == scored + 1,
        "carried into the next snapshot: {carried} of {scored}"
    );
    // Between two trainings, the second snapshot's tables are the first's with the one
    // customer its file named rescored.
    let second_tables = tokio::time::timeout(Duration::from_secs(120), second.model_tables())
        .await
        .expect("the second snapshot's model tables")
        .unwrap();
    assert_eq!(second_tables.rescored, Some(1));
    let (_, rows) = second
        .query("SELECT count(*) FROM worklist", None)
        .await
        .unwrap();
    assert_ne!(
        arrow::util::display::array_value_to_string(rows[0].column(0), 0).unwrap(),
        "0"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

// Between two trainings, a refresh rescores only the customers it touched: the tables it
// makes are those a scoring of every customer with the same model makes, the customer who
// paid everything leaves the worklist, and a new invoice is scored and its customer assigned.
#[tokio::test]
async fn rescoring_the_touched_customers_equals_scoring_everyone_with_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 60, 10, 11, 500);
    let (as_of, state) = ("2025-10-31", dir.path().join("state"));
    let before = engine_over(&feed, &state, as_of).await;
    let options = RiskOptions {
        late_days: 30,
        training_days: 365,
        backtest_days: 180,
    };
    let made = ModelTables::make(&before, date(as_of), options, None)
        .await
        .unwrap();
    let Some(ScoredBy::Model(trained)) = made.scorer.as_deref() else {
        panic!("a model on the generated feed");
    };
    let day = days(date(as_of));
    let known = day as i64 * 86_400_000_000;
    // The worklist's first customer pays every open invoice; another gets a new invoice.
    let payer = first_cell(
        &before,
        "SELECT customer_id FROM worklist ORDER BY rank LIMIT 1",
    )
    .await;
    let open = rows(
        &before,
        &format!(
            "SELECT invoice_id, currency, CAST(round(open_amount * 100) AS BIGINT) \
             FROM open_items WHERE customer_id = '{payer}' AND open_amount > 0"
        ),
    )
    .await;
    assert!(!open.is_empty());
    let mut paid = BatchBuilder::new(Entity::Payments);
    for (n, invoice) in open.iter().enumerate() {
        paid.row(Op::Create, 9_000_000_000 + n as i64, known)
            .text(Some(&format!("PAID-ALL-{n}")))
            .text(Some(&payer))
            .text(Some(&invoice[0]))
            .date(Some(day))
            .decimal(invoice[2].parse::<i128>().unwrap())
            .text(Some(&invoice[1]));
    }
    common::write(&feed, "payments/late/paid.parquet", &paid.finish());
    let other = rows(
        &before,
        &format!(
            "SELECT customer_id, currency FROM customers WHERE customer_id <> '{payer}' \
             ORDER BY customer_id LIMIT 1"
        ),
    )
    .await
    .remove(0);
    let mut issued = BatchBuilder::new(Entity::Invoices);
    issued
        .row(Op::Create, 9_100_000_000, known)
        .text(Some("NEW-1"))
        .text(Some(&other[0]))
        .date(Some(day - 40))
        .date(Some(day - 10))
        .decimal(5_000_000)
        .text(Some(&other[1]))
        .text(Some("posted"));
    common::write(&feed, "invoices/late/new.parquet", &issued.finish());
    let (mut state, report) = common::ingest(
        feed.to_str().unwrap(),
        state.to_str().unwrap(),
        &IngestOptions::default(),
    )
    .await;
    let touched: std::collections::BTreeSet<String> = [payer.clone(), other[0].clone()].into();
    assert_eq!(
        report.touched,
        arstream::ingest::Touched::Customers(touched.clone())
    );
    let after = Engine::new().with_queries(None, ViewSet::Plain).unwrap();
    after
        .refresh(&mut state, &KpiParams::new(date(as_of)))
        .await
        .unwrap();
    let rescored = made
        .rescore(&after, &touched, options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rescored.rescored, Some(2));

    let history = History::read(&after).await.unwrap();
    let all = risk::score_open(trained, &history, day, options.late_days);
    let whole = risk::scores_batch(
        &history,
        &all,
        day,
        options.late_days,
        risk::SCORED_BY_MODEL,
    )
    .unwrap();
    let sorted = |batch: &RecordBatch| {
        let text = |name: &str, r: usize| {
            let column = batch.column_by_name(name).unwrap();
            arrow::util::display::array_value_to_string(column, r).unwrap()
        };
        let mut rows: Vec<String> = (0..batch.num_rows())
            .map(|r| {
                let fields = ["invoice_id", "customer_id", "probability", "reasons"];
                fields.map(|f| text(f, r)).join(" | ")
            })
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(sorted(&rescored.scores), sorted(&whole));
    assert!(
        sorted(&rescored.scores)
            .iter()
            .any(|r| r.starts_with("NEW-1 |"))
    );
    // Served in the later engine: the payer is gone, the new invoice's customer is listed
    // with an assignment (a collector, or why none), as is everyone.
    let listed = rows(&after, "SELECT customer_id, assignment FROM worklist").await;
    assert!(listed.iter().all(|r| r[0] != payer));
    assert!(listed.iter().all(|r| r[1] != "null"), "{listed:?}");
    let new_listed = rows(
        &after,
        &format!(
            "SELECT count(*) FROM worklist WHERE customer_id = '{}'",
            other[0]
        ),
    )
    .await;
    assert_eq!(new_listed, [["1"]]);
}

/// One cell of a query's first row, as text.
async fn first_cell(engine: &Engine, sql: &str) -> String {
    let rows = engine.query(sql).await.unwrap();
    arrow::util::display::array_value_to_string(rows[0].column(0), 0).unwrap()
}

#[tokio::test]
async fn without_a_trainable_model_the_baseline_scores_and_nothing_downstream_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 40, 8, 3, 400);
    let engine = engine_over(&feed, &dir.path().join("state"), "2025-08-31").await;
    // Nothing is a year late by then: every outcome is alike, no model can be trained.
    let options = RiskOptions {
        late_days: 365,
        training_days: 730,
        backtest_days: 180,
    };
    let history = History::read(&engine).await.unwrap();
    assert!(risk::train(&history, days(date("2025-08-31")), options).is_err());
    let tables = ModelTables::make(&engine, date("2025-08-31"), options, None)
        .await
        .expect("the model tables, by the baseline");
    assert_eq!(tables.trained_rows, 0);
    assert!(
        tables.scores.num_rows() > 50,
        "{}",
        tables.scores.num_rows()
    );
    let reasons = first_cell(
        &engine,
        "SELECT reasons FROM invoice_scores WHERE probability < 1 LIMIT 1",
    )
    .await;
    assert!(reasons.starts_with("baseline: "), "{reasons}");
    // Analysts (and the dashboard) see it on every row of invoice_risk.
    let scored_by = first_cell(
        &engine,
        "SELECT min(scored_by) || ' | ' || max(scored_by) FROM invoice_risk",
    )
    .await;
    let (min, max) = scored_by.split_once(" | ").unwrap();
    assert_eq!(min, max, "one scorer for all");
    assert!(min.starts_with("baseline: "), "{min}");
    for table in [
        "worklist",
        "assignments",
        "cash_forecast",
        "invoice_forecast",
    ] {
        let count = first_cell(&engine, &format!("SELECT count(*) FROM {table}")).await;
        assert_ne!(count, "0", "{table} is empty");
    }
}

#[tokio::test]
async fn an_auc_over_a_handful_of_late_invoices_is_not_measurable() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 40, 8, 3, 400);
    let engine = engine_over(&feed, &dir.path().join("state"), "2025-08-31").await;
    let history = History::read(&engine).await.unwrap();
    // Over more days late, or a shorter test window, late invoices grow few: an AUC is a
    // figure while there are enough of them, and not measurable after.
    let (mut measured, mut not_measurable) = (0, 0);
    let as_of = days(date("2025-08-31"));
    for (late_days, window) in [0, 10, 30]
        .into_iter()
        .flat_map(|l| [(l, 150), (l, 45), (l, 20)])
    {
        let options = RiskOptions {
            late_days,
            training_days: 730,
            backtest_days: 180,
        };
        let Ok(b) = risk::backtest(&history, as_of, as_of - window, options) else {
            continue;
        };
        let enough = b.late_invoices.min(b.on_time_invoices) >= risk::MIN_CASES_FOR_AUC;
        assert_eq!(b.auc.is_some(), enough, "{b:?}");
        assert_eq!(b.baseline_auc.is_some(), enough, "{b:?}");
        assert!(b.brier.is_finite());
        match enough {
            true => measured += 1,
            false => not_measurable += 1,
        }
    }
    assert!(
        measured > 0 && not_measurable > 0,
        "{measured} {not_measurable}"
    );
}

/// IBM's late-payment histories (`../shared/datasets/`) as a feed, and an engine over it.
async fn ibm_engine(dir: &Path, as_of: &str) -> Engine {
    let feed = common::ibm_feed(dir).await;
    engine_over(&feed, &dir.join("state"), as_of).await
}

#[tokio::test]
async fn on_real_histories_where_lateness_is_rare_the_model_does_not_invert() {
    let dir = tempfile::tempdir().unwrap();
    let engine = ibm_engine(dir.path(), "2013-12-31").await;
    let history = History::read(&engine).await.unwrap();
    for late_days in [30, 0] {
        let options = RiskOptions {
            late_days,
            training_days: 730,
            backtest_days: 180,
        };
        for as_of in [
            "2013-03-31",
            "2013-04-30",
            "2013-05-31",
            "2013-06-30",
            "2013-09-30",
        ] {
            let cutoff = days(date(as_of)) - 180;
            let scored =
                risk::backtest_scores(&history, days(date(as_of)), cutoff, options).unwrap();
            // At 30 days late, 1 to 4 test invoices were late: too few for an AUC to report,
            // enough to see an inversion. The model ranked them last (AUC 0.023, 0.014, 0.013,
            // 0.246 at 2013-03 to 2013-06); it must rank them well above the on-time ones.
            let model = metrics::roc_auc(&scored.model, &scored.late).unwrap();
            let baseline = metrics::roc_auc(&scored.baseline, &scored.late).unwrap();
            assert!(
                model > 0.75,
                "{late_days} days late, {as_of}: AUC {model} (baseline {baseline})"
            );
            if late_days == 0 {
                assert!(model > baseline, "{as_of}: {model} vs {baseline}");
            }
        }
    }
}

#[tokio::test]
async fn a_rolling_backtest_measures_each_day_and_spreads_what_it_could_measure() {
    use arstream::models::rolling::{RollingOptions, rolling};
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 40, 8, 3, 400);
    let engine = engine_over(&feed, &dir.path().join("state"), "2025-08-31").await;
    let history = History::read(&engine).await.unwrap();
    let options = RiskOptions {
        late_days: 0,
        training_days: 730,
        backtest_days: 180,
    };
    let r = rolling(
        &history,
        days(date("2025-08-31")),
        options,
        RollingOptions {
            every_days: 28,
            origins: 4,
            backtest_days: 90,
        },
        None,
    );
    let days_of: Vec<String> = r.origins.iter().map(|o| o.as_of.to_string()).collect();
    assert_eq!(
        days_of,
        ["2025-06-08", "2025-07-06", "2025-08-03", "2025-08-31"]
    );
    // Each spread is over exactly the days that measured it, its mean between its ends.
    let aucs: Vec<f64> = r.origins.iter().filter_map(|o| o.auc).collect();
    let auc = r.auc.as_ref().expect("some day measured an AUC");
    assert_eq!(auc.count, aucs.len());
    assert!(auc.min <= auc.mean && auc.mean <= auc.max);
    let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
    assert!((auc.mean - mean).abs() < 1e-12);
    for o in &r.origins {
        // An AUC is given only over enough late invoices.
        if let Some(late) = o.late_invoices {
            assert_eq!(o.auc.is_some(), late >= risk::MIN_CASES_FOR_AUC, "{o:?}");
        }
    }
    let wins = (r.origins.iter())
        .filter(|o| matches!((o.auc, o.baseline_auc), (Some(m), Some(b)) if m > b))
        .count();
    assert_eq!(r.auc_wins, wins);
    // The difference is paired by day: its mean is the difference of the means over the days
    // both were measured, and an interval is given only over enough days.
    let both: Vec<f64> = (r.origins.iter())
        .filter_map(|o| Some(o.auc? - o.baseline_auc?))
        .collect();
    match &r.auc_difference {
        Some(d) => {
            assert_eq!(d.count, both.len());
            assert!((d.mean - both.iter().sum::<f64>() / both.len() as f64).abs() < 1e-12);
            assert_eq!(d.interval.is_some(), both.len() >= 5);
            if let Some([lo, hi]) = d.interval {
                assert!(lo <= d.mean && d.mean <= hi, "{d:?}");
            }
        }
        None => assert!(both.is_empty()),
    }
    // The band's coverage per week of the horizon, each a share, over the days measured.
    assert_eq!(r.band_coverage_by_week.len(), 13);
    let measured = r.wape.as_ref().map_or(0, |w| w.count);
    for c in &r.band_coverage_by_week {
        assert_eq!(c.is_some(), measured > 0);
        assert!(c.is_none_or(|c| (0.0..=1.0).contains(&c)));
    }
}

#[tokio::test]
async fn a_model_that_loses_its_own_backtest_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 40, 8, 3, 400);
    let options = RiskOptions {
        late_days: 0,
        training_days: 730,
        backtest_days: 90,
    };
    let (mut lost, mut kept) = (0, 0);
    for (n, as_of) in ["2025-06-30", "2025-07-31", "2025-08-31"]
        .into_iter()
        .enumerate()
    {
        let engine = engine_over(&feed, &dir.path().join(format!("state{n}")), as_of).await;
        let history = History::read(&engine).await.unwrap();
        let loses = risk::loses_to_baseline(&history, days(date(as_of)), options);
        let tables = ModelTables::make(&engine, date(as_of), options, None)
            .await
            .unwrap();
        let by_baseline = first_cell(
            &engine,
            "SELECT count(*) FROM invoice_scores WHERE reasons LIKE 'baseline: %'",
        )
        .await;
        match loses {
            Some((model, baseline)) => {
                lost += 1;
                assert!(model <= baseline);
                assert_eq!(tables.trained_rows, 0, "{as_of}");
                assert_ne!(
                    by_baseline, "0",
                    "{as_of}: the losing model's scores were used"
                );
                let reason = first_cell(
                    &engine,
                    "SELECT reasons FROM invoice_scores WHERE reasons LIKE 'baseline: %' LIMIT 1",
                )
                .await;
                assert!(
                    reason.contains("loses to the baseline on its own backtest"),
                    "{reason}"
                );
                let scored_by =
                    first_cell(&engine, "SELECT DISTINCT scored_by FROM invoice_risk").await;
                assert!(
                    scored_by.starts_with("baseline: ")
                        && scored_by.contains("loses to the baseline on its own backtest"),
                    "{scored_by}"
                );
            }
            None => {
                kept += 1;
                assert!(tables.trained_rows > 0, "{as_of}");
                assert_eq!(by_baseline, "0", "{as_of}");
                let scored_by =
                    first_cell(&engine, "SELECT DISTINCT scored_by FROM invoice_risk").await;
                assert_eq!(scored_by, "risk model", "{as_of}");
            }
        }
    }
    assert!(
        lost > 0,
        "no month-end where the model lost: the test tells nothing ({kept} kept)"
    );
}
