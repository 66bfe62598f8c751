//! Tables derived from one generation of the state, stored in its folder (`<kind>/`), so
//! that the next command on the same state reads them instead of computing them again: the
//! KPI ledger's tables (`ledger/`, a pass over every invoice and settlement) and the models'
//! (`models/`, see `crate::service::stored_models`).
//!
//! A cache, never the truth: a key names all the tables depend on (the checkpoint generation
//! and what its user adds: parameters, options, definitions), each file's checksum and rows
//! are checked when read, and a table missing or damaged is computed again. Writing the
//! tables of a generation deletes the older generations' of the same kind.

use arrow::array::RecordBatch;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::State;
use crate::store::Location;

/// Bumped when what is stored changes meaning: a folder of another format is never read.
const FORMAT: u32 = 1;

/// Where the tables of one kind, generation and key are kept.
#[derive(Debug, Clone)]
pub struct StoredTables {
    state: Location,
    /// `models`, `ledger`: the folder of every generation's tables of this kind.
    kind: &'static str,
    generation: u64,
    /// `<kind>/g<generation>-<key>`.
    folder: String,
    /// What the key was made of, written beside the tables for a person reading the folder.
    made_from: String,
}

/// The folder's table of contents, written after its tables.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    made_from: String,
    /// Numbers its writer keeps beside the tables (the model's training rows).
    #[serde(default)]
    facts: std::collections::BTreeMap<String, u64>,
    tables: Vec<StoredTable>,
    /// Results that are not tables (a report's figures), kept whole in the manifest.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    documents: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredTable {
    name: String,
    path: String,
    rows: usize,
    xxhash64: u64,
}

/// Tables read back, with the numbers the manifest keeps.
pub struct Stored {
    pub tables: Vec<(&'static str, RecordBatch)>,
    pub facts: std::collections::BTreeMap<String, u64>,
}

impl StoredTables {
    /// The store of the tables of `kind` over `state` as checkpointed, under the key `made_of`
    /// names (with the generation); `None` while the state holds changes not checkpointed
    /// yet, which no generation names.
    pub fn of(state: &State, kind: &'static str, made_of: &str) -> Option<StoredTables> {
        if state.has_pending() {
            return None;
        }
        let checkpoint = state.checkpoint();
        let made_from = format!(
            "format {FORMAT}; generation {} written {}; {made_of}",
            checkpoint.generation,
            checkpoint.created_at.to_rfc3339(),
        );
        let key = twox_hash::XxHash64::oneshot(0, made_from.as_bytes());
        Some(StoredTables {
            state: state.location().clone(),
            kind,
            generation: checkpoint.generation,
            folder: format!("{kind}/g{:010}-{key:016x}", checkpoint.generation),
            made_from,
        })
    }

    /// Tables `names` as stored, or `None` when one is not stored or fails its check (which
    /// is logged: it is then computed again).
    pub async fn read(&self, names: &[&'static str]) -> Option<Stored> {
        let manifest = self.manifest().await?;
        let mut tables = Vec::new();
        for &name in names {
            let Some(stored) = manifest.tables.iter().find(|t| t.name == name) else {
                tracing::debug!(folder = %self.folder, table = name, "table not stored");
                return None;
            };
            match self.read_table(stored).await {
                Ok(batch) => tables.push((name, batch)),
                Err(why) => {
                    tracing::warn!(
                        "the stored table {} is not used ({why}): it is computed again",
                        stored.path
                    );
                    return None;
                }
            }
        }
        Some(Stored {
            tables,
            facts: manifest.facts,
        })
    }

    /// Store `tables` and `facts` (beside those stored already under the same key), then
    /// delete the folders of older generations. A cache: a failure is logged, and costs only
    /// the time of computing them again.
    pub async fn write(&self, tables: &[(&str, &RecordBatch)], facts: &[(&str, u64)]) {
        self.store(tables, facts, None).await;
    }

    /// The document `name` as stored, if it is there and reads as a `T` (one that does not is
    /// logged, and made again).
    pub async fn read_document<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        let value = self.manifest().await?.documents.remove(name)?;
        serde_json::from_value(value)
            .inspect_err(|e| {
                tracing::warn!(
                    "the stored {name} in {} is not used ({e}): it is made again",
                    self.folder
                )
            })
            .ok()
    }

    /// Store `document` as `name`, as [`StoredTables::write`] stores tables.
    pub async fn write_document(&self, name: &str, document: &impl Serialize) {
        match serde_json::to_value(document) {
            Ok(value) => self.store(&[], &[], Some((name, value))).await,
            Err(e) => tracing::info!("the {name} could not be stored ({e})"),
        }
    }

    async fn store(
        &self,
        tables: &[(&str, &RecordBatch)],
        facts: &[(&str, u64)],
        document: Option<(&str, serde_json::Value)>,
    ) {
        match self.try_write(tables, facts, document).await {
            Ok(()) => tracing::debug!(folder = %self.folder, "stored"),
            Err(e) => tracing::info!(
                "the {} results could not be stored in {} ({e}): the next command computes them again",
                self.kind,
                self.folder
            ),
        }
        if let Err(e) = self.delete_older().await {
            tracing::info!("older {} results could not be deleted: {e}", self.kind);
        }
    }

    async fn try_write(
        &self,
        tables: &[(&str, &RecordBatch)],
        facts: &[(&str, u64)],
        document: Option<(&str, serde_json::Value)>,
    ) -> Result<(), String> {
        let mut manifest = self.manifest().await.unwrap_or_default();
        manifest.format = FORMAT;
        manifest.made_from = self.made_from.clone();
        for &(name, value) in facts {
            manifest.facts.insert(name.to_string(), value);
        }
        if let Some((name, value)) = document {
            manifest.documents.insert(name.to_string(), value);
        }
        for &(name, batch) in tables {
            let bytes = crate::parquet_io::encode(&batch.schema(), std::slice::from_ref(batch))
                .map_err(|e| format!("encoding {name}: {e}"))?;
            let path = format!("{}/{name}.parquet", self.folder);
            let xxhash64 = twox_hash::XxHash64::oneshot(0, &bytes);
            self.put(&path, bytes).await?;
            manifest.tables.retain(|t| t.name != name);
            manifest.tables.push(StoredTable {
                name: name.to_string(),
                path,
                rows: batch.num_rows(),
                xxhash64,
            });
        }
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        self.put(&self.manifest_path(), json.into()).await
    }

    async fn put(&self, path: &str, bytes: bytes::Bytes) -> Result<(), String> {
        let path = self.state.child(path);
        crate::store::put_durable(&self.state, &path, bytes, false)
            .await
            .map(|_| ())
            .map_err(|e| format!("writing {path}: {e}"))
    }

    fn manifest_path(&self) -> String {
        format!("{}/manifest.json", self.folder)
    }

    /// The folder's manifest, if there is one of this format and key.
    async fn manifest(&self) -> Option<Manifest> {
        let path = self.state.child(&self.manifest_path());
        let bytes = match super::read_bytes(&self.state, &path).await {
            Ok(bytes) => bytes,
            Err(super::StateError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return None,
            Err(e) => {
                tracing::debug!("{e}");
                return None;
            }
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .inspect_err(|e| {
                tracing::warn!(
                    "the stored tables' {path} is damaged ({e}): they are computed again"
                )
            })
            .ok()?;
        (manifest.format == FORMAT && manifest.made_from == self.made_from).then_some(manifest)
    }

    async fn read_table(&self, stored: &StoredTable) -> Result<RecordBatch, String> {
        let path = self.state.child(&stored.path);
        let bytes = (super::read_bytes(&self.state, &path).await).map_err(|e| e.to_string())?;
        let checksum = twox_hash::XxHash64::oneshot(0, &bytes);
        if checksum != stored.xxhash64 {
            return Err(format!(
                "its checksum is {checksum:016x} where the manifest records {:016x}",
                stored.xxhash64
            ));
        }
        let (schema, batches) = crate::feed::validate::decode_parquet_batches(&stored.path, bytes)
            .map_err(|v| v.detail)?;
        let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
        if batch.num_rows() != stored.rows {
            return Err(format!(
                "it holds {} rows where the manifest records {}",
                batch.num_rows(),
                stored.rows
            ));
        }
        Ok(batch)
    }

    /// Delete the folders of this kind of generations older than this one: no command loads
    /// those generations any more once a newer checkpoint is written.
    async fn delete_older(&self) -> Result<(), super::StateError> {
        let listed = super::checkpoint::list_folder(&self.state, self.kind).await?;
        for object in listed {
            let generation = super::checkpoint::folder_generation(&object.location);
            if generation.is_some_and(|g| g < self.generation) {
                match self.state.store.delete(&object.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(source) => {
                        return Err(super::StateError::Store {
                            what: format!("delete '{}'", object.location),
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
