//! One entity's current state: the latest image per key, kept in Arrow batches.
//!
//! Every applied batch of changes becomes a *segment*. An index maps each key to the segment
//! row that holds its latest change (a delete stays in the index as a tombstone, so that an
//! older change arriving later cannot bring the key back). A row stops being current when a
//! higher `_seq` for its key arrives; the current state is each segment filtered by its
//! current rows, minus the tombstones. Applying a batch costs one hash look-up per row,
//! whatever the size of the history; dead rows are compacted away once they outnumber the
//! live ones.

use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray, RecordBatch, StringArray,
    make_comparator, new_null_array,
};
use arrow::compute::{SortOptions, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef};
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::feed::contract::{self, Entity};
use crate::feed::validate::{Violation, ViolationCode, cast_column};

/// The column of [`EntityTable::segments_with_live`] marking current, non-deleted rows.
pub const LIVE: &str = "_live";

/// Where the latest change of one key lives (its `_seq` is read from there: eight bytes a
/// key keep the index of ten million keys small).
#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: u32,
    row: u32,
}

/// A batch of applied changes and which of its rows are still the latest of their key.
#[derive(Debug)]
struct Segment {
    batch: RecordBatch,
    /// The key of each row as one string (composite keys joined with `|`).
    keys: StringArray,
    seqs: PrimitiveArray<Decimal128Type>,
    is_delete: Vec<bool>,
    current: Vec<bool>,
    /// The segment as the engine serves it (see [`EntityTable::segments_with_live`]), made
    /// once and kept until a row of it changes: a refresh then masks only the segments a
    /// catch-up touched, not every row of the state.
    served: std::sync::OnceLock<RecordBatch>,
}

impl Segment {
    fn new(entity: Entity, batch: RecordBatch) -> Segment {
        let batch = with_wide_seq(batch);
        let keys = key_strings(entity, &batch);
        let is_delete = batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .map(|op| op == Some("d"))
            .collect();
        let rows = batch.num_rows();
        let seqs = batch.column(1).as_primitive::<Decimal128Type>().clone();
        Segment {
            batch,
            keys,
            seqs,
            is_delete,
            current: vec![false; rows],
            served: std::sync::OnceLock::new(),
        }
    }

    fn set_current(&mut self, row: usize, value: bool) {
        if self.current[row] != value {
            self.current[row] = value;
            self.served.take();
        }
    }

    /// The segment's contract columns with its `_live` mask, in `schema`.
    fn served(&self, schema: &SchemaRef) -> RecordBatch {
        let made = self.served.get_or_init(|| {
            // (A widened table resets this: see `align`.)
            let live: BooleanArray = (self.current.iter().zip(&self.is_delete))
                .map(|(c, d)| Some(*c && !*d))
                .collect();
            let mut columns = self.batch.columns()[3..].to_vec();
            columns.push(Arc::new(live));
            RecordBatch::try_new(schema.clone(), columns).expect("segment and its mask")
        });
        made.clone()
    }
}

/// A batch whose `_seq` (the second column) is an Int64, as in snapshots written before
/// `_seq` took 38 digits, with it widened; others as they are.
fn with_wide_seq(batch: RecordBatch) -> RecordBatch {
    if batch.column(1).data_type() == &contract::SEQ_TYPE {
        return batch;
    }
    let wide = arrow::compute::cast(batch.column(1), &contract::SEQ_TYPE)
        .expect("an integer _seq widens to 38 digits");
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields[1] = Arc::new(Field::new(contract::SEQ, contract::SEQ_TYPE, false));
    let mut columns = batch.columns().to_vec();
    columns[1] = wide;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same rows")
}

/// What one applied batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplyStats {
    /// Rows that became the latest image (or tombstone) of their key.
    pub applied: usize,
    /// Rows older than, or identical to, what was already there.
    pub ignored: usize,
    /// Of those, the ones older (by `_seq`) than what was there: not a redelivery (snapshot
    /// reads overtaken by a later change left out).
    pub older: usize,
}

/// What one applied batch changed in the current state, as a collection of images with
/// weights: `retracted` (weight −1) are images that stopped being current, `inserted`
/// (weight +1) the images that became current. An update is one of each; both batches have
/// the table's change schema.
#[derive(Debug, Clone)]
pub struct Delta {
    pub retracted: RecordBatch,
    pub inserted: RecordBatch,
}

/// One undoable step of an apply, so that a batch with a conflict leaves no trace.
enum Undo {
    Inserted { hash: u64, at: (u32, u32) },
    Replaced { hash: u64, new: Entry, old: Entry },
}

/// The current state of one entity.
pub struct EntityTable {
    entity: Entity,
    schema: SchemaRef,
    segments: Vec<Segment>,
    /// Where each key's latest change is; built on first use after a load, since a command
    /// that only reads the state never needs it (see [`EntityTable::index`]).
    index: OnceLock<HashTable<Entry>>,
    hasher: DefaultHashBuilder,
    /// Rows in segments that are no longer the latest of their key.
    dead_rows: usize,
}

impl EntityTable {
    pub fn new(entity: Entity) -> Self {
        EntityTable {
            entity,
            schema: entity.change_schema(),
            segments: Vec::new(),
            index: OnceLock::new(),
            hasher: DefaultHashBuilder::default(),
            dead_rows: 0,
        }
    }

    pub fn entity(&self) -> Entity {
        self.entity
    }

    /// The schema of stored changes: change columns, contract columns, extras.
    pub fn change_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The schema analysts see: contract columns and extras, no change columns.
    pub fn table_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.schema.fields()[3..].to_vec()))
    }

    /// Rows of the current state (deleted keys excluded).
    pub fn live_rows(&self) -> usize {
        self.segments
            .iter()
            .map(|s| {
                s.current
                    .iter()
                    .zip(&s.is_delete)
                    .filter(|(c, d)| **c && !**d)
                    .count()
            })
            .sum()
    }

    /// Apply a validated batch of changes: for each key the highest `_seq` wins. A batch with
    /// two different images of one key at the same `_seq` is rejected whole and changes
    /// nothing. Returns what it did and the batch as stored (aligned to the table's schema).
    pub fn apply(
        &mut self,
        file: &str,
        batch: RecordBatch,
    ) -> Result<(ApplyStats, RecordBatch), Violation> {
        self.apply_with_delta(file, batch, false)
            .map(|(stats, batch, _)| (stats, batch))
    }

    /// [`EntityTable::apply`], also returning (when `want_delta`) what the batch changed in
    /// the current state as a [`Delta`], for whatever is maintained incrementally on top.
    pub fn apply_with_delta(
        &mut self,
        file: &str,
        batch: RecordBatch,
        want_delta: bool,
    ) -> Result<(ApplyStats, RecordBatch, Option<Delta>), Violation> {
        if batch.num_rows() == 0 {
            let delta = want_delta.then(|| Delta {
                retracted: RecordBatch::new_empty(self.schema.clone()),
                inserted: RecordBatch::new_empty(self.schema.clone()),
            });
            return Ok((ApplyStats::default(), batch, delta));
        }
        let old_width = self.schema.fields().len();
        let batch = self.align(file, batch)?;
        let seg_id = self.segments.len() as u32;
        self.segments.push(Segment::new(self.entity, batch.clone()));
        let mut undo: Vec<Undo> = Vec::new();
        let mut stats = ApplyStats::default();
        match self.apply_rows(file, seg_id, &mut undo, &mut stats) {
            Ok(()) => {
                let delta = want_delta.then(|| self.delta(seg_id, &undo));
                self.maybe_compact();
                Ok((stats, batch, delta))
            }
            Err(violation) => {
                self.rollback(undo, old_width);
                self.dead_rows = self.dead_rows.saturating_sub(stats.ignored);
                Err(violation)
            }
        }
    }

    fn apply_rows(
        &mut self,
        file: &str,
        seg_id: u32,
        undo: &mut Vec<Undo>,
        stats: &mut ApplyStats,
    ) -> Result<(), Violation> {
        let seg = seg_id as usize;
        let seqs = self.segments[seg].seqs.clone();
        let keys = self.segments[seg].keys.clone();
        self.index();
        let segments = &self.segments;
        let hasher = &self.hasher;
        built(&mut self.index).reserve(keys.len(), |e| {
            hasher.hash_one(segments[e.segment as usize].keys.value(e.row as usize))
        });
        let ops = self.segments[seg]
            .batch
            .column(0)
            .as_string::<i32>()
            .clone();
        for row in 0..keys.len() {
            let key = keys.value(row);
            let seq = seqs.value(row);
            let hash = self.hasher.hash_one(key);
            let segments = &self.segments;
            let hasher = &self.hasher;
            let key_of = |e: &Entry| segments[e.segment as usize].keys.value(e.row as usize);
            let new = Entry {
                segment: seg_id,
                row: row as u32,
            };
            let seq_of = |e: &Entry| segments[e.segment as usize].seqs.value(e.row as usize);
            match built(&mut self.index).find_mut(hash, |e| key_of(e) == key) {
                None => {
                    built(&mut self.index).insert_unique(hash, new, |e| hasher.hash_one(key_of(e)));
                    undo.push(Undo::Inserted {
                        hash,
                        at: (seg_id, row as u32),
                    });
                }
                Some(entry) if seq < seq_of(entry) => {
                    stats.ignored += 1;
                    // A snapshot read overtaken by a later change is the normal overlap of a
                    // load and the changes streamed beside it, not a sign of a lost change.
                    if ops.value(row) != "r" {
                        stats.older += 1;
                    }
                    self.dead_rows += 1;
                    continue;
                }
                Some(entry) if seq == seq_of(entry) => {
                    let old = &segments[entry.segment as usize];
                    if !same_image(old, entry.row as usize, &segments[seg], row) {
                        let detail = format!("key '{key}' has two different images at _seq {seq}");
                        return Err(
                            Violation::new(ViolationCode::ConflictingImage, file, detail)
                                .at(Some(row), &self.entity.key().join(",")),
                        );
                    }
                    stats.ignored += 1;
                    self.dead_rows += 1;
                    continue;
                }
                Some(entry) => {
                    let old = *entry;
                    *entry = new;
                    undo.push(Undo::Replaced { hash, new, old });
                    self.segments[old.segment as usize].set_current(old.row as usize, false);
                    self.dead_rows += 1;
                }
            }
            self.segments[seg].set_current(row, true);
            stats.applied += 1;
        }
        Ok(())
    }

    /// What the just-applied segment `seg_id` changed: the images it replaced that were
    /// there before it (deletes and keys first seen retract nothing) and its rows that are
    /// now current (a delete inserts nothing).
    fn delta(&self, seg_id: u32, undo: &[Undo]) -> Delta {
        let seg = seg_id as usize;
        let retracted: Vec<(usize, usize)> = undo
            .iter()
            .filter_map(|step| match step {
                Undo::Replaced { old, .. } if old.segment != seg_id => {
                    let (s, r) = (old.segment as usize, old.row as usize);
                    (!self.segments[s].is_delete[r]).then_some((s, r))
                }
                _ => None,
            })
            .collect();
        let segment = &self.segments[seg];
        let inserted: Vec<u32> = (0..segment.current.len())
            .filter(|&r| segment.current[r] && !segment.is_delete[r])
            .map(|r| r as u32)
            .collect();
        let batches: Vec<&RecordBatch> = self.segments.iter().map(|s| &s.batch).collect();
        let retracted = arrow::compute::interleave_record_batch(&batches, &retracted)
            .expect("segments share the schema");
        let inserted = arrow::compute::take_record_batch(
            &segment.batch,
            &arrow::array::UInt32Array::from(inserted),
        )
        .expect("indices fit the batch");
        Delta {
            retracted,
            inserted,
        }
    }

    fn rollback(&mut self, undo: Vec<Undo>, old_width: usize) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Inserted { hash, at } => {
                    if let Ok(entry) =
                        built(&mut self.index).find_entry(hash, |e| (e.segment, e.row) == at)
                    {
                        entry.remove();
                    }
                }
                Undo::Replaced { hash, new, old } => {
                    let at = (new.segment, new.row);
                    if let Some(entry) =
                        built(&mut self.index).find_mut(hash, |e| (e.segment, e.row) == at)
                    {
                        *entry = old;
                    }
                    self.segments[old.segment as usize].set_current(old.row as usize, true);
                    self.dead_rows -= 1;
                }
            }
        }
        self.segments.pop();
        if self.schema.fields().len() > old_width {
            let keep: Vec<usize> = (0..old_width).collect();
            self.schema = Arc::new(
                self.schema
                    .project(&keep)
                    .expect("projection of own schema"),
            );
            for s in &mut self.segments {
                s.batch = s.batch.project(&keep).expect("projection of own batch");
            }
        }
    }

    /// Bring a validated batch to this table's schema: extras the table has not seen are added
    /// to it (as nulls in older rows); extras it has are cast to the type first seen.
    fn align(&mut self, file: &str, batch: RecordBatch) -> Result<RecordBatch, Violation> {
        let incoming = batch.schema();
        let mut fields: Vec<Arc<Field>> = self.schema.fields().iter().cloned().collect();
        for field in incoming.fields() {
            if self.schema.index_of(field.name()).is_err() {
                fields.push(Arc::new(Field::new(
                    field.name(),
                    field.data_type().clone(),
                    true,
                )));
            }
        }
        let grown = Arc::new(Schema::new(fields));
        let mut columns = Vec::with_capacity(grown.fields().len());
        for field in grown.fields() {
            columns.push(match incoming.index_of(field.name()) {
                Ok(i) => cast_column(file, field.name(), batch.column(i), field.data_type())?,
                Err(_) => new_null_array(field.data_type(), batch.num_rows()),
            });
        }
        let aligned = RecordBatch::try_new(grown.clone(), columns).map_err(|e| {
            let detail = format!("cannot align with the table: {e}");
            Violation::new(ViolationCode::WrongType, file, detail)
        })?;
        if grown.fields().len() > self.schema.fields().len() {
            for s in &mut self.segments {
                s.batch = widen(&s.batch, &grown);
                s.served.take();
            }
            self.schema = grown;
        }
        Ok(aligned)
    }

    /// Every key's latest change, tombstones included, with change columns: what a snapshot
    /// stores so that a reload restores deletes too.
    pub fn latest_changes(&self) -> Vec<RecordBatch> {
        self.latest_changes_iter().collect()
    }

    /// The same, one segment at a time (a snapshot is written without a copy of the state).
    pub fn latest_changes_iter(&self) -> impl Iterator<Item = RecordBatch> + '_ {
        self.segments
            .iter()
            .map(|s| {
                let mask = BooleanArray::from(s.current.clone());
                filter_record_batch(&s.batch, &mask).expect("mask fits the batch")
            })
            .filter(|b| b.num_rows() > 0)
    }

    /// Each segment (change schema) with the indices of its current, non-deleted rows: the
    /// current state read in place, without tidying or copying anything.
    pub fn current_rows(&self) -> impl Iterator<Item = (&RecordBatch, Vec<usize>)> + '_ {
        self.segments.iter().filter_map(|s| {
            let rows: Vec<usize> = (0..s.current.len())
                .filter(|&r| s.current[r] && !s.is_delete[r])
                .collect();
            (!rows.is_empty()).then_some((&s.batch, rows))
        })
    }

    /// Every segment as it is (no change columns), with a `_live` column saying which of its
    /// rows are current and not deleted. Serving these costs one bit a row and no copy: the rows
    /// are filtered when a query reads them.
    pub fn segments_with_live(&self) -> Vec<RecordBatch> {
        let schema = self.live_schema();
        (self.segments.iter())
            .filter(|s| s.batch.num_rows() > 0)
            .map(|s| s.served(&schema))
            .collect()
    }

    /// The schema of [`EntityTable::segments_with_live`].
    pub fn live_schema(&self) -> SchemaRef {
        let mut fields: Vec<Arc<Field>> = self.schema.fields()[3..].to_vec();
        fields.push(Arc::new(Field::new(LIVE, DataType::Boolean, false)));
        Arc::new(Schema::new(fields))
    }

    /// The current image of `key` (change schema) and its row, unless absent or deleted.
    pub fn get(&self, key: &str) -> Option<(&RecordBatch, usize)> {
        let hash = self.hasher.hash_one(key);
        let entry = self.index().find(hash, |e| {
            self.segments[e.segment as usize].keys.value(e.row as usize) == key
        })?;
        let s = &self.segments[entry.segment as usize];
        let row = entry.row as usize;
        (!s.is_delete[row]).then_some((&s.batch, row))
    }

    /// Rows of the latest changes (current rows and tombstones).
    pub fn latest_rows(&self) -> usize {
        match self.index.get() {
            Some(index) => index.len(),
            None => (self.segments.iter())
                .map(|s| s.current.iter().filter(|c| **c).count())
                .sum(),
        }
    }

    /// Compact once dead rows outnumber the current ones, so that memory follows the state,
    /// not the history, and each compaction is paid for by as many applied rows.
    fn maybe_compact(&mut self) {
        if self.dead_rows > 100_000 && self.dead_rows > self.latest_rows() {
            self.compact();
        }
    }

    /// Merge all segments into one holding only the latest row per key.
    pub fn compact(&mut self) {
        let batches = self.latest_changes();
        let merged = concat_batches(&self.schema, &batches).expect("segments share the schema");
        self.reset_to_latest(merged);
    }

    /// Make room in the key index for `keys` more keys, so that a long backlog does not grow it
    /// by doubling (each growth re-reads and rehashes every key so far).
    pub fn reserve_keys(&mut self, keys: usize) {
        if keys == 0 {
            return;
        }
        self.index();
        let segments = &self.segments;
        let hasher = &self.hasher;
        built(&mut self.index).reserve(keys, |e| {
            hasher.hash_one(segments[e.segment as usize].keys.value(e.row as usize))
        });
    }

    /// Replace the whole table by `latest`: one row per key, its latest change (tombstones
    /// included), as [`EntityTable::latest_changes`] gives it to a snapshot.
    pub fn load_latest(&mut self, latest: Vec<RecordBatch>) {
        self.segments.clear();
        self.index = OnceLock::new();
        self.dead_rows = 0;
        let Some(first) = latest.first() else {
            return;
        };
        self.schema = with_wide_seq(first.clone()).schema();
        for batch in latest {
            self.push_latest(batch);
        }
    }

    fn reset_to_latest(&mut self, latest: RecordBatch) {
        self.segments.clear();
        self.index = OnceLock::new();
        self.dead_rows = 0;
        if latest.num_rows() > 0 {
            self.push_latest(latest);
        }
    }

    /// Add a segment whose rows are each the latest change of a key not in another segment
    /// (the index is made again when next used).
    fn push_latest(&mut self, latest: RecordBatch) {
        let mut seg = Segment::new(self.entity, latest);
        seg.current = vec![true; seg.batch.num_rows()];
        self.segments.push(seg);
        self.index = OnceLock::new();
    }

    /// The key index, made from the current rows of the segments if a load or a compaction
    /// left it to be made.
    fn index(&self) -> &HashTable<Entry> {
        self.index.get_or_init(|| {
            let hasher = &self.hasher;
            let mut index = HashTable::with_capacity(self.latest_rows());
            for (s, seg) in self.segments.iter().enumerate() {
                for row in (0..seg.current.len()).filter(|&r| seg.current[r]) {
                    let hash = hasher.hash_one(seg.keys.value(row));
                    let entry = Entry {
                        segment: s as u32,
                        row: row as u32,
                    };
                    index.insert_unique(hash, entry, |e| {
                        let keys = &self.segments[e.segment as usize].keys;
                        hasher.hash_one(keys.value(e.row as usize))
                    });
                }
            }
            index
        })
    }
}

/// The index of a table, once [`EntityTable::index`] has made it: to change it while the
/// segments are borrowed.
fn built(index: &mut OnceLock<HashTable<Entry>>) -> &mut HashTable<Entry> {
    index
        .get_mut()
        .expect("the key index is made before it is changed")
}

/// Bring a batch of an earlier, narrower schema to `schema`: columns are matched by name and
/// the ones it lacks are filled with nulls.
pub(crate) fn widen(batch: &RecordBatch, schema: &SchemaRef) -> RecordBatch {
    let own = batch.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match own.index_of(f.name()) {
            Ok(i) => batch.column(i).clone(),
            Err(_) => new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("widened batch matches its schema")
}

/// The key of each row as one string: the key column itself, or composite keys joined by `|`.
fn key_strings(entity: Entity, batch: &RecordBatch) -> StringArray {
    let schema = batch.schema();
    let key_cols: Vec<&ArrayRef> = entity
        .key()
        .iter()
        .map(|k| batch.column(schema.index_of(k).expect("validated batch has its key")))
        .collect();
    if let [single] = key_cols.as_slice()
        && single.data_type() == &DataType::Utf8
    {
        return single.as_string::<i32>().clone();
    }
    let options = Default::default();
    let formatters: Vec<_> = key_cols
        .iter()
        .map(|c| {
            arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options)
                .expect("key columns are displayable")
        })
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let parts: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            Some(parts.join("|"))
        })
        .collect()
}

/// Whether two change rows carry the same image: a delete differs from any other change;
/// other changes are compared on every column but the change columns.
fn same_image(a: &Segment, a_row: usize, b: &Segment, b_row: usize) -> bool {
    if a.is_delete[a_row] != b.is_delete[b_row] {
        return false;
    }
    if a.is_delete[a_row] {
        return true;
    }
    let b_schema = b.batch.schema();
    for (i, field) in a.batch.schema().fields().iter().enumerate().skip(3) {
        let Ok(j) = b_schema.index_of(field.name()) else {
            continue;
        };
        let (x, y) = (a.batch.column(i), b.batch.column(j));
        let equal = match make_comparator(x.as_ref(), y.as_ref(), SortOptions::default()) {
            Ok(cmp) => cmp(a_row, b_row).is_eq(),
            Err(_) => false,
        };
        if !equal {
            return false;
        }
    }
    true
}
