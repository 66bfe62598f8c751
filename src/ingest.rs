//! Catching up: apply every feed file the state has not seen, exactly once.
//!
//! Files are read and validated two or more at a time (decoding is the expensive part) and
//! applied one by one in path order. Every few hundred files the state is checkpointed, so
//! that a crash costs at most that much work and a restart resumes where the last checkpoint
//! left off. A file that cannot be fetched (a transient store error) is reported and left for
//! the next round: it is neither applied nor quarantined.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;

use arrow::array::RecordBatch;

use crate::feed::contract::Entity;
use crate::feed::format::FeedReader;
use crate::feed::validate::Violation;
use crate::feed::{FeedFile, Sources, discover, validate_file};
use crate::state::{State, StateError};
use crate::store::Location;

/// How much work goes into one checkpoint, and how many files are read at once.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub checkpoint_every_files: usize,
    pub checkpoint_every_rows: usize,
    pub parallel_reads: usize,
    /// The feed's format and mapping.
    pub reader: FeedReader,
    /// Where collectors' actions are read from, when not the state's own `actions/`.
    pub actions: Option<Location>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            checkpoint_every_files: 500,
            checkpoint_every_rows: 4_000_000,
            parallel_reads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            reader: FeedReader::default(),
            actions: None,
        }
    }
}

/// What one catch-up did.
#[derive(Debug, Clone, Default)]
pub struct CatchUpReport {
    pub files_applied: usize,
    pub rows_applied: usize,
    /// Rows that changed nothing: older than, or the same as, what the state had.
    pub rows_ignored: usize,
    pub quarantined: Vec<Violation>,
    /// Files that could not be read this time; they are tried again next time.
    pub unreadable: Vec<String>,
    /// Stopped early by a cancellation: the files left are applied by the next catch-up.
    pub cancelled: bool,
    /// Entries of the feed that could not be listed (a symlink loop, a folder without
    /// permission), with why; the rest of the feed went on.
    pub skipped_entries: Vec<String>,
    pub elapsed: Duration,
    /// The customers whose rows it applied (see [`Touched`]).
    pub touched: Touched,
    /// Where the time went: waiting for files to be read and validated, applying them to
    /// the state, and writing checkpoints.
    pub read_wait: Duration,
    pub apply_time: Duration,
    pub save_time: Duration,
}

/// The customers whose rows a catch-up applied: what the risk model rescores between its
/// retrainings (`service::models`). Every customer when a change names none (an FX rate, a
/// collector's capacity, a delete that carries only its key) or too many to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    Customers(std::collections::BTreeSet<String>),
    All,
}

impl Default for Touched {
    fn default() -> Touched {
        Touched::Customers(Default::default())
    }
}

impl Touched {
    /// Past this many, every customer is rescored: one pass over the state is then cheaper.
    pub const MOST: usize = 5_000;

    /// Add the customers of the rows of `batch`, a file of `entity`'s.
    pub fn add(&mut self, entity: Entity, batch: &RecordBatch) {
        let Touched::Customers(set) = self else {
            return;
        };
        let column = match entity {
            Entity::FxRates | Entity::Collectors => None,
            _ => batch.column_by_name("customer_id"),
        };
        let ids =
            column.and_then(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).ok());
        let Some(ids) = ids else {
            *self = Touched::All;
            return;
        };
        let ids = arrow::array::AsArray::as_string::<i32>(&ids);
        for id in ids.iter() {
            match id {
                Some(id) if set.len() < Touched::MOST => {
                    set.insert(id.to_string());
                }
                _ => {
                    *self = Touched::All;
                    return;
                }
            }
        }
    }

    /// These customers and `other`'s.
    pub fn join(&mut self, other: &Touched) {
        match (&mut *self, other) {
            (Touched::Customers(set), Touched::Customers(more))
                if set.len() + more.len() <= Touched::MOST =>
            {
                set.extend(more.iter().cloned())
            }
            (Touched::All, _) => {}
            _ => *self = Touched::All,
        }
    }
}

/// Why catching up stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Discover(#[from] crate::feed::discover::DiscoverError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "cannot replay feed file '{path}', applied after the last snapshot: {detail} (the feed must keep the files a snapshot does not cover)"
    )]
    Replay { path: String, detail: String },
}

impl IngestError {
    /// Whether trying again later may work: the store could not be reached or answered with
    /// an error, as opposed to a damaged state or a missing feed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IngestError::Discover(crate::feed::discover::DiscoverError::List { .. })
                | IngestError::State(StateError::Store { .. } | StateError::Write(_))
        )
    }
}

/// A file read from the feed: its bytes and its validated batch (or its violation), or why it
/// could not be read.
type ReadOutcome = Result<(Bytes, Result<RecordBatch, Violation>), String>;

/// Read and validate `files`, several at once, yielding them in the order given. The reads
/// run in a task of their own, so that they go on while the caller applies a file (a stream
/// the caller polls only between files would leave one core idle for most of a catch-up).
fn read_files(
    sources: &Sources,
    files: Vec<FeedFile>,
    parallel: usize,
) -> impl futures::Stream<Item = (FeedFile, ReadOutcome)> + use<> {
    let reads = read_in_order(sources, files, parallel);
    // Read ahead by at most `parallel` files besides those in flight: bounded memory.
    let (ready, receiver) = tokio::sync::mpsc::channel(parallel.max(1));
    tokio::spawn(async move {
        let mut reads = std::pin::pin!(reads);
        while let Some(read) = reads.next().await {
            if ready.send(read).await.is_err() {
                return; // the caller stopped (cancelled, or failed)
            }
        }
    });
    let mut receiver = receiver;
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// [`read_files`]' reads, as a stream that progresses only while polled.
fn read_in_order(
    sources: &Sources,
    files: Vec<FeedFile>,
    parallel: usize,
) -> impl futures::Stream<Item = (FeedFile, ReadOutcome)> + use<> {
    let sources = sources.clone();
    futures::stream::iter(files)
        .map(move |file| {
            let placed = sources.place(&file.relative);
            let store = placed.location.store.clone();
            let reader = placed.reader.clone();
            async move {
                let bytes = match store.get(&file.path).await {
                    Ok(r) => r.bytes().await,
                    Err(e) => Err(e),
                };
                let bytes = match bytes {
                    Ok(b) => b,
                    Err(e) => return (file, Err(e.to_string())),
                };
                let (f, b) = (file.clone(), bytes.clone());
                let checked = tokio::task::spawn_blocking(move || {
                    validate_file(&reader, f.entity, &f.folder, &f.relative, b)
                })
                .await
                .map_err(|e| e.to_string());
                match checked {
                    Ok(outcome) => (file, Ok((bytes, outcome))),
                    Err(e) => (file, Err(e)),
                }
            }
        })
        .buffered(parallel.max(1))
}

/// Open a state and bring it back to its last checkpoint: load the snapshot, then replay from
/// the feed the files applied after it.
pub async fn open_state(
    location: Location,
    feed: &Location,
    opts: &IngestOptions,
) -> Result<State, IngestError> {
    let mut state = State::open(location).await?;
    if let Some(actions) = &opts.actions {
        state.set_actions(actions.clone());
    }
    state.set_feed(feed.clone(), opts.reader.clone());
    let sources = state.sources().expect("set above").clone();
    let to_replay = state.to_replay();
    // The checkpoint knows each file's rows: size the key indexes for them once.
    for entity in Entity::ALL {
        let rows = (to_replay.iter())
            .filter(|a| a.entity == entity.name())
            .map(|a| a.rows)
            .sum();
        state.table_mut(entity).reserve_keys(rows);
    }
    let files: Vec<FeedFile> = to_replay
        .into_iter()
        .map(|a| {
            let placed = sources.place(&a.path);
            FeedFile {
                path: placed.location.child(placed.relative),
                size: a.size,
                entity: Entity::from_name(&a.entity),
                folder: (placed.reader.locate(placed.relative))
                    .map_or(a.entity.clone(), |located| located.table),
                relative: a.path.clone(),
            }
        })
        .collect();
    let mut results = read_files(&sources, files, opts.parallel_reads);
    while let Some((file, outcome)) = results.next().await {
        let gone = |detail: String| IngestError::Replay {
            path: file.relative.clone(),
            detail,
        };
        let (_, validated) = outcome.map_err(gone)?;
        let batch = validated.map_err(|v| gone(v.to_string()))?;
        let entity = file.entity.ok_or_else(|| gone("not an entity".into()))?;
        state.replay_file(entity, &file.relative, batch)?;
    }
    Ok(state)
}

/// Open a state and catch up with the feed, while other processes may be doing the same on
/// the same state (a service and an analyst's `arstream sql`, say): when another process wrote
/// the next generation first, reload from it and catch up again (at most `attempts` times).
pub async fn open_and_catch_up(
    location: &Location,
    feed: &Location,
    opts: &IngestOptions,
    progress: Option<Progress<'_>>,
    cancel: Option<&CancellationToken>,
    attempts: usize,
) -> Result<(State, CatchUpReport), IngestError> {
    let mut attempt = 1;
    loop {
        let mut state = open_state(location.clone(), feed, opts).await?;
        match catch_up_until(&mut state, feed, opts, progress, cancel).await {
            Err(IngestError::State(StateError::Concurrent { generation }))
                if attempt < attempts =>
            {
                tracing::info!(
                    generation,
                    "another process advanced the state; reloading it"
                );
                attempt += 1;
            }
            result => return result.map(|report| (state, report)),
        }
    }
}

/// Progress callback: files done so far, and files in this catch-up.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Apply every new file of `feed` to `state`, checkpointing as it goes.
pub async fn catch_up(
    state: &mut State,
    feed: &Location,
    opts: &IngestOptions,
    progress: Option<Progress<'_>>,
) -> Result<CatchUpReport, IngestError> {
    catch_up_until(state, feed, opts, progress, None).await
}

/// [`catch_up`], stopping early when `cancel` is cancelled: after the file being applied,
/// with what was applied checkpointed (`report.cancelled`); reads in flight are dropped.
pub async fn catch_up_until(
    state: &mut State,
    feed: &Location,
    opts: &IngestOptions,
    progress: Option<Progress<'_>>,
    cancel: Option<&CancellationToken>,
) -> Result<CatchUpReport, IngestError> {
    let never = CancellationToken::new();
    let cancel = cancel.unwrap_or(&never);
    let started = Instant::now();
    state.set_feed(feed.clone(), opts.reader.clone());
    let listing = tokio::select! {
        biased;
        _ = cancel.cancelled() => {
            return Ok(CatchUpReport { cancelled: true, ..CatchUpReport::default() });
        }
        listing = list_sources(state.sources().expect("set above")) => listing?,
    };
    let seen = state.seen_paths();
    let new: Vec<FeedFile> = (listing.files)
        .into_iter()
        .filter(|f| !seen.contains(f.relative.as_str()))
        .collect();
    drop(seen);
    let total = new.len();
    let mut backlog = Backlog::of(&new);
    let mut report = CatchUpReport {
        skipped_entries: listing.skipped,
        ..CatchUpReport::default()
    };
    let sources = state.sources().expect("set above").clone();
    let mut results = read_files(&sources, new, opts.parallel_reads);

    let mut done = 0;
    let mut files_in_checkpoint = 0;
    loop {
        let waiting = Instant::now();
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            next = results.next() => next,
        };
        let Some((file, outcome)) = next else {
            report.cancelled = cancel.is_cancelled();
            break;
        };
        report.read_wait += waiting.elapsed();
        done += 1;
        match outcome {
            Err(error) => {
                tracing::warn!(file = %file.relative, %error, "cannot read feed file; will retry next time");
                report
                    .unreadable
                    .push(format!("{}: {error}", file.relative));
            }
            Ok((bytes, validated)) => {
                files_in_checkpoint += 1;
                let applying = Instant::now();
                if let (Some(entity), Ok(batch)) = (file.entity, &validated) {
                    let keys = backlog.rows_from(entity, file.size, batch.num_rows());
                    state.table_mut(entity).reserve_keys(keys);
                }
                apply_one(state, &file, bytes, validated, &mut report);
                report.apply_time += applying.elapsed();
            }
        }
        if let Some(p) = progress {
            p(done, total);
        }
        if files_in_checkpoint >= opts.checkpoint_every_files
            || state.pending_rows() >= opts.checkpoint_every_rows
        {
            let saving = Instant::now();
            state.save(false).await?;
            report.save_time += saving.elapsed();
            files_in_checkpoint = 0;
        }
    }
    drop(results);
    let saving = Instant::now();
    // A stop checkpoints what was applied, without the snapshot a settled catch-up may write.
    state.save(!report.cancelled).await?;
    report.save_time += saving.elapsed();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Every file of the ERP's feed, then every file of the actions feed (named
/// `_actions/…`; a missing actions folder has none yet).
async fn list_sources(sources: &Sources) -> Result<crate::feed::discover::Listing, IngestError> {
    let mut listing = discover(&sources.feed, &sources.reader).await?;
    let Some(actions) = &sources.actions else {
        return Ok(listing);
    };
    let native = FeedReader::default();
    let mut actions = match discover(actions, &native).await {
        Ok(actions) => actions,
        Err(crate::feed::discover::DiscoverError::Missing { .. }) => return Ok(listing),
        Err(e) => return Err(e.into()),
    };
    for file in &mut actions.files {
        file.relative = format!("{}{}", crate::feed::sources::ACTIONS_PREFIX, file.relative);
    }
    listing.files.append(&mut actions.files);
    listing.skipped.append(&mut actions.skipped);
    Ok(listing)
}

/// The bytes of the files of each entity not applied yet in this catch-up, to estimate how
/// many keys its table is about to get.
struct Backlog(std::collections::HashMap<Entity, u64>);

impl Backlog {
    fn of(files: &[FeedFile]) -> Backlog {
        let mut bytes = std::collections::HashMap::new();
        for f in files {
            if let Some(entity) = f.entity {
                *bytes.entry(entity).or_default() += f.size;
            }
        }
        Backlog(bytes)
    }

    /// The rows of the entity's files from this one (of `size` bytes and `rows` rows) on, at
    /// this file's rows per byte (an upper bound on the new keys, as updates add none).
    fn rows_from(&mut self, entity: Entity, size: u64, rows: usize) -> usize {
        let left = self.0.get(&entity).copied().unwrap_or(0).max(size);
        self.0.insert(entity, left - size);
        (left as f64 * rows as f64 / size.max(1) as f64) as usize
    }
}

fn apply_one(
    state: &mut State,
    file: &FeedFile,
    bytes: Bytes,
    validated: Result<RecordBatch, Violation>,
    report: &mut CatchUpReport,
) {
    let applied = match (validated, file.entity) {
        (Ok(batch), Some(entity)) => {
            let mut touched = Touched::default();
            touched.add(entity, &batch);
            let applied = state.apply_file(entity, &file.relative, file.size, batch);
            if applied.is_ok() {
                report.touched.join(&touched);
            }
            applied
        }
        (Err(violation), _) => Err(violation),
        (Ok(_), None) => Err(Violation::new(
            crate::feed::ViolationCode::UnknownEntity,
            &file.relative,
            "not in an entity folder",
        )),
    };
    match applied {
        Ok(stats) => {
            report.files_applied += 1;
            report.rows_applied += stats.applied;
            report.rows_ignored += stats.ignored;
            if stats.applied == 0 && stats.older > 0 {
                tracing::warn!(
                    "{}: none of its {} changes is newer than what the state holds for its key \
                     (by _seq), so it changed nothing: a late redelivery, or new changes whose \
                     _seq does not grow with each change of a key (docs/change-feed.md)",
                    file.relative,
                    stats.ignored
                );
            } else if stats.applied == 0 && stats.ignored > 0 {
                tracing::info!(
                    "{}: its {} changes were all applied before (a redelivery): nothing changed",
                    file.relative,
                    stats.ignored
                );
            }
        }
        Err(violation) => {
            tracing::warn!(code = %violation.code, "quarantined {}", violation.reason());
            state.quarantine(&violation, file.size, bytes);
            report.quarantined.push(violation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entity: Entity, size: u64) -> FeedFile {
        let relative = format!("{}/part-{size}.parquet", entity.name());
        FeedFile {
            path: object_store::path::Path::from(relative.as_str()),
            relative,
            size,
            entity: Some(entity),
            folder: entity.name().to_string(),
        }
    }

    #[test]
    fn the_backlog_estimates_the_rows_still_to_come_per_entity() {
        let files = [
            file(Entity::Invoices, 1000),
            file(Entity::Payments, 500),
            file(Entity::Invoices, 3000),
        ];
        let mut backlog = Backlog::of(&files);
        // 100 rows in the first 1000 bytes: 400 rows in the 4000 bytes of invoices left.
        assert_eq!(backlog.rows_from(Entity::Invoices, 1000, 100), 400);
        assert_eq!(backlog.rows_from(Entity::Payments, 500, 50), 50);
        // The last invoice file: its own rows only.
        assert_eq!(backlog.rows_from(Entity::Invoices, 3000, 250), 250);
    }
}
