//! Snapshot files as Arrow IPC: written as the tables hold them and read back without
//! decoding, the batches pointing into the file's bytes. A 10 M-invoice state loads in the
//! time it takes to read its files, where Parquet spent seconds decompressing and decoding.

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::convert::fb_to_schema;
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use arrow::ipc::root_as_footer;
use arrow::ipc::writer::FileWriter;

/// The file name extension of a snapshot written in this format.
pub const EXTENSION: &str = "arrow";

/// Encode batches of `schema` as one IPC file, kept in memory.
pub fn encode(
    schema: &SchemaRef,
    batches: impl Iterator<Item = RecordBatch>,
) -> Result<bytes::Bytes, ArrowError> {
    let mut bytes = Vec::new();
    write(&mut bytes, schema, batches)?;
    Ok(bytes::Bytes::from(bytes))
}

/// Write batches of `schema` as one IPC file into `out`, as they come.
pub fn write(
    out: impl std::io::Write,
    schema: &SchemaRef,
    batches: impl Iterator<Item = RecordBatch>,
) -> Result<(), ArrowError> {
    let mut writer = FileWriter::try_new(out, schema)?;
    for batch in batches {
        writer.write(&batch)?;
    }
    writer.finish()
}

/// A writer that hashes (xxHash64, seed 0) and counts what goes through it: a file's checksum
/// made while it is written.
pub struct Hashing<W> {
    inner: W,
    hasher: twox_hash::XxHash64,
}

impl<W: std::io::Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: twox_hash::XxHash64::with_seed(0),
        }
    }

    pub fn checksum(&self) -> u64 {
        std::hash::Hasher::finish(&self.hasher)
    }
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        std::hash::Hasher::write(&mut self.hasher, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The batches of an IPC file held in `bytes`, sharing its memory (no copy of the columns).
pub fn decode(bytes: bytes::Bytes) -> Result<Vec<RecordBatch>, ArrowError> {
    let buffer = Buffer::from(bytes);
    let short = || ArrowError::IpcError("the file is too short for an Arrow IPC file".into());
    let trailer_start = buffer.len().checked_sub(10).ok_or_else(short)?;
    let trailer: [u8; 10] = buffer[trailer_start..].try_into().map_err(|_| short())?;
    let footer_start = trailer_start
        .checked_sub(read_footer_length(trailer)?)
        .ok_or_else(short)?;
    let footer = root_as_footer(&buffer[footer_start..trailer_start])
        .map_err(|e| ArrowError::IpcError(format!("unreadable footer: {e}")))?;
    let schema = footer
        .schema()
        .ok_or_else(|| ArrowError::IpcError("the footer has no schema".into()))?;
    let mut decoder = FileDecoder::new(std::sync::Arc::new(fb_to_schema(schema)), footer.version());
    let block_bytes = |block: &arrow::ipc::Block| {
        let length = block.bodyLength() as usize + block.metaDataLength() as usize;
        let offset = block.offset() as usize;
        (offset.checked_add(length))
            .filter(|end| *end <= footer_start)
            .map(|_| buffer.slice_with_length(offset, length))
            .ok_or_else(|| ArrowError::IpcError("a block lies past the end of the file".into()))
    };
    for block in footer.dictionaries().iter().flatten() {
        decoder.read_dictionary(block, &block_bytes(block)?)?;
    }
    let mut batches = Vec::new();
    for block in footer.recordBatches().iter().flatten() {
        if let Some(batch) = decoder.read_record_batch(block, &block_bytes(block)?)? {
            batches.push(batch);
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn batches_come_back_as_written() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = |ids: Vec<&str>, ns: Vec<Option<i64>>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(ids)),
                    Arc::new(Int64Array::from(ns)),
                ],
            )
            .unwrap()
        };
        let written = vec![
            batch(vec!["a", "b"], vec![Some(1), None]),
            batch(vec!["c"], vec![Some(3)]),
        ];
        let bytes = encode(&schema, written.clone().into_iter()).unwrap();
        assert_eq!(decode(bytes.clone()).unwrap(), written);
        let mut hashing = Hashing::new(Vec::new());
        write(&mut hashing, &schema, written.clone().into_iter()).unwrap();
        assert_eq!(hashing.inner, bytes);
        assert_eq!(hashing.checksum(), twox_hash::XxHash64::oneshot(0, &bytes));
        let cut = bytes.slice(..bytes.len() - 20);
        assert!(decode(cut).is_err());
        assert!(decode(bytes::Bytes::from_static(b"short")).is_err());
    }
}
