//! The synthetic ERP: writes a realistic change feed for demos, tests and benchmarks.
//!
//! Customers of six payer archetypes (prompt, a few days late, chronically late, seasonal,
//! deteriorating, defaulting) receive invoices every month in five currencies with daily FX
//! rates. Each invoice lives its life up front ([`simulate`]): partial payments, unapplied
//! cash applied later, credit notes, discounts, deductions, write-offs, disputes resolved or
//! rejected, promises kept or broken, collector calls and letters, voids, corrections and
//! deletions. Changes are written month by month (`<entity>/month=YYYY-MM/part-NNNNN.parquet`),
//! plus late corrections in `<entity>/backfill/` and connector re-deliveries in
//! `<entity>/redelivery/`, so that files land out of source order. The same seed gives the same
//! feed; memory follows one month of changes, not the whole history.

pub mod model;
pub mod render;
pub mod simulate;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{Datelike, Months, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use self::model::{Collector, Customer, FX, days, poisson};
use self::render::{BatchBuilder, Directory};
use self::simulate::{Event, MonthSim, Op, Route, Row, seq};
use crate::feed::contract::Entity;
use crate::store::{self, Location};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub customers: u32,
    pub months: usize,
    pub seed: u64,
    /// First day of the first month.
    pub start: NaiveDate,
    /// Where to write: a path or object-store URL.
    pub out: String,
    /// Largest number of rows in one file.
    pub rows_per_file: usize,
}

/// What was written.
#[derive(Debug, Default, Clone)]
pub struct GenerateReport {
    pub files: usize,
    pub bytes: u64,
    /// Entity → change rows written.
    pub rows: BTreeMap<String, usize>,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
}

impl GenerateReport {
    pub fn total_rows(&self) -> usize {
        self.rows.values().sum()
    }
}

/// Why generating stopped.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Write(#[from] crate::parquet_io::WriteError),
}

/// A well-mixed seed for one customer and month, so that each draws the same numbers
/// whatever else is generated (splitmix64).
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Progress callback: months done, months in all.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Write a feed. Runs on the calling thread, with encoding and writing on a second one.
pub fn generate(
    opts: &GenerateOptions,
    progress: Option<Progress<'_>>,
) -> Result<GenerateReport, GenerateError> {
    if opts.customers == 0 || opts.months == 0 || opts.months > 240 {
        return Err(GenerateError::Options(
            "--customers must be at least 1 and --months from 1 to 240".into(),
        ));
    }
    let out = store::open(&opts.out, true)?;
    let start = opts.start.with_day(1).unwrap_or(opts.start);
    let month_starts: Vec<i32> = (0..=opts.months)
        .map(|m| days(start + Months::new(m as u32)))
        .collect();
    let end_day = month_starts[opts.months] - 1;
    let collectors_n = (opts.customers / 800).clamp(3, 500);
    let mut rng = ChaCha8Rng::seed_from_u64(mix(opts.seed, u64::MAX, 0));
    let collectors: Vec<Collector> = (0..collectors_n)
        .map(|i| Collector::draw(&mut rng, i))
        .collect();
    let customers: Vec<Customer> = (0..opts.customers)
        .map(|i| {
            let mut r = ChaCha8Rng::seed_from_u64(mix(opts.seed, i as u64, u64::MAX));
            Customer::draw(&mut r, i, opts.months, collectors_n)
        })
        .collect();
    let dir = Directory {
        customers: &customers,
        collectors: &collectors,
    };

    let runtime = tokio::runtime::Handle::try_current().ok();
    let mut report = GenerateReport {
        first_day: Some(start),
        last_day: Some(model::date(end_day)),
        ..Default::default()
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<(String, RecordBatch)>(4);
    std::thread::scope(|scope| -> Result<(), GenerateError> {
        let writer = scope.spawn(|| write_files(&out, rx, runtime));
        let sent = simulate_months(
            opts,
            &month_starts,
            end_day,
            &customers,
            &collectors,
            &dir,
            &tx,
            progress,
        );
        drop(tx);
        let written = writer
            .join()
            .map_err(|_| GenerateError::Options("the writer thread panicked".into()))??;
        for (entity, rows) in sent {
            *report.rows.entry(entity).or_default() += rows;
        }
        report.files = written.0;
        report.bytes = written.1;
        Ok(())
    })?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn simulate_months(
    opts: &GenerateOptions,
    month_starts: &[i32],
    end_day: i32,
    customers: &[Customer],
    collectors: &[Collector],
    dir: &Directory,
    tx: &std::sync::mpsc::SyncSender<(String, RecordBatch)>,
    progress: Option<Progress<'_>>,
) -> BTreeMap<String, usize> {
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    let mut send = |path: String, batch: RecordBatch| {
        *rows
            .entry(path.split('/').next().unwrap_or_default().to_string())
            .or_default() += batch.num_rows();
        // A closed channel means the writer failed; its error is reported by the caller.
        let _ = tx.send((path, batch));
    };
    let start_day = month_starts[0];
    let month_of = |day: i32| {
        month_starts
            .partition_point(|&s| s <= day)
            .saturating_sub(1)
    };
    let label = |m: usize| model::date(month_starts[m]).format("%Y-%m").to_string();
    let start_ts = |day: i32| (day as i64 * 86_400 + 6 * 3600) * 1_000_000;

    let snapshot_seq = |i: usize| seq(start_day, i as u32, 255, 1);
    send(
        format!("collectors/month={}/part-00000.parquet", label(0)),
        render::collectors_batch(collectors, snapshot_seq, start_ts(start_day)),
    );

    let mut pending: Vec<Vec<Event>> = vec![Vec::new(); opts.months];
    for c in customers {
        pending[0].push(Event {
            day: start_day,
            seq: seq(start_day, c.index, 255, 0),
            ts: start_ts(start_day),
            op: Op::Read,
            route: Route::Month,
            row: Row::Customer {
                customer: c.index,
                version: 0,
            },
        });
    }
    let mut fx_rng = ChaCha8Rng::seed_from_u64(mix(opts.seed, u64::MAX - 1, 0));
    let mut rates: Vec<f64> = FX.iter().map(|f| f.1).collect();

    for m in 0..opts.months {
        let (first, next) = (month_starts[m], month_starts[m + 1]);
        for c in customers {
            let rng = ChaCha8Rng::seed_from_u64(mix(opts.seed, c.index as u64, m as u64));
            let mut sim = MonthSim::new(c, rng, m, opts.months, end_day);
            let n = poisson(&mut sim.rng, c.invoices_per_month);
            let mut days_in: Vec<i32> = (0..n).map(|_| sim.rng.random_range(first..next)).collect();
            days_in.sort_unstable();
            for day in days_in {
                let due_month = model::date(day + c.terms_days).month();
                sim.invoice(day, due_month);
            }
            if c.update_month == Some(m) {
                let day = sim.rng.random_range(first..next);
                sim.events.push(Event {
                    day,
                    seq: seq(day, c.index, 254, 0),
                    ts: start_ts(day),
                    op: Op::Update,
                    route: Route::Month,
                    row: Row::Customer {
                        customer: c.index,
                        version: 1,
                    },
                });
            }
            for e in sim.events {
                let em = month_of(e.day);
                if em < opts.months && e.day <= end_day {
                    pending[em].push(e);
                }
            }
        }

        // FX rates: a random walk, one rate per currency and day.
        let mut fx = BatchBuilder::new(Entity::FxRates);
        for day in first..next {
            for (i, (ccy, _)) in FX.iter().enumerate() {
                rates[i] *= 1.0 + 0.004 * model::normal(&mut fx_rng);
                fx.row(Op::Create, seq(day, 0, 253, i as u16), start_ts(day))
                    .text(Some(ccy))
                    .date(Some(day))
                    .decimal((rates[i] * 1e8).round() as i128);
            }
        }
        send(
            format!("fx_rates/month={}/part-00000.parquet", label(m)),
            fx.finish(),
        );

        let events = std::mem::take(&mut pending[m]);
        let mut groups: BTreeMap<(Entity, Route), Vec<&Event>> = BTreeMap::new();
        for e in &events {
            groups.entry((e.row.entity(), e.route)).or_default().push(e);
        }
        for ((entity, route), list) in groups {
            let folder = match route {
                Route::Month => String::new(),
                Route::Backfill => "backfill/".into(),
                Route::Redelivery => "redelivery/".into(),
            };
            for (part, chunk) in list.chunks(opts.rows_per_file.max(1)).enumerate() {
                let mut batch = render::render(entity, chunk, dir);
                if entity == Entity::Customers {
                    batch = with_extra_column(batch, "erp_source", "sap-ecc");
                }
                let path = format!(
                    "{}/{folder}month={}/part-{part:05}.parquet",
                    entity.name(),
                    label(m)
                );
                send(path, batch);
            }
        }
        if let Some(p) = progress {
            p(m + 1, opts.months);
        }
    }
    rows
}

/// Add a constant text column that is not in the contract (feeds carry such columns, and they
/// stay queryable).
fn with_extra_column(batch: RecordBatch, name: &str, value: &str) -> RecordBatch {
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(name, DataType::Utf8, true)));
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![value; batch.num_rows()])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("extra column fits")
}

/// Encode and write what the simulation sends; returns files and bytes written.
fn write_files(
    out: &Location,
    rx: std::sync::mpsc::Receiver<(String, RecordBatch)>,
    runtime: Option<tokio::runtime::Handle>,
) -> Result<(usize, u64), GenerateError> {
    let local_runtime;
    let handle = match runtime {
        Some(h) => h,
        None => {
            local_runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| GenerateError::Options(format!("cannot start a runtime: {e}")))?;
            local_runtime.handle().clone()
        }
    };
    let (mut files, mut bytes) = (0, 0);
    for (path, batch) in rx {
        let schema = batch.schema();
        let target = out.child(&path);
        bytes += handle.block_on(crate::parquet_io::put(
            out.store.as_ref(),
            &target,
            &schema,
            &[batch],
        ))?;
        files += 1;
    }
    Ok((files, bytes))
}
