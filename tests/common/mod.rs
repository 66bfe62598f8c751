//! Helpers shared by the integration tests: building change batches and feeds.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, Field, Schema};
use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::generate::simulate::Op;
use arstream::ingest::{CatchUpReport, IngestOptions, catch_up, open_state};
use arstream::state::State;

pub mod servers;
pub mod stores;
pub mod worked_example;

/// One invoice change: op, seq, id, amount in cents.
pub type InvoiceChange = (&'static str, i64, String, i64);

pub fn op(code: &str) -> Op {
    match code {
        "r" => Op::Read,
        "c" => Op::Create,
        "u" => Op::Update,
        _ => Op::Delete,
    }
}

/// A batch of invoice changes in the contract schema.
pub fn invoices(rows: &[InvoiceChange]) -> RecordBatch {
    let mut b = BatchBuilder::new(Entity::Invoices);
    for (code, seq, id, cents) in rows {
        let row = b.row(op(code), *seq, 1_767_225_600_000_000 + seq);
        if *code == "d" {
            row.text(Some(id));
            continue;
        }
        row.text(Some(id))
            .text(Some("C1"))
            .date(Some(20_500))
            .date(Some(20_530))
            .decimal(*cents as i128)
            .text(Some("USD"))
            .text(Some("posted"));
    }
    b.finish()
}

/// Replace (or add) a column, changing its type as needed.
pub fn with_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    let mut columns = batch.columns().to_vec();
    let field = Arc::new(Field::new(name, array.data_type().clone(), true));
    match schema.index_of(name) {
        Ok(i) => {
            fields[i] = field;
            columns[i] = array;
        }
        Err(_) => {
            fields.push(field);
            columns.push(array);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// Drop a column.
pub fn without_column(batch: &RecordBatch, name: &str) -> RecordBatch {
    let i = batch.schema().index_of(name).unwrap();
    let keep: Vec<usize> = (0..batch.num_columns()).filter(|&j| j != i).collect();
    batch.project(&keep).unwrap()
}

/// Write a batch as a Parquet file at `dir/rel`.
pub fn write(dir: &Path, rel: &str, batch: &RecordBatch) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = arstream::parquet_io::encode(&batch.schema(), std::slice::from_ref(batch)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Open the state at `state` and catch up with `feed` (both locations or URLs).
pub async fn ingest(feed: &str, state: &str, opts: &IngestOptions) -> (State, CatchUpReport) {
    let feed = arstream::store::open(feed, false).unwrap();
    let state_location = arstream::store::open(state, true).unwrap();
    let mut state = open_state(state_location, &feed, opts).await.unwrap();
    let report = catch_up(&mut state, &feed, opts, None).await.unwrap();
    (state, report)
}

/// The current invoices as sorted (id, amount in cents) pairs, read as the engine reads them.
pub fn invoice_rows(state: &mut State) -> Vec<(String, i128)> {
    let mut rows = Vec::new();
    let table = state.table(Entity::Invoices);
    for (batch, live) in table.current_rows() {
        let ids = batch
            .column_by_name("invoice_id")
            .unwrap()
            .as_string::<i32>();
        let amounts = batch
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        for i in live {
            rows.push((ids.value(i).to_string(), amounts.value(i)));
        }
    }
    rows.sort();
    rows
}

/// Whether an array has any null.
pub fn has_nulls(a: &dyn Array) -> bool {
    a.null_count() > 0
}

/// Write a generated feed (from 2025-01-01) into `out`.
pub fn generated_feed(out: &Path, customers: u32, months: usize, seed: u64, rows_per_file: usize) {
    let opts = arstream::generate::GenerateOptions {
        customers,
        months,
        seed,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        out: out.display().to_string(),
        rows_per_file,
    };
    arstream::generate::generate(&opts, None).unwrap();
}

/// Read a Parquet file as one batch.
pub fn read_parquet(path: &Path) -> RecordBatch {
    let bytes = bytes::Bytes::from(std::fs::read(path).unwrap());
    arstream::feed::validate::decode_parquet(&path.display().to_string(), bytes).unwrap()
}

/// Random numbers for kill schedules and random feeds (xorshift): small and repeatable.
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        Xorshift(seed | 1)
    }

    /// Seeded from `ARSTREAM_TEST_SEED`, else from the clock; the seed is printed so that a
    /// failing schedule can be repeated.
    pub fn from_env_or_clock() -> Self {
        let seed = std::env::var("ARSTREAM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("kill schedule seed {seed} (set ARSTREAM_TEST_SEED to repeat it)");
        Xorshift::new(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The Python of a virtual environment under the build's temporary folder with `package`
/// (one or more, space-separated) installed in it (made and installed on first use; `.ci/run` makes the same one), so that
/// the tests never install into the system's own Python.
pub fn python_with(package: &str, import: &str) -> std::path::PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv");
    let python = venv.join("bin/python3");
    let has = |python: &Path| {
        std::process::Command::new(python)
            .args(["-c", &format!("import {import}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(&python) {
        return python;
    }
    if !python.exists() {
        let made = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            made,
            "cannot make a virtual environment at {}",
            venv.display()
        );
    }
    let installed = std::process::Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(package.split_whitespace())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && has(&python),
        "{package} is needed for this test and could not be installed"
    );
    python
}

/// Every row of `batch` as one line of text, sorted: for comparing results whose row order
/// the engine does not fix.
pub fn sorted_rows(batch: &RecordBatch) -> Vec<String> {
    let options = arrow::util::display::FormatOptions::default().with_null("NULL");
    let formatters: Vec<_> = (batch.columns().iter())
        .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
        .collect();
    let mut rows: Vec<String> = (0..batch.num_rows())
        .map(|i| {
            let cells: Vec<String> = formatters.iter().map(|f| f.value(i).to_string()).collect();
            cells.join("|")
        })
        .collect();
    rows.sort();
    rows
}

/// Copy the files of `feed` for the months up to `last` (`month=YYYY-MM` in their path).
pub fn copy_months_up_to(feed: &Path, out: &Path, last: &str) {
    for entry in walk(feed) {
        let rel = entry.strip_prefix(feed).unwrap();
        let text = rel.to_string_lossy();
        let month = text.split("month=").nth(1).map(|m| &m[..7]);
        if month.is_none_or(|m| m <= last) {
            let to = out.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&entry, to).unwrap();
        }
    }
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// IBM's late-payment histories (`../shared/datasets/`) imported as a feed at `dir/feed`.
pub async fn ibm_feed(dir: &Path) -> std::path::PathBuf {
    let export = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/ibm-late-payments/accounts-receivable.csv");
    assert!(export.exists(), "{} is missing", export.display());
    let feed = dir.join("feed");
    std::fs::create_dir_all(&feed).unwrap();
    let location = arstream::store::open(feed.to_str().unwrap(), true).unwrap();
    arstream::import::late_payments::import(&export, &location, "USD")
        .await
        .unwrap();
    feed
}

/// Run `command` to its end, checking that it succeeded (its stderr is the failure message).
pub fn succeeded(command: &mut std::process::Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether two JSON values agree, numbers to a relative 1e-9 (sums run in another order).
pub fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| same_json(x, y)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_json(x, y))
        }
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => a == b,
        },
    }
}
