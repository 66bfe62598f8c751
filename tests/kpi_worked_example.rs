//! The worked example of `kpis.md`, written as a change feed, reproduced number by number
//! through `arstream kpi --format json` for both windows, from the ledger and from the plain
//! views (`--plain`).

mod common;

use common::worked_example::write_worked_example;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn kpi(feed: &Path, state: &Path, window: &str, plain: bool) -> Value {
    let out = common::succeeded(
        Command::new(env!("CARGO_BIN_EXE_arstream"))
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
            ]),
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
