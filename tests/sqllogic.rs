//! Runs the `.slt` files of `tests/sql/`: each file fills the (empty) entity tables with a
//! small feed through `INSERT`, sets the KPI parameters, and pins what the views answer.
//!
//! Besides SQL the files may use one statement of ours:
//! `ARSTREAM PARAMS as_of=YYYY-MM-DD [window_days=N] [currency=CCY] [grace_days=N]`, which sets
//! `params` and makes the views again (as `--as-of`, `--window`, `--currency` do).
//!
//! The rows are inserted into the tables directly, not applied as changes, so these files run
//! the plain views (the definitions); the ledger's views are held to them by
//! `tests/ledger_equivalence.rs`.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::sync::Arc;

use arstream::engine::Engine;
use arstream::engine::params::KpiParams;
use arstream::engine::tables::replace_table;
use arstream::engine::views::ViewSet;
use arstream::feed::contract::Entity;
use arstream::state::State;
use datafusion::datasource::MemTable;
use sqllogictest::{DBOutput, DefaultColumnType};

struct Db {
    engine: Engine,
    params: KpiParams,
}

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DbError {}

impl Db {
    async fn new() -> Db {
        let location =
            arstream::store::open(&format!("memory://slt-{}/", std::process::id()), true).unwrap();
        let mut state = State::open(location).await.unwrap();
        let params = KpiParams::new(chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap());
        let queries = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries");
        let engine = Engine::new()
            .with_queries(Some(&queries), ViewSet::Plain)
            .unwrap();
        engine.refresh(&mut state, &params).await.unwrap();
        // The entity tables are views over the state's segments; here they are plain empty
        // tables the files fill with INSERT.
        for entity in Entity::ALL {
            let schema = state.table(entity).table_schema();
            let table = MemTable::try_new(schema, vec![vec![]]).unwrap();
            replace_table(&engine.ctx, entity.name(), Arc::new(table)).unwrap();
        }
        engine.set_params(&params).await.unwrap();
        Db { engine, params }
    }

    async fn set_params(&mut self, words: &str) -> Result<(), DbError> {
        for word in words.split_whitespace() {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| DbError(format!("expected key=value, got {word}")))?;
            let bad = |e: &dyn std::fmt::Display| DbError(format!("{key}: {e}"));
            match key {
                "as_of" => self.params.as_of = value.parse().map_err(|e| bad(&e))?,
                "window_days" => self.params.window_days = value.parse().map_err(|e| bad(&e))?,
                "grace_days" => self.params.grace_days = value.parse().map_err(|e| bad(&e))?,
                "currency" => self.params.currency = value.to_string(),
                other => return Err(DbError(format!("unknown parameter {other}"))),
            }
        }
        self.engine
            .set_params(&self.params)
            .await
            .map_err(|e| DbError(e.to_string()))
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt64 => {
            DefaultColumnType::Integer
        }
        DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..b.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    out
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        if let Some(words) = sql.trim().strip_prefix("ARSTREAM PARAMS") {
            self.set_params(words).await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        let (schema, batches) = self
            .engine
            .query_with_schema(sql)
            .await
            .map_err(|e| DbError(e.to_string()))?;
        let is_statement = schema.fields().len() == 1
            && schema.field(0).name() == "count"
            && sql.trim_start().to_uppercase().starts_with("INSERT");
        if is_statement || schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types: schema
                .fields()
                .iter()
                .map(|f| column_type(f.data_type()))
                .collect(),
            rows: rows(&batches),
        })
    }

    async fn shutdown(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async { Ok::<_, DbError>(Db::new().await) });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
        println!("ran {}", file.display());
    }
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
