//! `arstream run --out DIR` writes plain Parquet other tools can read: `kpi_summary` one
//! partition per as-of date (rerunning a date replaces its partition, other dates stay), and
//! the latest `aging` and `open_items`.

mod common;

use std::path::Path;
use std::process::Command;

use arrow::array::{Array, AsArray};

fn run(feed: &Path, state: &Path, out: &Path, as_of: &str) {
    let o = Command::new(env!("CARGO_BIN_EXE_arstream"))
        .current_dir(std::env::temp_dir())
        .args([
            "--feed",
            feed.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
        .args([
            "--as-of",
            as_of,
            "run",
            "--once",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn outputs_are_partitioned_by_as_of_and_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 20, 3, 3, 100_000);
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    run(&feed, &state, &out, "2025-01-31");
    run(&feed, &state, &out, "2025-02-28");
    run(&feed, &state, &out, "2025-02-28");

    let kpi = out.join("kpi_summary");
    let mut partitions: Vec<String> = std::fs::read_dir(&kpi)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    partitions.sort();
    assert_eq!(partitions, ["as_of=2025-01-31", "as_of=2025-02-28"]);
    for p in &partitions {
        let files: Vec<_> = std::fs::read_dir(kpi.join(p))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            files,
            ["part-0.parquet"],
            "one object per partition, no leftovers"
        );
        let batch = common::read_parquet(&kpi.join(p).join("part-0.parquet"));
        assert_eq!(batch.num_rows(), 1, "one kpi_summary row per as-of date");
        let as_of = batch.column(batch.schema().index_of("as_of").unwrap());
        let shown = arrow::util::display::array_value_to_string(as_of, 0).unwrap();
        assert_eq!(format!("as_of={shown}"), *p);
    }
    let aging = common::read_parquet(&out.join("aging/latest.parquet"));
    assert!(aging.num_rows() > 0);
    let open_items = common::read_parquet(&out.join("open_items/latest.parquet"));
    let ids = open_items.column(0).as_string::<i32>();
    assert!(
        ids.value(0).starts_with("INV"),
        "stable column order: invoice_id first"
    );
}

/// A one-off run writes the KPI summary with what the models add (the forecast's backtested
/// WAPE), not the summary of before they ran.
#[test]
fn the_kpi_summary_of_a_one_off_run_has_the_forecasts_wape() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 20, 8, 3, 100_000);
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    run(&feed, &state, &out, "2025-08-31");
    let batch = common::read_parquet(&out.join("kpi_summary/as_of=2025-08-31/part-0.parquet"));
    let wape = batch.column(batch.schema().index_of("cash_forecast_wape").unwrap());
    assert!(
        !wape.is_null(0),
        "no WAPE in the first refresh's KPI summary"
    );
    let wape = wape
        .as_primitive::<arrow::datatypes::Float64Type>()
        .value(0);
    assert!(wape > 0.0 && wape < 1.0, "{wape}");
}
