//! Feed formats: the layouts ERP pipelines write change files in, each read as the contract.
//!
//! A format answers two questions, and nothing after them differs from the native feed
//! (validation, quarantine, exactly once, the state): which entity a listed file holds
//! ([`FeedReader::locate`]), and what its rows are as contract changes
//! ([`FeedReader::to_contract`]: its technical columns become `_op`, `_seq` and `_ts`, its
//! columns the contract's, by name or by the mapping file). Errors are told in the source's
//! terms: a violation on a mapped column names the source column it came from.

pub mod debezium;
pub mod dms;
pub mod mapping;
pub mod sap;
mod translated;

use std::sync::Arc;

use arrow::array::RecordBatch;

use super::contract::Entity;
use super::validate::Violation;
pub use mapping::{Mapping, MappingError};
pub use translated::Translated;

/// Which layout the feed's files are in (`--feed-format`, `[feed] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    /// arstream's own contract: `<entity>/**/*.parquet` with `_op`, `_seq`, `_ts`.
    #[default]
    Arstream,
    /// AWS DMS full load and ongoing replication to S3 as Parquet:
    /// `<schema>/<table>/LOAD*.parquet`, then change files (in dated folders) with `Op`.
    Dms,
    /// SAP replication flows to an object store: `<TABLE>/initial/` (once `_SUCCESS` is
    /// there), then `<TABLE>/delta/`, with `__operation_type`.
    Sap,
    /// Debezium change events flattened by `ExtractNewRecordState`, written by Kafka
    /// Connect's S3 sink: `topics/<server>.<schema>.<table>/partition=N/*.parquet`.
    Debezium,
}

impl FeedFormat {
    pub const ALL: [FeedFormat; 4] = [
        FeedFormat::Arstream,
        FeedFormat::Dms,
        FeedFormat::Sap,
        FeedFormat::Debezium,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FeedFormat::Arstream => "arstream",
            FeedFormat::Dms => "dms",
            FeedFormat::Sap => "sap",
            FeedFormat::Debezium => "debezium",
        }
    }
}

impl std::str::FromStr for FeedFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        (FeedFormat::ALL.into_iter())
            .find(|f| f.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let known: Vec<&str> = FeedFormat::ALL.iter().map(|f| f.name()).collect();
                format!("unknown feed format '{s}' (known: {})", known.join(", "))
            })
    }
}

impl std::fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a listed file belongs: the source table it holds and the entity that table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The source's name for the table (the entity folder, the Debezium topic, …).
    pub table: String,
    /// `None`: a table the contract does not know.
    pub entity: Option<Entity>,
}

/// Reads a feed in one format, with an optional mapping file.
#[derive(Debug, Clone, Default)]
pub struct FeedReader {
    pub format: FeedFormat,
    mapping: Option<Arc<Mapping>>,
}

impl FeedReader {
    pub fn new(format: FeedFormat, mapping: Option<Mapping>) -> FeedReader {
        FeedReader {
            format,
            mapping: mapping.map(Arc::new),
        }
    }

    /// Whether files are read as they are (the contract's own layout, no mapping).
    pub fn is_native(&self) -> bool {
        self.format == FeedFormat::Arstream && self.mapping.is_none()
    }

    /// The table and entity of a file at `relative` (to the feed root), or `None` when the
    /// format does not read it (another table's topic, a file that is not data).
    pub fn locate(&self, relative: &str) -> Option<Located> {
        let table = match self.format {
            FeedFormat::Arstream => relative.split('/').next()?.to_string(),
            FeedFormat::Dms => dms::table_of(relative)?,
            FeedFormat::Sap => sap::table_of(relative)?,
            FeedFormat::Debezium => debezium::topic_of(relative)?,
        };
        let entity = match &self.mapping {
            Some(m) if m.knows(&table) => m.entity_of(&table),
            _ => self.entity_named_by(&table),
        };
        if self.format != FeedFormat::Arstream && entity.is_none() {
            // A change stream usually carries every table of a database: the ones no entity
            // is made of are not arstream's to quarantine.
            return None;
        }
        Some(Located { table, entity })
    }

    /// The entity a table is named like: the folder name itself, or for another format the
    /// table's name (a Debezium topic's last part: `erp.public.Invoices` → `invoices`) in
    /// any case.
    fn entity_named_by(&self, table: &str) -> Option<Entity> {
        match self.format {
            FeedFormat::Arstream => Entity::from_name(table),
            FeedFormat::Dms | FeedFormat::Sap | FeedFormat::Debezium => {
                let last = table.rsplit('.').next().unwrap_or(table);
                Entity::from_name(&last.to_ascii_lowercase())
            }
        }
    }

    /// The folder whose `_SUCCESS` file must be listed before the file at `relative` is read
    /// (a SAP initial load is complete only then), if there is one.
    pub fn needs_marker(&self, relative: &str) -> Option<String> {
        match self.format {
            FeedFormat::Sap => sap::needs_marker(relative),
            _ => None,
        }
    }

    /// Whether the column `name` of a source file is one this reader only parses (a format's
    /// change columns written as text), so that it can be decoded as string views, never
    /// copied. Only DMS's are: its sequence and commit time are most of a file's text.
    pub fn only_parsed(&self, name: &str) -> bool {
        let technical = self.mapping.as_ref().map(|m| &m.changes);
        self.format == FeedFormat::Dms && dms::is_change_column(name, technical)
    }

    /// A decoded source file of `table` (holding `entity`) as contract changes, ready for
    /// validation. Native files are returned as they are.
    pub fn to_contract(
        &self,
        entity: Entity,
        table: &str,
        file: &str,
        batch: RecordBatch,
    ) -> Result<Translated, Violation> {
        let columns = self.mapping.as_ref().and_then(|m| m.columns_of(table));
        let technical = self.mapping.as_ref().map(|m| &m.changes);
        match self.format {
            FeedFormat::Arstream if columns.is_none() => Ok(Translated {
                batch,
                origins: Vec::new(),
            }),
            FeedFormat::Arstream => renamed(entity, file, &batch, columns),
            FeedFormat::Dms => dms::to_contract(entity, file, &batch, columns, technical),
            FeedFormat::Sap => sap::to_contract(entity, file, &batch, columns, technical),
            FeedFormat::Debezium => debezium::to_contract(entity, file, &batch, columns, technical),
        }
    }
}

/// A file in the contract's layout whose columns the mapping renames: the change columns
/// are taken as they are, the others mapped.
fn renamed(
    entity: Entity,
    file: &str,
    batch: &RecordBatch,
    columns: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<Translated, Violation> {
    let (data, origins) = mapping::contract_columns(entity, file, batch, columns, &[])?;
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for name in [
        super::contract::OP,
        super::contract::SEQ,
        super::contract::TS,
    ] {
        if let Ok(i) = schema.index_of(name) {
            fields.push(schema.fields()[i].clone());
            arrays.push(batch.column(i).clone());
        }
    }
    for (field, array) in data {
        fields.push(field);
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), arrays)
        .map_err(|e| {
            Violation::new(
                super::validate::ViolationCode::WrongType,
                file,
                e.to_string(),
            )
        })?;
    Ok(Translated { batch, origins })
}
