//! The checkpoint: what has been applied, what was quarantined, and where the snapshot is. A
//! checkpoint is one JSON object written once under a new generation number
//! (`checkpoints/<generation>.json`), after every file it names has been written; a crash
//! before that write leaves the previous generation in force, so a restart re-applies exactly
//! the files that the lost generation would have recorded.
//!
//! The feed files themselves are the log of changes (the contract makes them immutable): the
//! state is the snapshot plus the applied files of later generations, replayed from the feed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::StateError;
use crate::feed::validate::ViolationCode;
use crate::store::Location;

/// Version of the checkpoint format; bumped on incompatible changes.
pub const FORMAT: u32 = 2;

/// A feed file whose changes were applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppliedFile {
    pub path: String,
    pub size: u64,
    pub entity: String,
    pub rows: usize,
    pub generation: u64,
    /// Its changes that changed nothing: older than (or the same as) what the state held for
    /// their key, by `_seq`. All of them: the file was, in effect, not applied.
    #[serde(default)]
    pub unchanged: usize,
}

impl AppliedFile {
    /// Whether every change of the file was older than what the state held: a converter's
    /// `_seq` that does not grow with each change of a key (`docs/change-feed.md`).
    pub fn all_stale(&self) -> bool {
        self.unchanged > 0 && self.unchanged == self.rows
    }
}

/// A feed file that broke the contract; nothing of it was applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuarantinedFile {
    pub path: String,
    pub size: u64,
    pub code: ViolationCode,
    pub reason: String,
    pub row: Option<usize>,
    pub column: Option<String>,
    pub generation: u64,
}

/// A Parquet file of the state folder holding the latest change per key of one entity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentFile {
    pub entity: String,
    pub path: String,
    pub rows: usize,
    /// xxHash64 of the file's bytes, checked on load (absent in states written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxhash64: Option<u64>,
}

/// One generation of the state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub format: u32,
    pub generation: u64,
    pub created_at: DateTime<Utc>,
    /// Latest row per key of each entity at `snapshot_generation` (tombstones included).
    pub snapshot: Vec<SegmentFile>,
    pub snapshot_generation: u64,
    /// Every feed file applied, in the order applied; those of generations after
    /// `snapshot_generation` are replayed on top of the snapshot when loading.
    pub applied: Vec<AppliedFile>,
    pub quarantined: Vec<QuarantinedFile>,
    /// Latest `_ts` seen per entity.
    pub last_change: BTreeMap<String, DateTime<Utc>>,
    /// This state's identity, made at its first checkpoint and kept by every later one: what
    /// a publish marks its Delta commits with, so that tables published from another state
    /// (a state folder deleted and rebuilt) are told apart (absent in states written before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_id: Option<String>,
}

impl Checkpoint {
    pub fn empty() -> Self {
        Checkpoint {
            format: FORMAT,
            generation: 0,
            created_at: Utc::now(),
            snapshot: Vec::new(),
            snapshot_generation: 0,
            applied: Vec::new(),
            quarantined: Vec::new(),
            last_change: BTreeMap::new(),
            state_id: None,
        }
    }
}

fn checkpoint_path(generation: u64) -> String {
    format!("checkpoints/{generation:020}.json")
}

/// How many generations of checkpoints are kept (with the snapshots they name): a process
/// that loaded one of them a moment ago can still read it; older ones are deleted, once every
/// this many generations (so between this many and twice as many are there), which keeps the
/// listings and reads of the collection off most saves.
pub const KEEP_GENERATIONS: u64 = 10;

/// The objects under a folder of the state.
pub(super) async fn list_folder(
    state: &Location,
    folder: &str,
) -> Result<Vec<object_store::ObjectMeta>, StateError> {
    (state.store)
        .list(Some(&state.child(folder)))
        .try_collect()
        .await
        .map_err(|source| StateError::Store {
            what: format!("list {folder} in '{}'", state.url),
            source,
        })
}

/// The checkpoints of a state folder, newest first.
async fn list_generations(
    state: &Location,
) -> Result<Vec<(u64, object_store::path::Path)>, StateError> {
    let listed = list_folder(state, "checkpoints").await?;
    let mut generations: Vec<(u64, object_store::path::Path)> = listed
        .into_iter()
        .filter_map(|m| {
            let name = m.location.filename()?.strip_suffix(".json")?.parse().ok()?;
            Some((name, m.location))
        })
        .collect();
    generations.sort_by_key(|(g, _)| std::cmp::Reverse(*g));
    Ok(generations)
}

/// The newest readable checkpoint of a state folder, and the newer ones that are damaged.
#[derive(Debug, Default)]
pub struct Latest {
    /// `None` for a state folder never written (or none of whose checkpoints is readable).
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoints that could not be read (a power loss, a truncated copy): their
    /// path and why. The next generation is numbered past them.
    pub damaged: Vec<String>,
    /// The highest generation number in the folder, readable or not.
    pub newest: u64,
}

/// Read the newest checkpoint that can be read. A damaged newer one is skipped with a warning
/// that says so: the state is then that of an older generation, and the files applied after
/// it are applied again from the feed at the next catch-up (the feed is the log).
pub async fn read_latest(state: &Location) -> Result<Latest, StateError> {
    let generations = list_generations(state).await?;
    let mut latest = Latest {
        newest: generations.first().map_or(0, |(g, _)| *g),
        ..Latest::default()
    };
    for (generation, path) in generations {
        let bytes = super::read_bytes(state, &path).await?;
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(value) => {
                let found = value.get("format").and_then(|f| f.as_u64());
                if found.is_some_and(|f| f != FORMAT as u64) {
                    return Err(StateError::Format {
                        path: path.to_string(),
                        found: found.unwrap_or_default() as u32,
                    });
                }
                match serde_json::from_value::<Checkpoint>(value) {
                    Ok(cp) if cp.generation == generation => {
                        latest.checkpoint = Some(cp);
                        break;
                    }
                    Ok(cp) => latest.damaged.push(format!(
                        "{path}: records generation {} under the name of {generation}",
                        cp.generation
                    )),
                    Err(e) => latest.damaged.push(format!("{path}: {e}")),
                }
            }
            Err(e) => latest.damaged.push(format!("{path}: {e}")),
        }
    }
    if !latest.damaged.is_empty() {
        let using = latest.checkpoint.as_ref().map_or_else(
            || "no readable checkpoint is left: the next catch-up applies the whole feed again (until then the state is empty)".to_string(),
            |cp| format!(
                "using generation {} of {}: the files applied after it are applied again at the next catch-up (until then the numbers are those of generation {})",
                cp.generation, cp.created_at, cp.generation
            ),
        );
        tracing::warn!(
            "state '{}': damaged checkpoint(s) skipped: {}; {using}",
            state.url,
            latest.damaged.join("; ")
        );
    }
    Ok(latest)
}

/// Write a checkpoint under its generation. The write creates a new object (never overwrites),
/// so two writers racing for one generation cannot both win.
pub async fn write(state: &Location, checkpoint: &Checkpoint) -> Result<(), StateError> {
    // Old generations are deleted (see `collect_garbage`), so a writer that fell far behind
    // could create one again: a newer generation anywhere means another writer won.
    let newest = list_generations(state).await?.first().map(|(g, _)| *g);
    if newest.is_some_and(|g| g >= checkpoint.generation) {
        return Err(StateError::Concurrent {
            generation: checkpoint.generation,
        });
    }
    let path = state.child(&checkpoint_path(checkpoint.generation));
    let json =
        serde_json::to_vec_pretty(checkpoint).map_err(|e| StateError::Encode(e.to_string()))?;
    match crate::store::put_durable(state, &path, json.into(), true).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Err(StateError::Concurrent {
            generation: checkpoint.generation,
        }),
        Err(source) => Err(StateError::Store {
            what: format!("write checkpoint '{path}'"),
            source,
        }),
    }
}

/// Delete what no recent generation needs: checkpoints more than [`KEEP_GENERATIONS`] behind
/// `current`, and the snapshots older than the one the oldest kept checkpoint loads from.
/// Returns how many objects were deleted.
pub async fn collect_garbage(state: &Location, current: u64) -> Result<usize, StateError> {
    let Some(oldest_kept) = current.checked_sub(KEEP_GENERATIONS - 1) else {
        return Ok(0);
    };
    let generations = list_generations(state).await?;
    let Some((_, oldest_path)) = generations.iter().find(|(g, _)| *g == oldest_kept) else {
        return Ok(0);
    };
    let oldest: Checkpoint =
        match serde_json::from_slice(&super::read_bytes(state, oldest_path).await?) {
            Ok(cp) => cp,
            Err(_) => return Ok(0),
        };
    let mut doomed: Vec<object_store::path::Path> = generations
        .into_iter()
        .filter(|(g, _)| *g < oldest_kept)
        .map(|(_, path)| path)
        .collect();
    let listed = list_folder(state, "snapshots").await?;
    doomed.extend(
        listed
            .into_iter()
            .map(|m| m.location)
            .filter(|path| folder_generation(path).is_some_and(|g| g < oldest.snapshot_generation)),
    );
    for path in &doomed {
        match state.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(StateError::Store {
                    what: format!("delete '{path}'"),
                    source,
                });
            }
        }
    }
    Ok(doomed.len())
}

/// The generation of a file of the state written for one generation, from its folder
/// `<kind>/g<generation>-<suffix>/` (snapshots, stored tables).
pub(super) fn folder_generation(path: &object_store::path::Path) -> Option<u64> {
    let folder = path.parts().rev().nth(1)?;
    let digits = folder.as_ref().strip_prefix('g')?.split('-').next()?;
    digits.parse().ok()
}
