//! The DataFusion session analysts query: one table per entity with its current state,
//! `<entity>_changes` with every change row as it landed, and the views of `queries/`.

pub mod cluster;
pub mod derived;
mod functions;
pub mod params;
pub mod published;
pub mod tables;
pub mod views;

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::state::State;

/// Why the engine could not be set up or a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("queries: {0}")]
    Queries(String),
    #[error("{0}")]
    Params(String),
    #[error(
        "analysts' SQL runs queries and SET only ({0}); to write results, add a step to a pipeline (pipelines/*.toml)"
    )]
    ReadOnly(String),
    /// A refresh on a catalog shared with earlier snapshots needed it changed (a table grew a
    /// column, other views): the engine is made anew instead.
    #[error("the engine's catalog would change: {0}")]
    Reshaped(String),
    #[error("published table '{table}' at {url}: {detail}")]
    Published {
        table: String,
        url: String,
        detail: String,
    },
}

impl EngineError {
    /// Whether trying again later may work: a store (the feed that `<entity>_changes` reads)
    /// could not be reached. A view that does not plan is not such an error.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::DataFusion(e) => matches!(
                e.find_root(),
                DataFusionError::ObjectStore(_) | DataFusionError::IoError(_)
            ),
            _ => false,
        }
    }
}

/// A DataFusion session over the state, with the views of `queries/`.
pub struct Engine {
    pub ctx: SessionContext,
    /// Its data tables' rows and the shape of its catalog (see [`tables`]).
    catalog: tables::Catalog,
    views: Vec<views::ViewFile>,
    /// The plain definitions, for the views the ledger keeps at one as-of date only.
    plain_views: Vec<views::ViewFile>,
    view_set: views::ViewSet,
    /// Whether a refresh has the ledger keep per-customer aging at its as-of date.
    pin_aging: bool,
    /// Whether a refresh builds the ledger (off: its tables are registered empty).
    ledger: bool,
    /// The as-of date the registered ledger tables keep per-customer aging at.
    pinned_as_of: std::sync::Mutex<Option<chrono::NaiveDate>>,
    /// The feed files its `<entity>_changes` tables read (set by its refresh).
    change_log: std::sync::Mutex<Option<Arc<tables::ChangeLog>>>,
}

impl Engine {
    /// A session with the information schema on (so `SHOW TABLES` works) and identifiers
    /// kept as written.
    pub fn new() -> Self {
        let local = |config| {
            Ok(SessionStateBuilder::new()
                .with_config(config)
                .with_default_features()
                .build())
        };
        Self::with_session(local).expect("a local session is always made")
    }

    /// An engine whose queries run on the Ballista cluster of scheduler `url`
    /// (`df://HOST:PORT`; see [`cluster`]). Its tables are to be the published ones
    /// ([`Engine::refresh_as_known`]): the executors read their files.
    pub fn on_cluster(url: &str) -> Result<Self, EngineError> {
        let address = cluster::scheduler_address(url)?;
        Self::with_session(|config: SessionConfig| {
            let rows = config
                .get_extension::<tables::SnapshotData>()
                .expect("the engine's config carries its rows");
            cluster::client_state(config, rows, &address)
        })
    }

    /// An engine on the session `make` builds from the engine's config.
    fn with_session(
        make: impl FnOnce(SessionConfig) -> Result<SessionState, DataFusionError>,
    ) -> Result<Self, EngineError> {
        let catalog = tables::Catalog::default();
        let config = SessionConfig::new()
            .with_extension(catalog.data.clone())
            .with_information_schema(true)
            .with_target_partitions(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            );
        let ctx = SessionContext::new_with_state(make(config)?);
        for function in functions::all() {
            ctx.register_udwf(function);
        }
        Ok(Engine {
            ctx,
            catalog,
            views: Vec::new(),
            plain_views: Vec::new(),
            view_set: views::ViewSet::default(),
            pin_aging: true,
            ledger: true,
            pinned_as_of: std::sync::Mutex::new(None),
            change_log: std::sync::Mutex::new(None),
        })
    }

    /// Use the built-in views of `set`, replaced or extended by the `.sql` files of `folder`.
    ///
    /// A rule is defined once: when a view of `folder` replaces a plain view whose logic the
    /// ledger re-codes (`invoice_balances`, `promise_outcomes`, … or a KPI building block
    /// itself), the plain views are used for everything, and the log says so once.
    pub fn with_queries(
        mut self,
        folder: Option<&std::path::Path>,
        set: views::ViewSet,
    ) -> Result<Self, EngineError> {
        self.plain_views = views::load(folder, views::ViewSet::Plain)?;
        self.view_set = set;
        self.views = match set {
            views::ViewSet::Plain => self.plain_views.clone(),
            views::ViewSet::Incremental => views::load(folder, set)?,
        };
        if set == views::ViewSet::Incremental
            && let Some(edited) = self.edited_ledger_rule(&self.views)
        {
            let file = match folder {
                Some(f) => f.join(format!("{edited}.sql")).display().to_string(),
                None => format!("{edited}.sql"),
            };
            warn_once(format!(
                "{file} replaces a view whose rules the KPI ledger also encodes: the KPIs are computed with the plain views, so they follow your rule (slower on a big state)"
            ));
            self.view_set = views::ViewSet::Plain;
            self.views = self.plain_views.clone();
        }
        Ok(self)
    }

    /// The first view of the user's folder that replaces a shipped plain view the ledger
    /// stands in for: one of those views, or a view they read (however deeply) that the
    /// ledger's own views do not read.
    fn edited_ledger_rule(&self, incremental: &[views::ViewFile]) -> Option<String> {
        // The usual case, no shipped view replaced, costs no parsing (an engine is made at
        // every refresh of the service).
        let mut edited: Vec<&views::ViewFile> = (self.plain_views.iter())
            .filter(|v| views::builtin_plain(&v.name).is_some_and(|sql| sql != v.sql))
            .collect();
        if edited.is_empty() {
            return None;
        }
        let reads = |views: &[views::ViewFile], roots: Vec<String>| {
            let mut seen = std::collections::HashSet::new();
            let mut pending = roots;
            while let Some(name) = pending.pop() {
                if !seen.insert(name.clone()) {
                    continue;
                }
                if let Some(view) = views.iter().find(|v| v.name == name) {
                    pending.extend(self.tables_read(&view.sql).unwrap_or_default());
                }
            }
            seen
        };
        let stood_in: Vec<String> = views::stood_in_for().map(str::to_string).collect();
        let encoded = reads(&self.plain_views, stood_in.clone());
        let still_sql = reads(incremental, stood_in.clone());
        edited.retain(|v| {
            encoded.contains(&v.name)
                && (stood_in.contains(&v.name) || !still_sql.contains(&v.name))
        });
        edited.sort_by(|a, b| a.name.cmp(&b.name));
        edited.first().map(|v| v.name.clone())
    }

    /// The tables and views `sql` reads, or `None` when it does not parse.
    fn tables_read(&self, sql: &str) -> Option<Vec<String>> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).ok()?;
        let references = state.resolve_table_references(&statement).ok()?;
        Some(references.iter().map(|r| r.table().to_string()).collect())
    }

    /// Leave per-customer aging out of the ledger (a pass over the invoices saved when the
    /// session never reads `aging`, as `arstream kpi`): `aging` then uses its plain view.
    pub fn without_aging_pin(mut self) -> Self {
        self.pin_aging = false;
        self
    }

    /// Leave the ledger out: its tables are registered empty, so only a session whose queries
    /// never read them (see [`Engine::reads_ledger`]) may use this.
    pub fn without_ledger(mut self) -> Self {
        self.ledger = false;
        self
    }

    /// Whether `sql` reads the ledger's tables, itself or through the views it reads (a
    /// one-off `SELECT count(*) FROM invoices` need not wait for the ledger to be built).
    /// A statement that does not parse counts as reading it: its error comes later.
    pub fn reads_ledger(&self, sql: &str) -> bool {
        self.reads_any(sql, |name| name.starts_with("ledger_"), true)
    }

    /// Whether `sql` reads a derived table (risk scores, assignments: see [`derived`]),
    /// itself or through the views it reads (a statement that does not parse does not: its
    /// error comes without computing them).
    pub fn reads_derived(&self, sql: &str) -> bool {
        self.reads_any(sql, |name| derived::NAMES.contains(&name), false)
    }

    /// Whether `sql` reads the models' own tables (scores, assignments, the forecast): the
    /// forecast's accuracy, which the KPI summary reads, is put in by each refresh (the
    /// latest made, or as stored), so reading it alone never waits for the models.
    pub fn reads_model_tables(&self, sql: &str) -> bool {
        let model =
            |name: &str| derived::NAMES.contains(&name) && name != derived::FORECAST_ACCURACY;
        self.reads_any(sql, model, false)
    }

    /// Whether `sql` reads a table that is `wanted`, itself or through views; `unparsed` is
    /// the answer for SQL that does not parse.
    fn reads_any(&self, sql: &str, wanted: impl Fn(&str) -> bool, unparsed: bool) -> bool {
        let tables_of = |sql: &str| self.tables_read(sql);
        let Some(mut pending) = tables_of(sql) else {
            return unparsed;
        };
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = pending.pop() {
            if wanted(&name) {
                return true;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(view) = self.views.iter().find(|v| v.name == name) {
                match tables_of(&view.sql) {
                    Some(tables) => pending.extend(tables),
                    None => return unparsed,
                }
            }
        }
        false
    }

    /// Register the rows of every table of the state and the parameters, and make the views
    /// on them (on a catalog shared with earlier engines, the views it has are kept: they
    /// read each session's own rows).
    pub async fn refresh(
        &self,
        state: &mut State,
        params: &params::KpiParams,
    ) -> Result<(), EngineError> {
        params.validate().map_err(EngineError::Params)?;
        let started = std::time::Instant::now();
        let log = tables::register(&self.ctx, &self.catalog, state).await?;
        *self.change_log.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(log));
        let registered = started.elapsed();
        if self.view_set == views::ViewSet::Incremental && !self.ledger {
            let empty = crate::state::ledger::Ledger::default();
            tables::register_ledger(&self.ctx, &self.catalog, empty.tables())?;
            *self.pinned() = None;
        } else if self.view_set == views::ViewSet::Incremental {
            let pin = self.pin_aging.then(|| crate::dates::days(params.as_of));
            let (ledger, pinned) = state.ledger_tables(params.grace_days, pin).await;
            tables::register_ledger(&self.ctx, &self.catalog, ledger)?;
            *self.pinned() = pinned.map(crate::dates::date);
        }
        self.register_derived_empty()?;
        let ledger = started.elapsed();
        self.set_params(params).await?;
        tracing::debug!(
            tables_s = registered.as_secs_f64(),
            ledger_s = (ledger - registered).as_secs_f64(),
            views_s = (started.elapsed() - ledger).as_secs_f64(),
            "engine refreshed"
        );
        Ok(())
    }

    /// The derived tables (the models', the outreach opt-outs) registered empty, until their
    /// producer puts them.
    fn register_derived_empty(&self) -> Result<(), EngineError> {
        for name in derived::NAMES
            .into_iter()
            .chain([derived::OUTREACH_OPT_OUTS])
        {
            let schema = derived::schema(name).expect("a derived table has a schema");
            let empty = datafusion::datasource::MemTable::try_new(schema, vec![vec![]])?;
            self.catalog.put(&self.ctx, name, Arc::new(empty))?;
        }
        Ok(())
    }

    /// Register the tables of a state published as Delta tables, read as they were at `at`
    /// or at their latest version (see [`published`]), and make the plain views on them: the
    /// state as known then.
    pub async fn refresh_as_known(
        &self,
        to: &crate::store::Location,
        at: Option<chrono::DateTime<chrono::Utc>>,
        params: &params::KpiParams,
    ) -> Result<(), EngineError> {
        params.validate().map_err(EngineError::Params)?;
        if self.view_set != views::ViewSet::Plain {
            return Err(EngineError::Queries(
                "the state as known at a time is read with the plain views".into(),
            ));
        }
        self.ctx
            .register_object_store(&to.root_url(), to.store.clone());
        for (name, table) in published::tables_as_known(to, at).await? {
            self.catalog.put(&self.ctx, &name, table)?;
        }
        tables::register_no_actions(&self.ctx, &self.catalog)?;
        self.register_derived_empty()?;
        self.set_params(params).await
    }

    /// Change the parameters (as-of date, window, …) and make the views again. The views the
    /// ledger keeps at one as-of date only use their plain definition at any other.
    pub async fn set_params(&self, params: &params::KpiParams) -> Result<(), EngineError> {
        params.validate().map_err(EngineError::Params)?;
        params::register(&self.ctx, &self.catalog, params)?;
        if *self.pinned() == Some(params.as_of) {
            self.create_views(&self.views).await
        } else {
            let views = views::pinned_to_plain(&self.views, &self.plain_views);
            self.create_views(&views).await
        }
    }

    /// Create `views`; on a catalog shared with earlier engines, check that they are the ones
    /// it has (the parameters are rows of `params`, so the views stay as they were planned).
    async fn create_views(&self, views: &[views::ViewFile]) -> Result<(), EngineError> {
        if self.catalog.is_shared() {
            return match self.catalog.shape().views.as_deref() == Some(views) {
                true => Ok(()),
                false => Err(EngineError::Reshaped("other views".into())),
            };
        }
        views::create_all(&self.ctx, views).await?;
        self.catalog.set_views(views);
        Ok(())
    }

    /// Whether view `name` is the one shipped with arstream, and so is every view it reads,
    /// itself or through others (no queries folder replaces any of them): what the models
    /// compute as the view does may then stand in for it.
    pub fn uses_shipped_view(&self, name: &str) -> bool {
        let shipped = |name: &str| {
            let view = self.views.iter().find(|v| v.name == name);
            view.is_some_and(|v| views::is_builtin(name, &v.sql))
        };
        let is_view = |name: &str| self.views.iter().any(|v| v.name == name);
        let Some(view) = self.views.iter().find(|v| v.name == name) else {
            return false;
        };
        shipped(name) && !self.reads_any(&view.sql, |n| is_view(n) && !shipped(n), true)
    }

    /// A hash of what this engine's views mean: their plain definitions (shipped or
    /// replaced by a queries folder), which the ledger's stand-ins equal. A result stored for
    /// one engine is another's only when theirs are the same.
    pub fn definitions_fingerprint(&self) -> u64 {
        use std::hash::Hasher;
        let mut hasher = twox_hash::XxHash64::with_seed(0);
        for view in &self.plain_views {
            for text in [&view.name, &view.sql] {
                hasher.write(text.as_bytes());
                hasher.write_u8(0);
            }
        }
        hasher.finish()
    }

    /// Serve `batch` as derived table `name` (see [`derived`]): the views over it read it
    /// from now on, in this engine only.
    pub fn put_derived(
        &self,
        name: &str,
        batch: arrow::array::RecordBatch,
    ) -> Result<(), EngineError> {
        let expected = derived::schema(name)
            .ok_or_else(|| EngineError::Queries(format!("'{name}' is not a derived table")))?;
        let batch = batch.with_schema(expected)?;
        let table = datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.catalog.put(&self.ctx, name, Arc::new(table))?;
        Ok(())
    }

    /// What the next engine of a service needs to share this one's catalog and views (see
    /// [`Engine::following`]). From now on this engine's catalog is never changed.
    pub fn seed(&self) -> Seed {
        self.catalog
            .shared
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Seed {
            state: self.ctx.state(),
            shape: self.catalog.shape().clone(),
            plans: self.catalog.plans.clone(),
            views: self.views.clone(),
            plain_views: self.plain_views.clone(),
            view_set: self.view_set,
            pin_aging: self.pin_aging,
            ledger: self.ledger,
        }
    }

    /// An engine over the catalog and views of `seed`'s engine, with no rows of its own yet
    /// (its refresh registers them), if `self` (a fresh engine with the views as they are
    /// now) would make the same views; `None` when they changed.
    pub fn following(&self, seed: Seed) -> Option<Engine> {
        let same = seed.views == self.views
            && seed.plain_views == self.plain_views
            && seed.view_set == self.view_set
            && seed.pin_aging == self.pin_aging
            && seed.ledger == self.ledger;
        if !same {
            return None;
        }
        Some(Engine::from_seed(
            seed,
            Arc::new(tables::SnapshotData::default()),
            None,
        ))
    }

    /// This engine's rows at another as-of date: the same rows, catalog and views (nothing is
    /// copied), other parameters. For what reads only the parameters and the ledger's sums, as
    /// the KPI summary does (a dashboard's KPI history, made while this engine serves on):
    /// the views the ledger keeps at one date (`aging` per customer) still answer for this
    /// engine's date.
    pub fn at_as_of(&self, params: &params::KpiParams) -> Result<Engine, EngineError> {
        params.validate().map_err(EngineError::Params)?;
        let pinned = *self.pinned();
        let data = Arc::new(self.catalog.data.copy());
        let engine = Engine::from_seed(self.seed(), data, pinned);
        *engine.change_log.lock().unwrap_or_else(|e| e.into_inner()) = self.change_log();
        params::register(&engine.ctx, &engine.catalog, params)?;
        Ok(engine)
    }

    /// An engine on `seed`'s catalog and views with the rows of `data`.
    fn from_seed(
        seed: Seed,
        data: Arc<tables::SnapshotData>,
        pinned: Option<chrono::NaiveDate>,
    ) -> Engine {
        let mut state = seed.state;
        state.config_mut().set_extension(data.clone());
        Engine {
            ctx: SessionContext::new_with_state(state),
            catalog: tables::Catalog::following(data, seed.shape, seed.plans),
            views: seed.views,
            plain_views: seed.plain_views,
            view_set: seed.view_set,
            pin_aging: seed.pin_aging,
            ledger: seed.ledger,
            pinned_as_of: std::sync::Mutex::new(pinned),
            change_log: std::sync::Mutex::new(None),
        }
    }

    /// The feed files this engine's `<entity>_changes` tables read (none before a refresh).
    pub fn change_log(&self) -> Option<Arc<tables::ChangeLog>> {
        self.change_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn pinned(&self) -> std::sync::MutexGuard<'_, Option<chrono::NaiveDate>> {
        self.pinned_as_of
            .lock()
            .expect("the pinned date is never poisoned")
    }

    /// For an error naming a table that does not exist, the closest table or view that does
    /// (the tables behind the entity views, `__*`, left out).
    pub fn table_hint(&self, error: &str) -> Option<String> {
        let (_, rest) = error.split_once("table '")?;
        let (name, _) = rest.split_once("' not found")?;
        let name = name.rsplit('.').next()?;
        let schema = self.ctx.catalog("datafusion")?.schema("public")?;
        let names: Vec<String> = (schema.table_names().into_iter())
            .filter(|n| !n.starts_with("__"))
            .collect();
        crate::hint::closest(name, &names).map(str::to_string)
    }

    /// Run one SQL statement and collect its rows.
    pub async fn query(&self, sql: &str) -> Result<Vec<arrow::array::RecordBatch>, EngineError> {
        let df = self.ctx.sql(sql).await?;
        Ok(df.collect().await?)
    }

    /// [`Engine::query`] with the parameter `$as_of` bound to day `as_of` (days since
    /// 1970-01-01): planned as a literal, so a filter on it prunes as one would.
    pub async fn query_as_of(
        &self,
        sql: &str,
        as_of: i32,
    ) -> Result<Vec<arrow::array::RecordBatch>, EngineError> {
        let value = datafusion::scalar::ScalarValue::Date32(Some(as_of));
        let params = datafusion::common::ParamValues::from(vec![("as_of", value)]);
        let df = self.ctx.sql(sql).await?.with_param_values(params)?;
        Ok(df.collect().await?)
    }

    /// Run one statement of an analyst's (the CLI, the shell, a server later): queries and
    /// `SET` only. Creating tables, views or external tables, and `INSERT` or `COPY`, are
    /// refused, so that analysts' SQL can neither write into the feed or the state nor read
    /// arbitrary files; writing is what pipelines do.
    pub async fn query_read_only(
        &self,
        sql: &str,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>), EngineError> {
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(true);
        let df = self.ctx.sql_with_options(sql, options).await.map_err(|e| {
            let message = e.to_string();
            if message.contains("DDL not supported") || message.contains("DML not supported") {
                EngineError::ReadOnly(message)
            } else {
                EngineError::DataFusion(e)
            }
        })?;
        collect_with_schema(df).await
    }

    /// [`Engine::query_with_schema`] on at most `threads` threads (`None`: as many as the
    /// session has), in a session that shares this one's tables and views.
    pub async fn query_with_schema_on(
        &self,
        sql: &str,
        threads: Option<usize>,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>), EngineError> {
        let Some(threads) = threads else {
            return self.query_with_schema(sql).await;
        };
        let mut state = self.ctx.state();
        state.config_mut().options_mut().execution.target_partitions = threads.max(1);
        collect_with_schema(SessionContext::new_with_state(state).sql(sql).await?).await
    }

    /// A query's rows and schema on at most `threads` threads (`None`: all the session
    /// has), with its optimized plan kept for the engines of the next refreshes (the views of
    /// a service do not change between refreshes, and planning the KPI summary's takes longer
    /// than running it). A statement that is not a query runs as [`Engine::query_with_schema_on`].
    pub async fn query_planned(
        &self,
        sql: &str,
        threads: Option<usize>,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>), EngineError> {
        use datafusion::logical_expr::LogicalPlan;
        let mut state = self.ctx.state();
        if let Some(threads) = threads {
            state.config_mut().options_mut().execution.target_partitions = threads.max(1);
        }
        let started = std::time::Instant::now();
        let plan = match self.catalog.plan(sql) {
            Some(plan) => plan,
            None => {
                let logical = state.create_logical_plan(sql).await?;
                if matches!(
                    logical,
                    LogicalPlan::Ddl(_)
                        | LogicalPlan::Dml(_)
                        | LogicalPlan::Statement(_)
                        | LogicalPlan::Copy(_)
                ) {
                    return self.query_with_schema_on(sql, threads).await;
                }
                let optimized = state.optimize(&logical)?;
                self.catalog.keep_plan(sql, &optimized);
                optimized
            }
        };
        run_optimized(&state, &plan, started).await
    }

    /// Run one SQL statement and return its schema too (for an empty result).
    pub async fn query_with_schema(
        &self,
        sql: &str,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>), EngineError> {
        collect_with_schema(self.ctx.sql(sql).await?).await
    }
}

/// A query's rows and its schema (which an empty result still has).
async fn collect_with_schema(
    df: datafusion::dataframe::DataFrame,
) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>), EngineError> {
    let started = std::time::Instant::now();
    let (state, plan) = df.into_parts();
    let optimized = state.optimize(&plan)?;
    run_optimized(&state, &optimized, started).await
}

/// Plan an optimized logical plan for execution in `state` and collect its rows; the time
/// since `started` spent planning and executing is traced.
async fn run_optimized(
    state: &datafusion::execution::SessionState,
    plan: &datafusion::logical_expr::LogicalPlan,
    started: std::time::Instant,
) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>), EngineError> {
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let physical = (state.query_planner())
        .create_physical_plan(plan, state)
        .await?;
    let planned = started.elapsed();
    let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
    tracing::trace!(
        planning_s = planned.as_secs_f64(),
        execution_s = (started.elapsed() - planned).as_secs_f64(),
        "query ran"
    );
    Ok((schema, batches))
}

/// See [`Engine::seed`].
pub struct Seed {
    state: datafusion::execution::SessionState,
    shape: tables::Shape,
    plans: tables::Plans,
    views: Vec<views::ViewFile>,
    plain_views: Vec<views::ViewFile>,
    view_set: views::ViewSet,
    pin_aging: bool,
    ledger: bool,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

/// Log a warning once per process (a service makes an engine per refresh).
fn warn_once(message: String) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.contains(&message) {
        tracing::warn!("{message}");
        warned.push(message);
    }
}

/// Rows as JSON objects, nulls kept (for small results: summaries, status).
pub fn rows_as_json(
    batches: &[arrow::array::RecordBatch],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, EngineError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| EngineError::Queries(format!("rows as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_the_ledger_only_through_the_views_built_on_it() {
        let engine = Engine::new()
            .with_queries(None, views::ViewSet::Incremental)
            .unwrap();
        for (sql, reads) in [
            ("SELECT count(*) FROM invoices", false),
            ("SELECT * FROM open_items WHERE open_amount <> 0", false),
            ("SELECT * FROM kpi_summary", true),
            ("SELECT * FROM aging LIMIT 5", true),
            ("SELECT sum(amount) FROM ledger_sales", true),
            (
                "WITH s AS (SELECT * FROM aging_totals) SELECT * FROM s",
                true,
            ),
            ("SELEC oops", true),
        ] {
            assert_eq!(engine.reads_ledger(sql), reads, "{sql}");
        }
        let plain = Engine::new()
            .with_queries(None, views::ViewSet::Plain)
            .unwrap();
        assert!(!plain.reads_ledger("SELECT * FROM kpi_summary"));
    }
}
