//! The ingest benchmark's feed as AWS DMS writes it to S3, for timing the `dms` format beside
//! the native one on the same changes.
//!
//! Each native file becomes one DMS change file of the same rows, under
//! `dbo/<table>/<YYYY>/<MM>/<DD>/` (`DatePartitionEnabled`, the day its month starts): `Op`
//! first (`I` for a create or a snapshot read, `U`, `D`), the commit time as DMS's text
//! column `ar_timestamp` (`yyyy-MM-dd HH:mm:ss.SSSSSS`), the order as the 35-digit text
//! `ar_change_seq` (the native `_seq`, zero-padded), then the row's columns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The DMS copy of `native` under `data`, made when missing (a `DONE` file marks it whole).
pub fn feed(native: &Path, data: &Path) -> anyhow::Result<PathBuf> {
    let name = native.file_name().context("feed folder name")?;
    let dms = data.join(format!("{}-dms", name.to_string_lossy()));
    if dms.join("DONE").exists() {
        println!("reusing {}", dms.display());
        return Ok(dms);
    }
    let _ = std::fs::remove_dir_all(&dms);
    let mut files = Vec::new();
    parquet_files(native, &mut files)?;
    files.sort();
    for file in &files {
        let relative = file
            .strip_prefix(native)?
            .to_string_lossy()
            .replace('\\', "/");
        let (table, rest) = relative.split_once('/').context("entity folder")?;
        let month = rest
            .split('/')
            .find_map(|p| p.strip_prefix("month="))
            .with_context(|| format!("no month= folder in {relative}"))?;
        let (year, month) = month.split_once('-').context("month=YYYY-MM")?;
        // The file's name keeps what set it apart (backfill, redelivery, part number).
        let stem = rest.replace('/', "-").replace("month=", "");
        let target = dms
            .join("dbo")
            .join(table)
            .join(year)
            .join(month)
            .join("01")
            .join(stem);
        std::fs::create_dir_all(target.parent().unwrap())?;
        let input = std::fs::File::open(file)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(input)?.build()?;
        let mut batches = Vec::new();
        for batch in reader {
            batches.push(to_dms(&batch?).with_context(|| relative.clone())?);
        }
        let Some(first) = batches.first() else {
            continue;
        };
        let bytes = arstream::parquet_io::encode(&first.schema(), &batches)?;
        std::fs::write(&target, bytes)?;
    }
    std::fs::write(dms.join("DONE"), format!("{} files\n", files.len()))?;
    Ok(dms)
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            parquet_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

/// One native batch as DMS writes the same changes.
fn to_dms(batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .with_context(|| format!("no {name}"))
    };
    let ops: StringArray = (column("_op")?.as_string::<i32>().iter())
        .map(|op| {
            op.map(|op| match op {
                "u" => "U",
                "d" => "D",
                _ => "I",
            })
        })
        .collect();
    let seqs: StringArray = (column("_seq")?.as_primitive::<Int64Type>().iter())
        .map(|s| s.map(|s| format!("{s:035}")))
        .collect();
    let times: StringArray = (column("_ts")?
        .as_primitive::<TimestampMicrosecondType>()
        .iter())
    .map(|t| {
        t.and_then(chrono::DateTime::from_timestamp_micros)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
    })
    .collect();
    let mut fields = vec![
        Field::new("Op", DataType::Utf8, true),
        Field::new("ar_timestamp", DataType::Utf8, true),
        Field::new("ar_change_seq", DataType::Utf8, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(ops), Arc::new(times), Arc::new(seqs)];
    let schema = batch.schema();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        if !field.name().starts_with('_') {
            fields.push(field.as_ref().clone());
            columns.push(array.clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
