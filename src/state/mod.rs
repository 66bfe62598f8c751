//! The state: current-state tables of every entity, and their checkpoint in a state folder.
//!
//! `<state>/checkpoints/` holds one JSON per generation (see [`checkpoint`]);
//! `<state>/snapshots/<generation>/` the latest row per key at that generation, so that loading
//! does not replay the whole history; `<state>/quarantine/` a copy of each bad file with its
//! reason. The changes themselves are not copied: the feed's files, immutable by contract, are
//! the log. Loading is [`State::open`] (snapshot) and then the replay of
//! [`State::to_replay`] from the feed (done by `ingest::open_state`).

pub mod checkpoint;
mod ipc;
pub mod ledger;
pub mod stored;
pub mod table;

use crate::feed::Sources;
use crate::feed::format::FeedReader;
use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use object_store::ObjectStoreExt;

pub use checkpoint::{AppliedFile, Checkpoint, QuarantinedFile, SegmentFile};
pub use table::{ApplyStats, EntityTable};

use crate::feed::contract::Entity;
use crate::feed::validate::{Violation, decode_parquet_batches};
use crate::parquet_io;
use crate::state::ledger::Ledger;
use crate::store::Location;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {what}: {source}")]
    Store {
        what: String,
        source: object_store::Error,
    },
    #[error(
        "checkpoint '{path}' has format {found}; this arstream reads format {}",
        checkpoint::FORMAT
    )]
    Format { path: String, found: u32 },
    #[error("state file '{path}' is damaged: {detail}")]
    Damaged { path: String, detail: String },
    #[error("cannot encode the checkpoint: {0}")]
    Encode(String),
    #[error(transparent)]
    Write(#[from] parquet_io::WriteError),
    #[error(
        "another arstream process wrote generation {generation} of this state first; run again to continue from it"
    )]
    Concurrent { generation: u64 },
}

/// Files accepted since the last checkpoint, waiting to be recorded.
#[derive(Default)]
struct Pending {
    applied: Vec<AppliedFile>,
    quarantined: Vec<(QuarantinedFile, bytes::Bytes)>,
}

/// All current-state tables plus the checkpoint they were loaded from.
pub struct State {
    location: Location,
    /// The feeds this state was built from, once known: the log that `<entity>_changes` reads.
    sources: Option<Sources>,
    /// Where collectors' actions are written and read from (`<state>/actions` by default).
    actions: Location,
    tables: BTreeMap<Entity, EntityTable>,
    checkpoint: Checkpoint,
    pending: Pending,
    /// When the rows to replay on load exceed this many times the current rows, the next
    /// settling save writes a snapshot (so loading stays proportional to the current state,
    /// not to the history of changes).
    snapshot_ratio: f64,
    snapshot_min_rows: usize,
    /// The KPI ledger, once asked for; from then on kept up to date as files apply.
    ledger: Option<Ledger>,
    /// Whether the snapshot was found damaged when loading (and the state rebuilt from the
    /// feed): the next settling save writes a new one.
    snapshot_damaged: bool,
    /// Newer checkpoints, or a snapshot file, found damaged when loading (path and why), skipped.
    damaged: Vec<String>,
    /// The highest generation in the state folder when loaded, damaged ones included: the
    /// next checkpoint is numbered past it.
    newest_on_disk: u64,
}

impl State {
    /// Load the newest checkpoint of a state folder and its snapshot (an empty state when
    /// there is none). The files applied after the snapshot ([`State::to_replay`]) are still
    /// to be replayed from the feed with [`State::replay_file`].
    pub async fn open(location: Location) -> Result<State, StateError> {
        let latest = checkpoint::read_latest(&location).await?;
        let mut checkpoint = latest.checkpoint.unwrap_or_else(Checkpoint::empty);
        let mut damaged = latest.damaged;
        let mut snapshot_damaged = false;
        let tables = match load_snapshot(&location, &checkpoint.snapshot).await {
            Ok(tables) => tables,
            // A damaged snapshot is not trusted: the state is made again from the feed, the
            // log it was a cache of, as if it had never been written.
            Err(StateError::Damaged { path, detail }) => {
                tracing::warn!(
                    "state '{}': snapshot file '{path}' is damaged ({detail}); the state is rebuilt from the feed's files applied so far (which must still be there)",
                    location.url
                );
                damaged.push(format!("{path}: {detail}"));
                snapshot_damaged = true;
                checkpoint.snapshot.clear();
                checkpoint.snapshot_generation = 0;
                empty_tables()
            }
            Err(e) => return Err(e),
        };
        Ok(State {
            actions: location.folder("actions"),
            location,
            sources: None,
            tables,
            checkpoint,
            pending: Pending::default(),
            snapshot_ratio: 0.25,
            snapshot_min_rows: 100_000,
            ledger: None,
            snapshot_damaged,
            damaged,
            newest_on_disk: latest.newest,
        })
    }

    /// What was found damaged and skipped when this state was loaded: newer checkpoints, and
    /// a snapshot file (the state was then rebuilt from the feed).
    pub fn damaged_checkpoints(&self) -> &[String] {
        &self.damaged
    }

    /// The number the next checkpoint gets: past the loaded one and past any damaged one.
    fn next_generation(&self) -> u64 {
        self.checkpoint.generation.max(self.newest_on_disk) + 1
    }

    /// The applied files that the snapshot does not hold, in the order they were applied.
    pub fn to_replay(&self) -> Vec<AppliedFile> {
        let after = self.checkpoint.snapshot_generation;
        self.checkpoint
            .applied
            .iter()
            .filter(|a| a.generation > after && a.rows > 0)
            .cloned()
            .collect()
    }

    /// Apply again a file the checkpoint already records (when loading).
    pub fn replay_file(
        &mut self,
        entity: Entity,
        path: &str,
        batch: RecordBatch,
    ) -> Result<(), StateError> {
        self.ledger = None;
        self.table_mut(entity)
            .apply(path, batch)
            .map(|_| ())
            .map_err(|v| StateError::Damaged {
                path: path.to_string(),
                detail: format!("replaying it conflicts with the state: {v}"),
            })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The feed the applied files are read from.
    pub fn feed(&self) -> Option<&Location> {
        self.sources.as_ref().map(|s| &s.feed)
    }

    /// The ERP's feed, read by `reader`, and the actions feed beside it.
    pub fn set_feed(&mut self, feed: Location, reader: FeedReader) {
        self.sources = Some(Sources {
            feed,
            reader,
            actions: Some(self.actions.clone()),
        });
    }

    /// The feeds the applied files are read from, once known.
    pub fn sources(&self) -> Option<&Sources> {
        self.sources.as_ref()
    }

    /// Read collectors' actions from `actions` (`[actions] url`) rather than the state's own
    /// `actions/` folder.
    pub fn set_actions(&mut self, actions: Location) {
        if let Some(sources) = &mut self.sources {
            sources.actions = Some(actions.clone());
        }
        self.actions = actions;
    }

    /// Where collectors' actions are written.
    pub fn actions(&self) -> &Location {
        &self.actions
    }

    /// How the feed's files are read (its format and mapping).
    pub fn reader(&self) -> &FeedReader {
        static NATIVE: std::sync::LazyLock<FeedReader> =
            std::sync::LazyLock::new(FeedReader::default);
        self.sources.as_ref().map_or(&NATIVE, |s| &s.reader)
    }

    /// The last checkpoint written or loaded (pending changes not included).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub fn table(&self, entity: Entity) -> &EntityTable {
        &self.tables[&entity]
    }

    pub fn table_mut(&mut self, entity: Entity) -> &mut EntityTable {
        self.tables
            .get_mut(&entity)
            .expect("every entity has a table")
    }

    /// Every feed path already applied or quarantined.
    pub fn seen_paths(&self) -> std::collections::HashSet<&str> {
        let cp = &self.checkpoint;
        cp.applied
            .iter()
            .map(|a| a.path.as_str())
            .chain(cp.quarantined.iter().map(|q| q.path.as_str()))
            .chain(self.pending.applied.iter().map(|a| a.path.as_str()))
            .chain(
                self.pending
                    .quarantined
                    .iter()
                    .map(|(q, _)| q.path.as_str()),
            )
            .collect()
    }

    /// Apply one validated file. A conflict with the state rejects the file whole; it is
    /// then to be quarantined like any other violation.
    pub fn apply_file(
        &mut self,
        entity: Entity,
        path: &str,
        size: u64,
        batch: RecordBatch,
    ) -> Result<ApplyStats, Violation> {
        let generation = self.next_generation();
        let want_delta = self.ledger.is_some();
        let (stats, batch, delta) = self
            .table_mut(entity)
            .apply_with_delta(path, batch, want_delta)?;
        if let (Some(ledger), Some(delta)) = (&mut self.ledger, delta) {
            let invoices = &self.tables[&Entity::Invoices];
            let payments = &self.tables[&Entity::Payments];
            ledger.apply(entity, &delta, invoices, payments);
        }
        let rows = batch.num_rows();
        // The ERP's latest change dates the feed (`--as-of feed`); a collector's action,
        // recorded now, does not.
        if rows > 0 && !crate::feed::sources::is_action(path) {
            let ts = batch.column(2);
            if let Some(max) = arrow::compute::max(arrow::array::AsArray::as_primitive::<
                arrow::datatypes::TimestampMicrosecondType,
            >(ts.as_ref()))
                && let Some(t) = chrono::DateTime::from_timestamp_micros(max)
            {
                let e = self
                    .checkpoint
                    .last_change
                    .entry(entity.name().to_string())
                    .or_insert(t);
                *e = (*e).max(t);
            }
        }
        self.pending.applied.push(AppliedFile {
            path: path.to_string(),
            size,
            entity: entity.name().to_string(),
            rows,
            generation,
            unchanged: stats.ignored,
        });
        Ok(stats)
    }

    /// The KPI ledger of the current state, built on first use (one pass over the state)
    /// and kept up to date by [`State::apply_file`] from then on. A different promise grace
    /// builds it again, since promise outcomes depend on it.
    /// With `aging_as_of`, the ledger also keeps per-customer aging at that date from now on.
    pub fn ledger(
        &mut self,
        grace_days: i32,
        aging_as_of: Option<crate::state::ledger::Day>,
    ) -> &Ledger {
        if self
            .ledger
            .as_ref()
            .is_none_or(|l| l.grace_days() != grace_days)
        {
            self.ledger = Some(Ledger::build(&self.tables, grace_days));
        }
        let ledger = self.ledger.as_mut().expect("just built");
        if let Some(as_of) = aging_as_of {
            ledger.pin_aging(as_of, &self.tables[&Entity::Invoices]);
        }
        ledger
    }

    /// The KPI ledger's tables (see [`State::ledger`]) and the day its per-customer aging is
    /// kept at: its own when it is built; else those stored for this generation (see
    /// [`stored`]), which spares a command, or a service starting, a pass over all of the
    /// state; else built now (and kept up to date as files apply from then on), and stored
    /// for the next command or start. (A service builds its ledger once, and keeps it.)
    pub async fn ledger_tables(
        &mut self,
        grace_days: i32,
        aging_as_of: Option<crate::state::ledger::Day>,
    ) -> (
        Vec<(&'static str, RecordBatch)>,
        Option<crate::state::ledger::Day>,
    ) {
        let built = (self.ledger.as_ref()).is_some_and(|l| l.grace_days() == grace_days);
        let key = format!("grace days {grace_days}; aging as of {aging_as_of:?}");
        let stored = (!built)
            .then(|| stored::StoredTables::of(self, "ledger", &key))
            .flatten();
        if let Some(stored) = &stored
            && let Some(found) = stored.read(&ledger::TABLES).await
        {
            return (found.tables, aging_as_of);
        }
        let ledger = self.ledger(grace_days, aging_as_of);
        let (tables, pinned) = (ledger.tables(), ledger.aging_as_of());
        if let Some(stored) = stored {
            let named: Vec<(&str, &RecordBatch)> = tables.iter().map(|(n, b)| (*n, b)).collect();
            stored.write(&named, &[]).await;
        }
        (tables, pinned)
    }

    /// Record a bad file; its bytes are copied into `quarantine/` at the next checkpoint.
    pub fn quarantine(&mut self, violation: &Violation, size: u64, bytes: bytes::Bytes) {
        let file = QuarantinedFile {
            path: violation.file.clone(),
            size,
            code: violation.code,
            reason: violation.reason(),
            row: violation.row,
            column: violation.column.clone(),
            generation: self.next_generation(),
        };
        self.pending.quarantined.push((file, bytes));
    }

    /// Rows applied since the last checkpoint.
    pub fn pending_rows(&self) -> usize {
        self.pending.applied.iter().map(|a| a.rows).sum()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.applied.is_empty() || !self.pending.quarantined.is_empty()
    }

    /// Write what was applied since the last checkpoint, then the next checkpoint. Until the
    /// checkpoint object exists nothing is committed: a crash before it loses only work that a
    /// restart redoes from the same feed files.
    ///
    /// `settle` marks the end of a catch-up: then, if the changes replayed on load have grown
    /// past a quarter of the state's rows, a new snapshot is written, so that loading costs
    /// the snapshot (mapped, not decoded) and at most that many changes, whatever the length
    /// of the history.
    pub async fn save(&mut self, settle: bool) -> Result<(), StateError> {
        // A state rebuilt from the feed because its snapshot was damaged writes a new one at
        // the next settle, even with nothing new: else every load would replay it all again.
        let rewrite_snapshot = settle && self.snapshot_damaged;
        if !self.has_pending() && !rewrite_snapshot {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut next = self.checkpoint.clone();
        next.generation = self.next_generation();
        next.created_at = chrono::Utc::now();
        let nonce = unique_suffix();
        let made = next.created_at.format("%Y%m%dT%H%M%S");
        (next.state_id).get_or_insert_with(|| format!("{made}-{nonce}"));
        for (q, bytes) in &pending.quarantined {
            let path = self.location.child(&format!("quarantine/{}", q.path));
            self.put(&path, bytes.clone()).await?;
            let reason =
                serde_json::to_vec_pretty(q).map_err(|e| StateError::Encode(e.to_string()))?;
            let reason_path = self
                .location
                .child(&format!("quarantine/{}.reason.json", q.path));
            self.put(&reason_path, reason.into()).await?;
        }
        next.applied.extend(pending.applied);
        next.quarantined
            .extend(pending.quarantined.into_iter().map(|(q, _)| q));

        let replayed: usize = next
            .applied
            .iter()
            .filter(|a| a.generation > next.snapshot_generation)
            .map(|a| a.rows)
            .sum();
        let current: usize = self.tables.values().map(|t| t.latest_rows()).sum();
        let threshold = (current as f64 * self.snapshot_ratio).max(self.snapshot_min_rows as f64);
        if (settle && replayed as f64 > threshold) || rewrite_snapshot {
            next.snapshot = self.write_snapshot(next.generation, &nonce).await?;
            next.snapshot_generation = next.generation;
            self.snapshot_damaged = false;
        }
        checkpoint::write(&self.location, &next).await?;
        self.checkpoint = next;
        self.newest_on_disk = self.checkpoint.generation;
        // Old generations cost only space: a failure to delete them is reported, not fatal.
        let generation = self.checkpoint.generation;
        if generation.is_multiple_of(checkpoint::KEEP_GENERATIONS) {
            match checkpoint::collect_garbage(&self.location, generation).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "old checkpoints and snapshots deleted"),
                Err(e) => tracing::warn!(error = %e, "could not delete old checkpoints"),
            }
        }
        Ok(())
    }

    /// When a settling save writes a snapshot: once the rows to replay exceed `ratio` times
    /// the current rows and at least `min_rows` (defaults 0.25 and 100,000; tests use 0, 0 to
    /// snapshot at every settle).
    pub fn set_snapshot_policy(&mut self, ratio: f64, min_rows: usize) {
        self.snapshot_ratio = ratio;
        self.snapshot_min_rows = min_rows;
    }

    /// Write the latest change of every key, entity by entity: each encodes on its own thread
    /// straight from the table's segments, so the snapshot costs no copy of the state (on a
    /// local disk it goes to its file as it is made; other stores get it whole).
    async fn write_snapshot(
        &self,
        generation: u64,
        nonce: &str,
    ) -> Result<Vec<SegmentFile>, StateError> {
        let started = std::time::Instant::now();
        let location = &self.location;
        let encoded = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .tables
                .iter()
                .filter(|(_, table)| table.latest_rows() > 0)
                .map(|(entity, table)| {
                    scope.spawn(move || {
                        let rel = format!(
                            "snapshots/g{generation:010}-{nonce}/{}.{}",
                            entity.name(),
                            ipc::EXTENSION
                        );
                        let encoded = encode_snapshot_file(location, &rel, table);
                        (*entity, table.latest_rows(), rel, encoded)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("snapshot encoder panicked"))
                .collect::<Vec<_>>()
        });
        let mut files = Vec::new();
        for (entity, rows, rel, encoded) in encoded {
            let xxhash64 = match encoded? {
                Encoded::Written { xxhash64 } => xxhash64,
                Encoded::InMemory(bytes) => {
                    let xxhash64 = twox_hash::XxHash64::oneshot(0, &bytes);
                    self.put(&self.location.child(&rel), bytes).await?;
                    xxhash64
                }
            };
            files.push(SegmentFile {
                entity: entity.name().to_string(),
                path: rel,
                rows,
                xxhash64: Some(xxhash64),
            });
        }
        tracing::debug!(took_s = started.elapsed().as_secs_f64(), "snapshot written");
        Ok(files)
    }

    /// Write one object of the state folder, durably (see [`crate::store::put_durable`]).
    async fn put(
        &self,
        path: &object_store::path::Path,
        bytes: bytes::Bytes,
    ) -> Result<(), StateError> {
        crate::store::put_durable(&self.location, path, bytes, false)
            .await
            .map_err(|source| StateError::Store {
                what: format!("write '{path}'"),
                source,
            })
    }
}

/// A snapshot file made: written to the local disk already, or its bytes for another store.
enum Encoded {
    Written { xxhash64: u64 },
    InMemory(bytes::Bytes),
}

/// Encode one entity's latest changes as the snapshot file `relative`.
fn encode_snapshot_file(
    location: &Location,
    relative: &str,
    table: &EntityTable,
) -> Result<Encoded, StateError> {
    let schema = table.change_schema();
    let failed = |e: &dyn std::fmt::Display| StateError::Encode(format!("{relative}: {e}"));
    let Some(target) = local_file(location, relative) else {
        let bytes = ipc::encode(&schema, table.latest_changes_iter()).map_err(|e| failed(&e))?;
        return Ok(Encoded::InMemory(bytes));
    };
    let mut xxhash64 = 0;
    crate::store::write_local_synced(&target, false, |file| {
        let mut hashing = ipc::Hashing::new(file);
        ipc::write(&mut hashing, &schema, table.latest_changes_iter())
            .map_err(std::io::Error::other)?;
        xxhash64 = hashing.checksum();
        Ok(())
    })
    .map_err(|e| failed(&e))?;
    Ok(Encoded::Written { xxhash64 })
}

/// Where a file of a state folder on the local disk is (`None` for other stores).
fn local_file(location: &Location, relative: &str) -> Option<std::path::PathBuf> {
    let folder = location
        .is_local()
        .then(|| location.url.to_file_path().ok())??;
    Some(folder.join(relative))
}

/// An empty table of every entity.
fn empty_tables() -> BTreeMap<Entity, EntityTable> {
    (Entity::ALL.iter())
        .map(|e| (*e, EntityTable::new(*e)))
        .collect()
}

/// The tables of every entity as a snapshot's files hold them (empty tables for none). Each
/// entity's files are checked, decoded and loaded on a thread of their own: the biggest hold
/// millions of rows, and one after the other left a core idle.
async fn load_snapshot(
    location: &Location,
    snapshot: &[SegmentFile],
) -> Result<BTreeMap<Entity, EntityTable>, StateError> {
    let mut tables = empty_tables();
    let reads = snapshot
        .iter()
        .map(|seg| read_snapshot_file(location, &seg.path));
    let read = futures::future::try_join_all(reads).await?;
    let mut segments: BTreeMap<Entity, Vec<(&SegmentFile, bytes::Bytes)>> = BTreeMap::new();
    for (seg, bytes) in snapshot.iter().zip(read) {
        let entity = Entity::from_name(&seg.entity).ok_or_else(|| StateError::Damaged {
            path: seg.path.clone(),
            detail: format!("unknown entity '{}'", seg.entity),
        })?;
        segments.entry(entity).or_default().push((seg, bytes));
    }
    std::thread::scope(|scope| {
        let loads: Vec<_> = (tables.iter_mut())
            .filter_map(|(entity, table)| Some((segments.remove(entity)?, table)))
            .map(|(files, table)| {
                scope.spawn(move || {
                    let mut latest = Vec::new();
                    for (seg, bytes) in files {
                        latest.extend(decode_segment(seg, bytes)?);
                    }
                    table.load_latest(latest);
                    Ok::<(), StateError>(())
                })
            })
            .collect();
        (loads.into_iter()).try_for_each(|load| load.join().expect("a snapshot loader panicked"))
    })?;
    Ok(tables)
}

/// A snapshot file's bytes: on a local disk, mapped into memory (the tables then point into
/// the page cache, which every process reading the state shares, and nothing is copied);
/// elsewhere read whole.
async fn read_snapshot_file(
    location: &Location,
    relative: &str,
) -> Result<bytes::Bytes, StateError> {
    if let Some(folder) = location
        .is_local()
        .then(|| location.url.to_file_path().ok())
        .flatten()
    {
        match map_file(&folder.join(relative)) {
            Ok(bytes) => return Ok(bytes),
            Err(error) => {
                tracing::debug!(relative, %error, "cannot map a snapshot file; reading it")
            }
        }
    }
    read_bytes(location, &location.child(relative)).await
}

fn map_file(path: &std::path::Path) -> std::io::Result<bytes::Bytes> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the state's files are written once under a name of their own and never changed
    // in place (a new generation writes new files); one deleted while mapped stays readable
    // until it is unmapped. Its checksum is checked before it is decoded.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(bytes::Bytes::from_owner(map))
}

/// Read a whole object of the state folder.
pub(crate) async fn read_bytes(
    location: &Location,
    path: &object_store::path::Path,
) -> Result<bytes::Bytes, StateError> {
    let read_error = |source| StateError::Store {
        what: format!("read '{path}'"),
        source,
    };
    let result = location.store.get(path).await.map_err(read_error)?;
    result.bytes().await.map_err(read_error)
}

/// Check and decode one of the state's snapshot files (read as `bytes`): the batches of its
/// entity (without `_file`).
fn decode_segment(seg: &SegmentFile, bytes: bytes::Bytes) -> Result<Vec<RecordBatch>, StateError> {
    let damaged = |detail: String| StateError::Damaged {
        path: seg.path.clone(),
        detail,
    };
    if let Some(expected) = seg.xxhash64 {
        let found = twox_hash::XxHash64::oneshot(0, &bytes);
        if found != expected {
            return Err(damaged(format!(
                "its checksum is {found:016x} where the checkpoint records {expected:016x}: the file was changed or cut short"
            )));
        }
    }
    // Snapshots written before they were Arrow IPC are Parquet.
    let batches = if seg.path.ends_with(ipc::EXTENSION) {
        ipc::decode(bytes).map_err(|e| damaged(e.to_string()))?
    } else {
        let (_, batches) =
            decode_parquet_batches(&seg.path, bytes).map_err(|v| damaged(v.detail))?;
        batches
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows != seg.rows {
        return Err(damaged(format!(
            "it holds {rows} rows where the checkpoint records {}",
            seg.rows
        )));
    }
    Ok(batches)
}

/// A suffix that no other process writing the same generation will pick.
fn unique_suffix() -> String {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{:x}{:x}", std::process::id(), now & 0xffff_ffff)
}
