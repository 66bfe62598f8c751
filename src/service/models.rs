//! The models' consumer: from an engine's rows, the risk model's `invoice_scores`, the
//! collector `assignments` of the worklist and the cash forecast's tables (see
//! [`super::forecast`]), handed back to the engine as derived tables (`engine::derived`), so
//! that `invoice_risk`, `customer_risk`, `worklist`, `cash_forecast` and `kpi_summary`'s
//! `cash_forecast_wape` answer.
//!
//! The model is trained at the engine's as-of date on what was known then (see
//! `models::risk`), and the invoices open that day are scored. The assignment runs on the
//! worklist the scores make (`queries/worklist_queue.sql`), since who works a customer
//! depends on where it ranks. Between two trainings, a service's refresh rescores only the
//! customers it touched ([`ModelTables::rescore`]; when, in `super::Snapshot::model_tables`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};

use crate::assignment::{self, Account, Collector};
use crate::dates::days;
use crate::engine::derived::{
    self, ASSIGNMENTS, FORECAST_ACCURACY, FORECAST_INVOICES, FORECAST_WEEKS, INVOICE_SCORES,
};
use crate::engine::{Engine, EngineError};
use crate::models::cash_backtest;
use crate::models::facts::{Customers, Fact, float_at};
use crate::models::forecast::Forecaster;
use crate::models::history::History;
use crate::models::logistic::ModelError;
use crate::models::risk::{self, RiskOptions, Trained};

use super::consumer::{Consumer, Next};
use super::stored_models::{Stored, StoredModels, TRAINED_ROWS};
use tokio_util::sync::CancellationToken;

/// Why the model tables could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ModelTablesError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the risk model: {0}")]
    Model(#[from] ModelError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// The derived tables of one engine, and what making them took.
#[derive(Debug, Clone)]
pub struct ModelTables {
    pub scores: RecordBatch,
    pub assignments: RecordBatch,
    pub invoice_forecast: RecordBatch,
    pub cash_forecast: RecordBatch,
    /// No row when the history is too short to backtest.
    pub forecast_accuracy: RecordBatch,
    pub as_of: chrono::NaiveDate,
    /// 0 when the baseline scored the invoices (no model could be trained, or it lost to
    /// the baseline on its own backtest).
    pub trained_rows: usize,
    pub took: Duration,
    /// What scored them, kept to rescore the customers later refreshes touch until the
    /// model is trained again (none: read as stored).
    pub scorer: Option<Arc<ScoredBy>>,
    /// When that model was trained.
    pub trained_at: Instant,
    /// The worklist's accounts as assigned, with their expected amount at risk: the
    /// collectors' loads that the customers a refresh touched are assigned onto.
    pub accounts: Arc<Vec<Account>>,
    /// Customers rescored by [`ModelTables::rescore`] (none: made whole).
    pub rescored: Option<usize>,
}

impl ModelTables {
    /// Make them from `engine` (as of its as-of date `as_of`) and serve them in it; read
    /// from `stored` when they are there already, and stored there once made.
    pub async fn make(
        engine: &Engine,
        as_of: chrono::NaiveDate,
        options: RiskOptions,
        stored: Option<&StoredModels>,
    ) -> Result<ModelTables, ModelTablesError> {
        let started = Instant::now();
        let found = match stored {
            Some(stored) => (stored.read(&derived::NAMES).await).map(|found| (stored, found)),
            None => None,
        };
        if let Some((stored, found)) = found {
            let mut tables = ModelTables::from_stored(found, as_of, started)?;
            // The model and the accounts it assigned, for the next refreshes to rescore and
            // assign onto (none stored: the service trains again in the background).
            let scorer = stored.read_document::<ScoredBy>(SCORED_BY).await;
            let accounts = stored.read(&[WORKLIST_ACCOUNTS]).await;
            if let (Some(scorer), Some(accounts)) = (scorer, accounts) {
                tables.scorer = Some(Arc::new(scorer));
                tables.accounts = Arc::new(accounts_of(&accounts.tables[0].1)?);
            }
            tables.put_into(engine)?;
            tracing::debug!(
                took_s = tables.took.as_secs_f64(),
                "model tables read as stored"
            );
            return Ok(tables);
        }
        let tables = ModelTables::make_now(engine, as_of, options).await?;
        if let Some(stored) = stored {
            let accounts = accounts_batch(&tables.accounts)?;
            let mut named = tables.named().to_vec();
            named.push((WORKLIST_ACCOUNTS, &accounts));
            let facts = [(TRAINED_ROWS, tables.trained_rows as u64)];
            stored.write(&named, &facts).await;
            if let Some(scorer) = &tables.scorer {
                stored.write_document(SCORED_BY, scorer.as_ref()).await;
            }
        }
        Ok(tables)
    }

    /// The tables as `stored` holds them (all of [`derived::NAMES`]).
    fn from_stored(
        stored: Stored,
        as_of: chrono::NaiveDate,
        started: Instant,
    ) -> Result<ModelTables, ModelTablesError> {
        let table = |name: &str| {
            let found = stored.tables.iter().find(|(n, _)| *n == name);
            found.map(|(_, batch)| batch.clone()).ok_or_else(|| {
                let missing = format!("the stored model tables lack {name}");
                ModelTablesError::Engine(EngineError::Queries(missing))
            })
        };
        Ok(ModelTables {
            scores: table(INVOICE_SCORES)?,
            assignments: table(ASSIGNMENTS)?,
            invoice_forecast: table(FORECAST_INVOICES)?,
            cash_forecast: table(FORECAST_WEEKS)?,
            forecast_accuracy: table(FORECAST_ACCURACY)?,
            as_of,
            trained_rows: stored.facts.get(TRAINED_ROWS).map_or(0, |&n| n as usize),
            took: started.elapsed(),
            scorer: None,
            trained_at: started,
            accounts: Arc::default(),
            rescored: None,
        })
    }

    /// The tables by their names in the engine.
    fn named(&self) -> [(&'static str, &RecordBatch); 5] {
        [
            (INVOICE_SCORES, &self.scores),
            (ASSIGNMENTS, &self.assignments),
            (FORECAST_INVOICES, &self.invoice_forecast),
            (FORECAST_WEEKS, &self.cash_forecast),
            (FORECAST_ACCURACY, &self.forecast_accuracy),
        ]
    }

    /// [`ModelTables::make`] from the engine's rows.
    async fn make_now(
        engine: &Engine,
        as_of: chrono::NaiveDate,
        options: RiskOptions,
    ) -> Result<ModelTables, ModelTablesError> {
        let started = Instant::now();
        let history = History::read(engine).await?;
        let read = started.elapsed();
        let day = days(as_of);
        // Without a model (no outcome yet, all alike), or with one that loses to the baseline
        // on its own backtest, the baseline ranks the worklist: the scores, the assignments
        // and the forecast are never empty for want of a model, nor ranked worse than by it.
        let trained = risk::train(&history, day, options)
            .map_err(|e| e.to_string())
            .and_then(|trained| match risk::loses_to_baseline(&history, day, options) {
                Some((model, baseline)) => Err(format!(
                    "it loses to the baseline on its own backtest, AUC {model:.3} against {baseline:.3}"
                )),
                None => Ok(trained),
            });
        let training = started.elapsed() - read;
        let trained_rows = trained.as_ref().map_or(0, |t| t.rows);
        let scorer = match trained {
            Ok(trained) => ScoredBy::Model(Box::new(trained)),
            Err(why) => {
                tracing::warn!(
                    "the risk model is not used ({why}): invoices are scored by the baseline, each customer's share of late invoices"
                );
                let share = risk::late_share(&history, day, options.late_days);
                ScoredBy::Baseline {
                    overall: share.map(|s| s.overall()),
                    why,
                }
            }
        };
        let scores = scorer.score(&history, day, options.late_days)?;
        let modelled = started.elapsed();
        engine.put_derived(INVOICE_SCORES, scores.clone())?;
        let (assignments, accounts) = assign_worklist(engine).await?;
        engine.put_derived(ASSIGNMENTS, assignments.clone())?;
        let assigned = started.elapsed();
        // A feed with no payment yet has no forecast (nor its backtest), but still its scores.
        let mut forecaster = Forecaster::new(&history);
        let (invoice_forecast, cash_forecast) = match forecaster.forecast(day) {
            Ok(forecast) => (
                super::forecast::invoice_batch(&history, &forecast)?,
                super::forecast::weeks_batch(&history, &forecast)?,
            ),
            Err(e) => {
                tracing::debug!("no cash forecast: {e}");
                let empty = |name| RecordBatch::new_empty(derived::schema(name).expect("a schema"));
                (empty(FORECAST_INVOICES), empty(FORECAST_WEEKS))
            }
        };
        let forecasted = started.elapsed();
        let backtest = match cash_backtest::backtest_with(&mut forecaster, day) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::debug!("no forecast backtest: {e}");
                None
            }
        };
        let forecast_accuracy = super::forecast::accuracy_batch(as_of, backtest.as_ref())?;
        tracing::debug!(
            read_s = read.as_secs_f64(),
            train_s = training.as_secs_f64(),
            score_s = (modelled - read - training).as_secs_f64(),
            assign_s = (assigned - modelled).as_secs_f64(),
            forecast_s = (forecasted - assigned).as_secs_f64(),
            backtest_s = (started.elapsed() - forecasted).as_secs_f64(),
            invoices = scores.num_rows(),
            training_rows = trained_rows,
            "model tables made"
        );
        let tables = ModelTables {
            scores,
            assignments,
            invoice_forecast,
            cash_forecast,
            forecast_accuracy,
            as_of,
            trained_rows,
            took: started.elapsed(),
            scorer: Some(Arc::new(scorer)),
            trained_at: started,
            accounts: Arc::new(accounts),
            rescored: None,
        };
        tables.put_forecast_into(engine)?;
        Ok(tables)
    }

    /// These tables with the customers `touched` rescored by the same model, over `engine`'s
    /// rows (a later refresh's, at the same as-of date), and served in it: their facts are
    /// read (not everyone's), their open invoices scored, and those in the worklist assigned
    /// onto the collectors' loads of the others, who keep theirs. The forecast is this one's.
    /// `None` without a scorer to rescore with (read as stored without it).
    pub async fn rescore(
        &self,
        engine: &Engine,
        touched: &std::collections::BTreeSet<String>,
        options: RiskOptions,
    ) -> Option<Result<ModelTables, ModelTablesError>> {
        let scorer = self.scorer.clone()?;
        Some(self.rescore_with(&scorer, engine, touched, options).await)
    }

    async fn rescore_with(
        &self,
        scorer: &ScoredBy,
        engine: &Engine,
        touched: &std::collections::BTreeSet<String>,
        options: RiskOptions,
    ) -> Result<ModelTables, ModelTablesError> {
        let started = Instant::now();
        if touched.is_empty() {
            self.put_into(engine)?;
            let took = started.elapsed();
            let rescored = Some(0);
            return Ok(ModelTables {
                took,
                rescored,
                ..self.clone()
            });
        }
        let list = Customers::list(touched.iter().map(String::as_str));
        let history = History::read_of(engine, Customers::Only(&list)).await?;
        let fresh = scorer.score(&history, days(self.as_of), options.late_days)?;
        let kept = without(&self.scores, touched)?;
        let scores = arrow::compute::concat_batches(&kept.schema(), [&kept, &fresh])?;
        // Which of them are in the worklist now depends on these scores.
        engine.put_derived(INVOICE_SCORES, scores.clone())?;
        let sql = format!(
            "{} WHERE customer_id IN ({list}) {TOUCHED_ORDER}",
            TOUCHED.sql
        );
        let newcomers = worklist_accounts(engine, &sql).await?;
        let mut accounts: Vec<Account> = (self.accounts.iter())
            .filter(|a| !touched.contains(&a.customer_id))
            .cloned()
            .collect();
        let kept = without(&self.assignments, touched)?;
        let carried = collector_of(&kept)?;
        let loads: Vec<(&str, f64)> = (accounts.iter())
            .filter_map(|a| Some((*carried.get(a.customer_id.as_str())?, a.expected_at_risk)))
            .collect();
        let collectors = read_collectors(engine).await?;
        let placed = assignment::assign_onto(&newcomers, &collectors, &loads);
        let placed = assignments_batch(&placed)?;
        let assignments = arrow::compute::concat_batches(&kept.schema(), [&kept, &placed])?;
        accounts.extend(newcomers);
        engine.put_derived(ASSIGNMENTS, assignments.clone())?;
        self.put_forecast_into(engine)?;
        tracing::debug!(
            customers = touched.len(),
            took_s = started.elapsed().as_secs_f64(),
            "rescored the customers a refresh touched"
        );
        Ok(ModelTables {
            scores,
            assignments,
            invoice_forecast: self.invoice_forecast.clone(),
            cash_forecast: self.cash_forecast.clone(),
            forecast_accuracy: self.forecast_accuracy.clone(),
            as_of: self.as_of,
            trained_rows: self.trained_rows,
            took: started.elapsed(),
            scorer: self.scorer.clone(),
            trained_at: self.trained_at,
            accounts: Arc::new(accounts),
            rescored: Some(touched.len()),
        })
    }

    /// Only the forecast's backtest, served as `forecast_accuracy` (what `kpi_summary` reads):
    /// no risk model to train, no forecast of today. Read from `stored` when it is there,
    /// and stored there once made.
    pub async fn put_forecast_accuracy(
        engine: &Engine,
        as_of: chrono::NaiveDate,
        stored: Option<&StoredModels>,
    ) -> Result<(), ModelTablesError> {
        if let Some(stored) = stored
            && ModelTables::put_stored_forecast_accuracy(engine, stored).await?
        {
            return Ok(());
        }
        let history = History::read(engine).await?;
        let backtest = cash_backtest::backtest(&history, days(as_of)).ok();
        let batch = super::forecast::accuracy_batch(as_of, backtest.as_ref())?;
        if let Some(stored) = stored {
            stored.write(&[(FORECAST_ACCURACY, &batch)], &[]).await;
        }
        Ok(engine.put_derived(FORECAST_ACCURACY, batch)?)
    }

    /// Serve the forecast's backtest `stored` holds, if it holds one: whether it did.
    pub async fn put_stored_forecast_accuracy(
        engine: &Engine,
        stored: &StoredModels,
    ) -> Result<bool, EngineError> {
        let Some(found) = stored.read(&[FORECAST_ACCURACY]).await else {
            return Ok(false);
        };
        for (name, batch) in found.tables {
            engine.put_derived(name, batch)?;
        }
        Ok(true)
    }

    fn put_forecast_into(&self, engine: &Engine) -> Result<(), EngineError> {
        engine.put_derived(FORECAST_INVOICES, self.invoice_forecast.clone())?;
        engine.put_derived(FORECAST_WEEKS, self.cash_forecast.clone())?;
        engine.put_derived(FORECAST_ACCURACY, self.forecast_accuracy.clone())
    }

    /// Serve these tables in another engine (a later snapshot's, until it has its own).
    pub fn put_into(&self, engine: &Engine) -> Result<(), EngineError> {
        engine.put_derived(INVOICE_SCORES, self.scores.clone())?;
        engine.put_derived(ASSIGNMENTS, self.assignments.clone())?;
        self.put_forecast_into(engine)
    }
}

/// What scores the open invoices: the trained model, or the baseline (each customer's
/// share of late invoices) when none could be trained or it lost to the baseline.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum ScoredBy {
    Model(Box<Trained>),
    Baseline {
        /// The late share over every customer's outcomes (none without any outcome).
        overall: Option<f64>,
        /// Why the model is not used.
        why: String,
    },
}

impl ScoredBy {
    /// The `invoice_scores` of the invoices `history` holds open on `day`. The baseline's
    /// share of a customer is learned from its own outcomes: a history of some customers
    /// scores them as one of everyone's would.
    fn score(
        &self,
        history: &History,
        day: crate::dates::Day,
        late_days: i32,
    ) -> Result<RecordBatch, ModelTablesError> {
        let (scores, scored_by) = match self {
            ScoredBy::Model(trained) => (
                risk::score_open(trained, history, day, late_days),
                risk::SCORED_BY_MODEL.to_string(),
            ),
            ScoredBy::Baseline { overall, why } => {
                let share = risk::late_share(history, day, late_days);
                let share = match (share, overall) {
                    (Some(share), Some(overall)) => Some(share.with_overall(*overall)),
                    (share, _) => share,
                };
                let scores =
                    risk::score_open_by_share(history, share.as_ref(), day, late_days, why);
                (scores, format!("baseline: {why}"))
            }
        };
        Ok(risk::scores_batch(
            history, &scores, day, late_days, &scored_by,
        )?)
    }
}

/// The worklist's customers, in their order.
const QUEUE: Fact = Fact {
    name: "worklist_queue",
    sql: "SELECT customer_id, language, owner, expected_at_risk FROM worklist_queue ORDER BY rank",
};
/// Some of the worklist's customers (a `WHERE` is added), in the queue's order.
const TOUCHED: Fact = Fact {
    name: "worklist_customers",
    sql: "SELECT customer_id, language, owner, expected_at_risk FROM worklist_customers",
};
const TOUCHED_ORDER: &str = "ORDER BY expected_at_risk DESC NULLS LAST, customer_id";
const COLLECTORS: Fact = Fact {
    name: "collectors",
    sql: "SELECT collector_id, languages, capacity FROM collectors",
};

/// The `assignments` of the worklist as `engine` ranks it now (see [`crate::assignment`]),
/// and its accounts.
pub async fn assign_worklist(
    engine: &Engine,
) -> Result<(RecordBatch, Vec<Account>), ModelTablesError> {
    let accounts = worklist_accounts(engine, QUEUE.sql).await?;
    let collectors = read_collectors(engine).await?;
    let out = assignment::assign(&accounts, &collectors);
    Ok((assignments_batch(&out)?, accounts))
}

/// The accounts `sql` reads (the columns of [`QUEUE`]), in its order.
async fn worklist_accounts(engine: &Engine, sql: &str) -> Result<Vec<Account>, ModelTablesError> {
    let mut accounts = Vec::new();
    for batch in engine.query(sql).await? {
        accounts.extend(accounts_of(&batch)?);
    }
    Ok(accounts)
}

/// The collectors, by id.
async fn read_collectors(engine: &Engine) -> Result<Vec<Collector>, ModelTablesError> {
    let mut collectors = Vec::new();
    for batch in engine.query(COLLECTORS.sql).await? {
        let columns = COLLECTORS.columns(&batch);
        let (id, languages) = (
            columns.strings("collector_id")?,
            columns.strings("languages")?,
        );
        let capacity = columns.ints("capacity")?;
        for row in 0..columns.rows() {
            if let Some(collector_id) = id.value(row) {
                let cap = capacity.is_valid(row).then(|| capacity.value(row));
                collectors.push(Collector::new(collector_id, languages.value(row), cap));
            }
        }
    }
    collectors.sort_by(|a, b| a.collector_id.cmp(&b.collector_id));
    Ok(collectors)
}

/// `out` as the `assignments` table.
fn assignments_batch(out: &[assignment::Assignment]) -> Result<RecordBatch, ModelTablesError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            out.iter().map(|a| a.customer_id.as_str()),
        )),
        Arc::new(StringArray::from_iter(
            out.iter().map(|a| a.collector_id.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            out.iter().map(|a| a.reason.as_str()),
        )),
    ];
    let schema = derived::schema(ASSIGNMENTS).expect("assignments has a schema");
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The stored names of the model that scored and of the worklist's accounts.
const SCORED_BY: &str = "scored_by";
const WORKLIST_ACCOUNTS: &str = "worklist_accounts";

/// `accounts` as a table, to store.
fn accounts_batch(accounts: &[Account]) -> Result<RecordBatch, ModelTablesError> {
    let text = |get: fn(&Account) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(accounts.iter().map(get)))
    };
    let at_risk =
        arrow::array::Float64Array::from_iter_values(accounts.iter().map(|a| a.expected_at_risk));
    Ok(RecordBatch::try_from_iter([
        ("customer_id", text(|a| Some(a.customer_id.as_str()))),
        ("language", text(|a| a.language.as_deref())),
        ("owner", text(|a| a.owner.as_deref())),
        ("expected_at_risk", Arc::new(at_risk) as ArrayRef),
    ])?)
}

/// The accounts of a batch with the columns of [`QUEUE`] (a query's rows, or a table
/// [`accounts_batch`] made).
fn accounts_of(batch: &RecordBatch) -> Result<Vec<Account>, ModelTablesError> {
    let columns = QUEUE.columns(batch);
    let (id, language) = (
        columns.strings("customer_id")?,
        columns.strings("language")?,
    );
    let (owner, at_risk) = (
        columns.strings("owner")?,
        columns.floats("expected_at_risk")?,
    );
    Ok((0..columns.rows())
        .filter_map(|row| {
            Some(Account {
                customer_id: id.value(row)?.to_string(),
                language: language.value(row).map(str::to_string),
                owner: owner.value(row).map(str::to_string),
                expected_at_risk: float_at(&at_risk, row).unwrap_or(0.0),
            })
        })
        .collect())
}

/// The rows of `batch` (a derived table with `customer_id`) of customers not in `customers`.
fn without(
    batch: &RecordBatch,
    customers: &std::collections::BTreeSet<String>,
) -> Result<RecordBatch, ModelTablesError> {
    let ids = batch.column_by_name("customer_id").expect("a customer_id");
    let ids = ids.as_string::<i32>();
    let keep: BooleanArray = ids
        .iter()
        .map(|id| Some(!id.is_some_and(|id| customers.contains(id))))
        .collect();
    Ok(arrow::compute::filter_record_batch(batch, &keep)?)
}

/// Each customer's collector in `assignments` (those with one).
fn collector_of(assignments: &RecordBatch) -> Result<HashMap<&str, &str>, ModelTablesError> {
    let column = |name| {
        assignments
            .column_by_name(name)
            .expect("an assignments column")
    };
    let (ids, collectors) = (
        column("customer_id").as_string::<i32>(),
        column("collector_id").as_string::<i32>(),
    );
    Ok((ids.iter().zip(collectors.iter()))
        .filter_map(|(id, collector)| Some((id?, collector?)))
        .collect())
}

/// Keeps the model tables of the latest snapshot made, in the background (see
/// [`super::background`]): after each, the newest snapshot published since, skipping those in
/// between, and those whose tables are a rescoring (made when read). A failure is logged once until its message changes, and tried again at the next
/// snapshot.
#[derive(Default)]
pub struct Scorer {
    last_error: Option<String>,
}

impl Consumer for Scorer {
    type Report = ();

    fn name(&self) -> &'static str {
        "models"
    }

    fn in_background(&self) -> bool {
        true
    }

    async fn consume(
        &mut self,
        snapshot: &Arc<super::Snapshot>,
        cancel: &CancellationToken,
    ) -> (Option<()>, Next) {
        // A snapshot whose tables are a rescoring of the latest (seconds, on the runner's
        // runtime) has them made by whoever reads them first: made here for every snapshot,
        // they would take the refresh path's threads for what nobody reads.
        if snapshot.rescores() {
            return (None, Next::Newer);
        }
        let made = tokio::select! {
            _ = cancel.cancelled() => return (None, Next::Newer),
            made = snapshot.model_tables() => made,
        };
        // Tables read as stored come without their model: train it now, in the background,
        // so that the next refreshes rescore what they touch instead of making all again.
        let made = match made {
            Ok(tables) if tables.scorer.is_none() => {
                tokio::select! {
                    _ = cancel.cancelled() => return (None, Next::Newer),
                    made = snapshot.retrain() => made,
                }
            }
            made => made,
        };
        match made {
            Ok(tables) => {
                self.last_error = None;
                tracing::debug!(
                    sequence = snapshot.sequence,
                    took_s = tables.took.as_secs_f64(),
                    rescored = ?tables.rescored,
                    "model tables made"
                );
            }
            Err(e) if self.last_error.as_ref() != Some(&e) => {
                tracing::warn!("the risk scores and cash forecast could not be made: {e}");
                self.last_error = Some(e);
            }
            Err(_) => {}
        }
        (None, Next::Newer)
    }
}
