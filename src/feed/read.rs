//! Reading one feed file: decode it, make its rows contract changes by the feed's format and
//! mapping, and validate them against the contract.

use arrow::array::RecordBatch;
use bytes::Bytes;

use super::contract::Entity;
use super::format::FeedReader;
use super::validate::{Violation, ViolationCode, decode_parquet, validate_batch};

/// Read and validate one feed file of source table `table`, read by `reader`.
pub fn validate_file(
    reader: &FeedReader,
    entity: Option<Entity>,
    table: &str,
    file: &str,
    bytes: Bytes,
) -> Result<RecordBatch, Violation> {
    let Some(entity) = entity else {
        return Err(Violation::new(
            ViolationCode::UnknownEntity,
            file,
            format!(
                "folder '{table}' is not an entity of the contract (expected one of: {})",
                Entity::ALL.map(|e| e.name()).join(", ")
            ),
        ));
    };
    let batch = decode_parquet(file, bytes)?;
    let translated = reader.to_contract(entity, table, file, batch)?;
    validate_batch(entity, file, &translated.batch).map_err(|v| translated.in_source_terms(v))
}
