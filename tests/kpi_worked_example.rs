//! The worked example of `kpis.md`, written as a change feed, reproduced number by number
//! through `arstream kpi --format json` for both windows, from the ledger and from the plain
//! views (`--plain`).

mod common;

use std::path::Path;
use std::process::Command;

use arstream::dates::days;
use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::generate::simulate::Op;
use chrono::NaiveDate;
use serde_json::Value;

fn d(s: &str) -> Option<i32> {
    Some(days(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()))
}

/// Money in cents.
fn m(units: i64) -> i128 {
    units as i128 * 100
}

/// Write the example's rows as one `c` change each.
pub fn write_worked_example(feed: &Path) {
    let ts = 1_767_225_600_000_000;
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };

    let mut b = BatchBuilder::new(Entity::Customers);
    for id in ["C1", "C2"] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(&format!("Customer {id}")))
            .text(Some("US"))
            .text(Some("USD"))
            .decimal(m(100_000))
            .int(30)
            .text(Some("smb"))
            .text(Some("en-US"))
            .text(Some("ap@example.com"))
            .text(Some("+1-555-0100"))
            .text(Some("COL1"));
    }
    common::write(feed, "customers/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Invoices);
    for (id, customer, date, due, amount) in [
        ("I1", "C1", "2025-12-15", "2026-01-14", 1000),
        ("I2", "C1", "2026-01-10", "2026-02-09", 2000),
        ("I3", "C2", "2026-02-01", "2026-03-03", 3000),
        ("I4", "C2", "2026-03-05", "2026-04-04", 4000),
        ("I5", "C1", "2026-03-20", "2026-04-19", 1500),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(customer))
            .date(d(date))
            .date(d(due))
            .decimal(m(amount))
            .text(Some("USD"))
            .text(Some("posted"));
    }
    common::write(feed, "invoices/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Payments);
    for (id, invoice, customer, date, amount) in [
        ("P1", "I1", "C1", "2026-01-20", 1000),
        ("P2", "I2", "C1", "2026-02-15", 500),
        ("P3", "I3", "C2", "2026-03-10", 3000),
        ("P4", "I2", "C1", "2026-03-22", 300),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(customer))
            .text(Some(invoice))
            .date(d(date))
            .decimal(m(amount))
            .text(Some("USD"));
    }
    common::write(feed, "payments/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Adjustments);
    b.row(Op::Create, next(), ts)
        .text(Some("A1"))
        .text(Some("I2"))
        .text(Some("C1"))
        .date(d("2026-03-15"))
        .decimal(m(200))
        .text(Some("USD"))
        .text(Some("write_off"));
    common::write(feed, "adjustments/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Disputes);
    for (id, invoice, customer, opened, status, resolved) in [
        ("D1", "I2", "C1", "2026-02-20", "open", None),
        ("D2", "I3", "C2", "2026-03-04", "resolved", d("2026-03-09")),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some(invoice))
            .text(Some(customer))
            .date(d(opened))
            .decimal(m(1000))
            .text(Some("USD"))
            .text(Some("pricing"))
            .text(Some(status))
            .date(resolved);
    }
    common::write(feed, "disputes/part-0.parquet", &b.finish());

    let mut b = BatchBuilder::new(Entity::Promises);
    for (id, created, promised, amount) in [
        ("PR1", "2026-03-10", "2026-03-20", 300),
        ("PR2", "2026-02-16", "2026-02-25", 1500),
    ] {
        b.row(Op::Create, next(), ts)
            .text(Some(id))
            .text(Some("C1"))
            .text(Some("I2"))
            .date(d(created))
            .date(d(promised))
            .decimal(m(amount))
            .text(Some("USD"))
            .text(Some("COL1"));
    }
    common::write(feed, "promises/part-0.parquet", &b.finish());
}

fn kpi(feed: &Path, state: &Path, window: &str, plain: bool) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_arstream"))
        .args(plain.then_some("--plain"))
        .args([
            "--feed",
            feed.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
        .args([
            "--as-of",
            "2026-03-31",
            "--window",
            window,
            "--currency",
            "USD",
            "kpi",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_close(k: &Value, key: &str, want: Option<f64>) {
    match (k[key].as_f64(), want) {
        (Some(got), Some(want)) => {
            assert!((got - want).abs() < 5e-7, "{key}: got {got}, want {want}")
        }
        (None, None) => assert!(k[key].is_null(), "{key} should be null, is {}", k[key]),
        (got, want) => panic!("{key}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn worked_example_of_kpis_md() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    write_worked_example(&feed);
    let state = dir.path().join("state");

    // (KPI, W = 90, W = 31) as in the table of kpis.md.
    let table: [(&str, Option<f64>, Option<f64>); 11] = [
        ("credit_sales", Some(10500.0), Some(5500.0)),
        ("dso", Some(55.714286), Some(36.636364)),
        ("best_possible_dso", Some(47.142857), Some(31.0)),
        ("add", Some(8.571429), Some(5.636364)),
        ("add_weighted", Some(7.692308), Some(7.692308)),
        ("countback_dso", Some(40.333333), Some(40.333333)),
        ("cei", Some(0.833333), Some(0.777778)),
        ("bad_debt_ratio", Some(0.019048), Some(0.036364)),
        ("recovery_rate", None, Some(0.2)),
        ("ptp_kept_rate", Some(0.5), Some(1.0)),
        ("dispute_resolution_days", Some(5.0), Some(5.0)),
    ];
    // From the ledger (the default) and from the plain views.
    for (window, column, plain) in [
        ("90", 1, false),
        ("31", 2, false),
        ("90", 1, true),
        ("31", 2, true),
    ] {
        let k = kpi(&feed, &state, window, plain);
        for row in &table {
            let want = if column == 1 { row.1 } else { row.2 };
            // The table gives 6 decimals; compare at that precision.
            let got = k[row.0].as_f64().map(|v| (v * 1e6).round() / 1e6);
            let rounded = serde_json::json!({ row.0: got });
            assert_close(&rounded, row.0, want);
        }
        assert_close(&k, "total_ar", Some(6500.0));
        assert_close(&k, "current_ar", Some(5500.0));
        assert_close(&k, "past_due_ar", Some(1000.0));
        assert_close(&k, "unapplied_cash", Some(0.0));
        assert_eq!(k["window_days"], window.parse::<i64>().unwrap());
        assert_eq!(k["as_of"], "2026-03-31");
        let aging = &k["aging"];
        for (bucket, amount) in [
            ("current", 5500.0),
            ("1-30", 0.0),
            ("31-60", 1000.0),
            ("61-90", 0.0),
            ("91-120", 0.0),
            ("121+", 0.0),
        ] {
            assert_eq!(
                aging[bucket].as_f64(),
                Some(amount),
                "aging {bucket}: {aging}"
            );
        }
    }
}
