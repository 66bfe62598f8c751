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
fn outputs_are_a_file_per_as_of_date_replaced_whole_and_read_by_other_tools() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 20, 3, 3, 100_000);
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    run(&feed, &state, &out, "2025-01-31");
    run(&feed, &state, &out, "2025-02-28");
    run(&feed, &state, &out, "2025-02-28");

    let kpi = out.join("kpi_summary");
    let mut files: Vec<String> = std::fs::read_dir(&kpi)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // One object per as-of date, no leftovers (a rewrite replaces the file whole).
    assert_eq!(files, ["2025-01-31.parquet", "2025-02-28.parquet"]);
    for f in &files {
        let batch = common::read_parquet(&kpi.join(f));
        assert_eq!(batch.num_rows(), 1, "one kpi_summary row per as-of date");
        let as_of = batch.column(batch.schema().index_of("as_of").unwrap());
        let shown = arrow::util::display::array_value_to_string(as_of, 0).unwrap();
        assert_eq!(format!("{shown}.parquet"), *f);
    }
    // The folder is the KPI history for pyarrow's dataset API and pandas, with their defaults
    // (Hive folders `as_of=…` beside an `as_of` column made them refuse it).
    let python = common::python_with("pandas pyarrow", "pandas, pyarrow");
    let read = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import sys, pandas, pyarrow.dataset as ds\n\
             t = ds.dataset(sys.argv[1]).to_table()\n\
             df = pandas.read_parquet(sys.argv[1]).sort_values('as_of')\n\
             print(t.num_rows, t.schema.field('as_of').type, t.schema.field('total_ar').type)\n\
             print(' '.join(str(d) for d in df['as_of']))",
        )
        .arg(&kpi)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(
        said.trim(),
        "2 date32[day] decimal128(18, 2)\n2025-01-31 2025-02-28",
        "{said}"
    );
    let aging = common::read_parquet(&out.join("aging/latest.parquet"));
    let in_aging: i64 = {
        let invoices = aging.column(aging.schema().index_of("invoices").unwrap());
        let invoices = arrow::compute::cast(invoices, &arrow::datatypes::DataType::Int64).unwrap();
        (invoices
            .as_primitive::<arrow::datatypes::Int64Type>()
            .iter())
        .map(|n| n.unwrap())
        .sum()
    };
    let open_items = common::read_parquet(&out.join("open_items/latest.parquet"));
    let ids = open_items.column(0).as_string::<i32>();
    assert!(
        ids.value(0).starts_with("INV"),
        "stable column order: invoice_id first"
    );
    // open_items is the open invoices only (paid-off ones were in it, at 0): as many as
    // aging counts, none at 0.
    let open = open_items.column(open_items.schema().index_of("open_amount").unwrap());
    let open = arrow::compute::cast(open, &arrow::datatypes::DataType::Float64).unwrap();
    let open = open.as_primitive::<arrow::datatypes::Float64Type>();
    assert!(open.iter().all(|v| v.unwrap() != 0.0));
    assert_eq!(open_items.num_rows() as i64, in_aging);
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
    let batch = common::read_parquet(&out.join("kpi_summary/2025-08-31.parquet"));
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
