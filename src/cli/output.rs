//! Printing query results as a table, CSV, JSON or Parquet.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people
    Table,
    /// Comma-separated with a header row
    Csv,
    /// A JSON array of objects
    Json,
    /// A Parquet file written to stdout (redirect it to a file)
    Parquet,
}

/// Write `batches` to stdout in `format`.
pub fn print(format: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(out, "(no rows; columns: {})", names.join(", "))?;
            } else {
                let table = arrow::util::pretty::pretty_format_batches(batches)?;
                writeln!(out, "{table}")?;
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
            }
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                writer.write(b)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]")?;
            }
            writeln!(out)?;
        }
        Format::Parquet => {
            if stdout.is_terminal() {
                bail!(
                    "--format parquet writes binary data; redirect it to a file (> result.parquet)"
                );
            }
            let bytes =
                crate::parquet_io::encode(schema, batches).context("cannot encode Parquet")?;
            out.write_all(&bytes)?;
        }
    }
    out.flush()?;
    Ok(())
}
