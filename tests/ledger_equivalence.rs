//! The KPI ledger gives exactly what the plain views give: on random feeds (several
//! currencies, one without rates, voids, deletes, updates, overpaid invoices, negative
//! payments, payments before their invoice, promises on accounts) and random as-of dates and
//! windows, `kpi_summary`, `aging_totals` and `missing_fx_rates` computed from the ledger equal the plain
//! definitions, and the aging report's lines add up to its totals and to total AR to the cent. The ledger is built after the first wave of files and maintained change by
//! change through the second, so both its build and its incremental upkeep are checked.

mod common;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arstream::engine::Engine;
use arstream::engine::params::KpiParams;
use arstream::engine::views::ViewSet;
use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::ingest::{IngestOptions, catch_up, open_state};
use arstream::state::State;
use common::op;
use object_store::ObjectStoreExt;
use proptest::prelude::*;

/// 2026-01-01 as a Date32.
const BASE: i32 = 20_454;

/// A small deterministic generator (xorshift), seeded by proptest.
struct Rng(common::Xorshift);

impl Rng {
    fn below(&mut self, n: u64) -> i64 {
        (self.0.next() % n) as i64
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent as i64
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Start a change row (an upsert, or now and then a delete); whether it carries an image.
fn start(b: &mut BatchBuilder, rng: &mut Rng, seq: &mut i64) -> bool {
    *seq += 1;
    let code = if rng.chance(12) { "d" } else { "u" };
    b.row(op(code), *seq, 1_767_225_600_000_000 + *seq);
    code != "d"
}

/// One wave of changes to every entity the KPIs read, keys drawn from small pools so that
/// later waves update and delete what earlier ones wrote.
fn wave(rng: &mut Rng, seq: &mut i64) -> Vec<(Entity, RecordBatch)> {
    let currencies = ["USD", "USD", "EUR", "GBP"];
    let mut out = Vec::new();

    let mut b = BatchBuilder::new(Entity::Invoices);
    for _ in 0..rng.range(3, 12) {
        let id = format!("I{}", rng.below(10));
        let live = start(&mut b, rng, seq);
        b.text(Some(&id));
        if live {
            let invoice_date = BASE + rng.range(0, 90) as i32;
            let status = rng.pick(&["posted", "posted", "paid", "void"]);
            b.text(Some(&format!("C{}", rng.below(3))))
                .date(Some(invoice_date))
                .date((!rng.chance(5)).then(|| invoice_date + rng.range(0, 45) as i32))
                .decimal(rng.range(0, 500_000) as i128)
                .text(Some(rng.pick(&currencies)))
                .text(Some(status));
        }
    }
    out.push((Entity::Invoices, b.finish()));

    let mut b = BatchBuilder::new(Entity::Payments);
    for _ in 0..rng.range(0, 14) {
        let id = format!("P{}", rng.below(14));
        let live = start(&mut b, rng, seq);
        b.text(Some(&id));
        if live {
            let invoice = (!rng.chance(20)).then(|| format!("I{}", rng.below(12)));
            b.text(Some(&format!("C{}", rng.below(3))))
                .text(invoice.as_deref())
                .date(Some(BASE + rng.range(0, 120) as i32))
                .decimal(rng.range(-5_000, 300_000) as i128)
                .text(Some(rng.pick(&currencies)));
        }
    }
    out.push((Entity::Payments, b.finish()));

    let mut b = BatchBuilder::new(Entity::Adjustments);
    for _ in 0..rng.range(0, 6) {
        let id = format!("A{}", rng.below(6));
        let live = start(&mut b, rng, seq);
        b.text(Some(&id));
        if live {
            b.text(Some(&format!("I{}", rng.below(10))))
                .text(Some(&format!("C{}", rng.below(3))))
                .date(Some(BASE + rng.range(0, 120) as i32))
                .decimal(rng.range(-30_000, 200_000) as i128)
                .text(Some(rng.pick(&currencies)))
                .text(Some(rng.pick(&["write_off", "credit_note", "discount"])));
        }
    }
    out.push((Entity::Adjustments, b.finish()));

    let mut b = BatchBuilder::new(Entity::Promises);
    for _ in 0..rng.range(0, 6) {
        let id = format!("PR{}", rng.below(6));
        let live = start(&mut b, rng, seq);
        b.text(Some(&id));
        if live {
            let created = BASE + rng.range(0, 100) as i32;
            let invoice = (!rng.chance(30)).then(|| format!("I{}", rng.below(10)));
            b.text(Some(&format!("C{}", rng.below(3))))
                .text(invoice.as_deref())
                .date(Some(created))
                .date(Some(created + rng.range(0, 15) as i32))
                .decimal(rng.range(0, 300_000) as i128)
                .text(Some("USD"))
                .text(Some("K1"));
        }
    }
    out.push((Entity::Promises, b.finish()));

    let mut b = BatchBuilder::new(Entity::FxRates);
    for _ in 0..rng.range(0, 3) {
        *seq += 1;
        b.row(op("u"), *seq, 1_767_225_600_000_000 + *seq)
            .text(Some("EUR"))
            .date(Some(BASE - 30 + 30 * rng.range(0, 5) as i32))
            .decimal(rng.range(90_000_000, 130_000_000) as i128);
    }
    out.push((Entity::FxRates, b.finish()));
    out
}

/// Every cell of a result as text, floats apart (compared with a tolerance).
enum Cell {
    Text(String),
    Float(Option<f64>),
}

fn cells(batches: &[RecordBatch]) -> Vec<(String, Cell)> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                let cell = if field.data_type() == &DataType::Float64 {
                    let floats = column.as_primitive::<Float64Type>();
                    Cell::Float(floats.is_valid(row).then(|| floats.value(row)))
                } else {
                    let f = ArrayFormatter::try_new(column.as_ref(), &options).unwrap();
                    Cell::Text(f.value(row).to_string())
                };
                out.push((field.name().clone(), cell));
            }
        }
    }
    out
}

fn assert_same(what: &str, plain: &[RecordBatch], ledger: &[RecordBatch]) {
    let (plain, ledger) = (cells(plain), cells(ledger));
    assert_eq!(plain.len(), ledger.len(), "{what}: row shapes differ");
    for ((name, p), (_, l)) in plain.iter().zip(&ledger) {
        match (p, l) {
            (Cell::Text(p), Cell::Text(l)) => assert_eq!(p, l, "{what}: {name}"),
            (Cell::Float(p), Cell::Float(l)) => match (p, l) {
                (Some(p), Some(l)) => assert!(
                    (p - l).abs() <= 1e-9 * p.abs().max(1.0),
                    "{what}: {name}: plain {p}, ledger {l}"
                ),
                _ => assert_eq!(p, l, "{what}: {name}"),
            },
            _ => panic!("{what}: {name}: types differ"),
        }
    }
}

/// The parts of the aging report add up to its totals to the cent, and those to the KPI
/// summary's total AR (money is rounded once): rows breaking it are counted.
const PARTS_NOT_ADDING_UP: &str = "
    WITH per_bucket AS (SELECT bucket, sum(open_amount_rc) AS amount FROM aging GROUP BY bucket),
    totals AS (SELECT sum(open_amount_rc) AS amount FROM aging_totals)
    SELECT CAST(count(*) AS BIGINT) AS off FROM aging_totals t
    LEFT JOIN per_bucket b ON b.bucket = t.bucket
    WHERE t.open_amount_rc <> coalesce(b.amount, 0)
    UNION ALL
    SELECT CAST(count(*) AS BIGINT) FROM kpi_summary k CROSS JOIN totals t
    WHERE k.total_ar <> t.amount OR k.current_ar + k.past_due_ar <> k.total_ar";

async fn assert_parts_add_up(what: &str, engine: &Engine) {
    let rows = engine.query(PARTS_NOT_ADDING_UP).await.unwrap();
    let off: i64 = rows
        .iter()
        .map(|b| {
            b.column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .flatten()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(
        off, 0,
        "{what}: aging lines, bucket totals and total AR do not add up"
    );
}

/// Compare the two engines. `pinned` is the as-of date of the case's refreshes: the ledger
/// keeps per-customer aging at it through the waves' changes.
async fn compare(state: &mut State, rng: &mut Rng, label: &str, pinned: i32) {
    let mut params = KpiParams::new(arstream::dates::date(pinned));
    let plain = Engine::new().with_queries(None, ViewSet::Plain).unwrap();
    let ledger = Engine::new()
        .with_queries(None, ViewSet::Incremental)
        .unwrap();
    plain.refresh(state, &params).await.unwrap();
    ledger.refresh(state, &params).await.unwrap();
    let sql = "SELECT * FROM aging ORDER BY customer_id NULLS FIRST, bucket";
    let what = format!("{label}, pinned as of {}: {sql}", params.as_of);
    assert_same(
        &what,
        &plain.query(sql).await.unwrap(),
        &ledger.query(sql).await.unwrap(),
    );
    for round in 0..2 {
        params.as_of = arstream::dates::date(BASE + rng.range(-5, 135) as i32);
        params.window_days = [7, 30, 90][rng.below(3) as usize];
        plain.set_params(&params).await.unwrap();
        // An engine at the case's date, forked to this one (as the dashboard's KPI history
        // does): the same KPI summary as the plain views at this date. Once a wave.
        if round == 0 {
            let base = Engine::new()
                .with_queries(None, ViewSet::Incremental)
                .unwrap();
            base.refresh(state, &KpiParams::new(arstream::dates::date(pinned)))
                .await
                .unwrap();
            let fork = base.at_as_of(&params).unwrap();
            for sql in [
                "SELECT * FROM kpi_summary",
                "SELECT * FROM aging_totals ORDER BY ord",
            ] {
                let p = plain.query(sql).await.unwrap();
                let f = fork.query(sql).await.unwrap();
                assert_same(
                    &format!("{label}, forked to {}: {sql}", params.as_of),
                    &p,
                    &f,
                );
            }
        }
        if round == 0 {
            // Aging pinned afresh at another date (a pass over the invoices).
            ledger.refresh(state, &params).await.unwrap();
        } else {
            // Another date than the pinned one: `aging` falls back to its plain view.
            ledger.set_params(&params).await.unwrap();
        }
        let what = format!(
            "{label}, as of {} over {} days",
            params.as_of, params.window_days
        );
        for sql in [
            "SELECT * FROM kpi_summary",
            "SELECT * FROM aging_totals ORDER BY ord",
            "SELECT * FROM missing_fx_rates ORDER BY currency",
            "SELECT * FROM aging ORDER BY customer_id NULLS FIRST, bucket",
        ] {
            let p = plain.query(sql).await.unwrap();
            let l = ledger.query(sql).await.unwrap();
            assert_same(&format!("{what}: {sql}"), &p, &l);
        }
        assert_parts_add_up(&what, &plain).await;
    }
    // Back to the case's date, so that the next wave's changes are applied to aging kept there.
    ledger
        .refresh(state, &KpiParams::new(arstream::dates::date(pinned)))
        .await
        .unwrap();
}

static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn check(seed: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rng = Rng(common::Xorshift::new(seed));
        let mut seq = 0;
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let feed = arstream::store::open(&format!("memory://ledger-feed-{case}/"), false).unwrap();
        let state_location =
            arstream::store::open(&format!("memory://ledger-state-{case}/"), true).unwrap();
        let opts = IngestOptions::default();
        let mut state: Option<State> = None;
        let pinned = BASE + rng.range(0, 120) as i32;
        for wave_no in 0..3 {
            for (entity, batch) in wave(&mut rng, &mut seq) {
                if batch.num_rows() == 0 {
                    continue;
                }
                let bytes = arstream::parquet_io::encode(&batch.schema(), &[batch]).unwrap();
                let path = feed.child(&format!("{}/w{wave_no}.parquet", entity.name()));
                feed.store.put(&path, bytes.into()).await.unwrap();
            }
            let state = match &mut state {
                Some(state) => state,
                None => state.insert(
                    open_state(state_location.clone(), &feed, &opts)
                        .await
                        .unwrap(),
                ),
            };
            let report = catch_up(state, &feed, &opts, None).await.unwrap();
            assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
            let label = format!("seed {seed}, wave {wave_no}");
            compare(state, &mut rng, &label, pinned).await;
        }
    });
}

// Two tests of six cases each, so that the test runner spreads them over two cores (each
// query plans in about 0.3 s in the unoptimized test build).
proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_gives_what_the_plain_views_give(seed in any::<u64>()) {
        check(seed);
    }

    #[test]
    fn the_ledger_gives_what_the_plain_views_give_on_other_feeds(seed in any::<u64>()) {
        check(seed);
    }
}
