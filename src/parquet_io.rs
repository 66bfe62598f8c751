//! Parquet in and out of object stores: the one place that picks writer settings.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

/// Encode batches as one Parquet file (zstd, 128k-row groups), kept in memory.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes, ParquetError> {
    encode_iter(schema, batches.iter().cloned())
}

/// Encode batches as they come, so that only one of them (and the encoded output) is in
/// memory at a time.
pub fn encode_iter(
    schema: &SchemaRef,
    batches: impl Iterator<Item = RecordBatch>,
) -> Result<Bytes, ParquetError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema.clone(), Some(props))?;
    for b in batches {
        writer.write(&b)?;
    }
    writer.close()?;
    Ok(Bytes::from(buf))
}

/// Errors of putting a Parquet file into a store.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot encode Parquet for '{path}': {source}")]
    Encode { path: String, source: ParquetError },
    #[error("cannot write '{path}': {source}")]
    Store {
        path: String,
        source: object_store::Error,
    },
}

/// Write batches as one Parquet object (a single PUT: readers see all of it or nothing).
/// Encoding runs on a blocking thread, so several puts can encode in parallel.
pub async fn put(
    store: &dyn ObjectStore,
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<u64, WriteError> {
    let (schema, owned) = (schema.clone(), batches.to_vec());
    let encoded = match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::spawn_blocking(move || encode(&schema, &owned))
            .await
            .unwrap_or_else(|e| Err(ParquetError::General(format!("encoder stopped: {e}")))),
        Err(_) => encode(&schema, &owned),
    };
    let bytes = encoded.map_err(|source| WriteError::Encode {
        path: path.to_string(),
        source,
    })?;
    let size = bytes.len() as u64;
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map_err(|source| WriteError::Store {
            path: path.to_string(),
            source,
        })?;
    Ok(size)
}
