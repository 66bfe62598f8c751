//! The mapping file (`--feed-map FILE`, `[feed] map`): which source table is which entity,
//! which source column is which contract column (or an SQL expression over the source row),
//! and what the format's technical columns are called. Without one, a table named like an
//! entity is that entity and columns named like the contract's (in any case) are taken.
//!
//! ```toml
//! [tables.BSID]                    # a source table (or topic), any case
//! entity = "invoices"
//! [tables.BSID.columns]            # contract column = source column, or an SQL expression
//! invoice_id = "BELNR"
//! customer_id = "KUNNR"
//! due_date = "NETDT"
//! amount = "CAST(WRBTR AS DECIMAL(18, 2))"
//!
//! [changes]                        # the technical columns, when not the format's defaults
//! seq = "__lsn"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, FieldRef};
use datafusion::common::DFSchema;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::Deserialize;

use crate::feed::contract::{self, Entity};
use crate::feed::validate::{Violation, ViolationCode};

/// A mapping file, checked against the contract when loaded.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    tables: BTreeMap<String, TableMap>,
    /// The format's technical columns, when named otherwise than its defaults.
    #[serde(default)]
    pub changes: ChangeColumns,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableMap {
    entity: String,
    #[serde(default)]
    columns: BTreeMap<String, String>,
}

/// The names of a format's technical columns.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeColumns {
    /// The change kind.
    pub op: Option<String>,
    /// The order of changes (higher is later).
    pub seq: Option<String>,
    /// The commit time.
    pub ts: Option<String>,
    /// The delete flag of a rewritten tombstone (Debezium).
    pub deleted: Option<String>,
}

/// Why a mapping file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file '{path}': {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("mapping file '{path}': {detail}")]
    Invalid { path: String, detail: String },
}

impl Mapping {
    /// Read and check a mapping file: every entity and contract column it names exists.
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: shown.clone(),
            source,
        })?;
        Mapping::parse(&text).map_err(|detail| MappingError::Invalid {
            path: shown,
            detail,
        })
    }

    /// A mapping from its TOML text; the error is one sentence naming the table or column.
    pub fn parse(text: &str) -> Result<Mapping, String> {
        let mapping: Mapping = toml::from_str(text).map_err(|e| e.message().to_string())?;
        for (table, map) in &mapping.tables {
            let Some(entity) = Entity::from_name(&map.entity) else {
                let known: Vec<&str> = Entity::ALL.iter().map(|e| e.name()).collect();
                return Err(format!(
                    "table '{table}' maps to '{}', which is not an entity (one of: {})",
                    map.entity,
                    known.join(", ")
                ));
            };
            for column in map.columns.keys() {
                if !entity.columns().iter().any(|c| c.name == column) {
                    let known: Vec<&str> = entity.columns().iter().map(|c| c.name).collect();
                    return Err(format!(
                        "table '{table}': '{column}' is not a column of {} (one of: {})",
                        entity.name(),
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(mapping)
    }

    /// The mapped table of a source name: the name itself or, for a dotted topic, its last
    /// part, in any case.
    fn table(&self, name: &str) -> Option<&TableMap> {
        let last = name.rsplit('.').next().unwrap_or(name);
        (self.tables.iter())
            .find(|(t, _)| t.eq_ignore_ascii_case(name) || t.eq_ignore_ascii_case(last))
            .map(|(_, map)| map)
    }

    pub fn knows(&self, table: &str) -> bool {
        self.table(table).is_some()
    }

    pub fn entity_of(&self, table: &str) -> Option<Entity> {
        self.table(table).and_then(|m| Entity::from_name(&m.entity))
    }

    pub fn columns_of(&self, table: &str) -> Option<&BTreeMap<String, String>> {
        self.table(table).map(|m| &m.columns)
    }
}

/// Columns of a batch being made, with their fields.
pub type Columns = Vec<(FieldRef, ArrayRef)>;
/// `(contract column, source column or expression)` for each column read under another name.
pub type Origins = Vec<(String, String)>;

/// A column of a source batch by name, in any case.
pub fn find_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<(&'a FieldRef, &'a ArrayRef)> {
    let schema = batch.schema_ref();
    let i = (schema.fields().iter())
        .position(|f| f.name() == name)
        .or_else(|| (schema.fields().iter()).position(|f| f.name().eq_ignore_ascii_case(name)))?;
    Some((&schema.fields()[i], batch.column(i)))
}

/// The entity's contract columns made from a source batch, each from the mapping's column or
/// expression, else from the source column named like it (any case); then the source's other
/// columns, kept as they are, except `technical` ones. Returns the columns with, for each
/// contract column read under another name, where it came from.
pub fn contract_columns(
    entity: Entity,
    file: &str,
    batch: &RecordBatch,
    mapped: Option<&BTreeMap<String, String>>,
    technical: &[&str],
) -> Result<(Columns, Origins), Violation> {
    let mut out: Columns = Vec::new();
    let mut origins = Vec::new();
    let mut used: Vec<String> = Vec::new();
    for column in entity.columns() {
        let name = column.name;
        let source = mapped.and_then(|m| m.get(name));
        let found = match source {
            Some(expr) => match find_column(batch, expr) {
                Some((field, array)) => Some((field.name().clone(), array.clone())),
                None => Some((expr.clone(), evaluate(file, batch, name, expr)?)),
            },
            None => find_column(batch, name).map(|(f, a)| (f.name().clone(), a.clone())),
        };
        let Some((source, array)) = found else {
            continue;
        };
        if source != name {
            origins.push((name.to_string(), source.clone()));
        }
        used.push(source);
        let field = Field::new(name, array.data_type().clone(), true);
        out.push((Arc::new(field), array));
    }
    for (field, array) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        let name = field.name();
        let taken = used.iter().any(|u| u == name)
            || technical.iter().any(|t| t.eq_ignore_ascii_case(name))
            || out.iter().any(|(f, _)| f.name() == name)
            || contract::is_change_column(name);
        if !taken {
            out.push((field.clone(), array.clone()));
        }
    }
    Ok((out, origins))
}

/// Evaluate a mapping's SQL expression over a source batch (identifiers as written).
fn evaluate(
    file: &str,
    batch: &RecordBatch,
    column: &str,
    sql: &str,
) -> Result<ArrayRef, Violation> {
    static CONTEXT: OnceLock<SessionContext> = OnceLock::new();
    let ctx = CONTEXT.get_or_init(|| {
        let mut config = SessionConfig::new();
        config.options_mut().sql_parser.enable_ident_normalization = false;
        SessionContext::new_with_config(config)
    });
    let wrong =
        |detail: String| Violation::new(ViolationCode::WrongType, file, detail).at(None, column);
    let schema = DFSchema::try_from(batch.schema_ref().as_ref().clone())
        .map_err(|e| wrong(format!("cannot read the file's columns: {e}")))?;
    let is_name = sql.chars().all(|c| c.is_alphanumeric() || c == '_');
    if is_name {
        let columns: Vec<&str> = (batch.schema_ref().fields().iter())
            .map(|f| f.name().as_str())
            .collect();
        return Err(wrong(format!(
            "the mapping's '{sql}' is not a column of this file (its columns: {})",
            columns.join(", ")
        )));
    }
    let mapped = |e: &dyn std::fmt::Display| {
        let why = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        wrong(format!(
            "the mapping's '{sql}' is not an SQL expression over this file's columns ({why})"
        ))
    };
    let expr = ctx.parse_sql_expr(sql, &schema).map_err(|e| mapped(&e))?;
    let physical = ctx
        .create_physical_expr(expr, &schema)
        .map_err(|e| mapped(&e))?;
    let value = physical.evaluate(batch).map_err(|e| mapped(&e))?;
    value.into_array(batch.num_rows()).map_err(|e| mapped(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_naming_what_does_not_exist_says_which_table_and_column() {
        let err = Mapping::parse("[tables.BSID]\nentity = \"invoice\"\n").unwrap_err();
        assert!(
            err.starts_with("table 'BSID' maps to 'invoice', which is not an entity"),
            "{err}"
        );
        let err =
            Mapping::parse("[tables.BSID]\nentity = \"invoices\"\ncolumns = { due = \"NETDT\" }\n")
                .unwrap_err();
        assert!(
            err.starts_with("table 'BSID': 'due' is not a column of invoices"),
            "{err}"
        );
    }

    #[test]
    fn the_mappings_shipped_in_docs_name_only_entities_and_columns_that_exist() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mappings");
        let mut loaded = 0;
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            let mapping = Mapping::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!mapping.tables.is_empty(), "{}", path.display());
            loaded += 1;
        }
        assert_eq!(loaded, 3);
    }

    #[test]
    fn a_table_is_found_by_its_name_or_a_topic_s_last_part_in_any_case() {
        let m = Mapping::parse("[tables.ar_invoice]\nentity = \"invoices\"\n").unwrap();
        assert_eq!(m.entity_of("AR_INVOICE"), Some(Entity::Invoices));
        assert_eq!(m.entity_of("erp.public.ar_invoice"), Some(Entity::Invoices));
        assert_eq!(m.entity_of("erp.public.ar_payment"), None);
    }
}
