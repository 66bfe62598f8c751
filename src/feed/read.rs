//! Reading one feed file: decode it, make its rows contract changes by the feed's format and
//! mapping, and validate them against the contract.

use arrow::array::RecordBatch;
use bytes::Bytes;

use super::contract::Entity;
use super::format::FeedReader;
use super::validate::{
    Violation, ViolationCode, check_no_action_ids, decode_parquet_with_views, validate_batch,
};

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
    let (schema, stored) = decode_parquet_with_views(file, bytes, |c| reader.only_parsed(c))?;
    if stored.is_empty() {
        let translated = reader.to_contract(entity, table, file, RecordBatch::new_empty(schema))?;
        return validate_batch(entity, file, &translated.batch)
            .map_err(|v| translated.in_source_terms(v));
    }
    // Each batch as stored is made contract changes before they are put together, so that a
    // source's bulky columns (DMS's sequence and commit time as text) are never copied whole.
    let mut parts = Vec::with_capacity(stored.len());
    let mut first_row = 0;
    for batch in stored {
        let rows = batch.num_rows();
        let part = reader
            .to_contract(entity, table, file, batch)
            .map_err(|mut v| {
                v.row = v.row.map(|row| row + first_row);
                v
            })?;
        parts.push(part);
        first_row += rows;
    }
    let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.batch).collect();
    let batch = arrow::compute::concat_batches(&parts[0].batch.schema(), batches)
        .map_err(|e| Violation::new(ViolationCode::WrongType, file, e.to_string()))?;
    let batch = validate_batch(entity, file, &batch).map_err(|v| parts[0].in_source_terms(v))?;
    if !super::sources::is_action(file) {
        check_no_action_ids(entity, file, &batch)?;
    }
    Ok(batch)
}
