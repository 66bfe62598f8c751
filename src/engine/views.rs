//! The views of `queries/*.sql`: the business rules, in SQL an analyst can read.
//!
//! The views shipped with arstream are compiled in, so the binary works from any folder; a
//! `queries/` folder next to the config (or named by `[engine] queries`) replaces a built-in
//! view of the same file name and adds its own. Views may use each other in any order of file
//! names: they are created in passes until every one resolves.
//!
//! The building blocks of the KPI summary have two definitions: the plain views over the
//! state tables (the reference) and the views of `queries/incremental/` over the ledger
//! (the default, fast whatever the size of the state). Tests hold both to the same numbers.

use std::path::Path;

use datafusion::prelude::SessionContext;

use super::EngineError;

/// One view: its name (the file stem) and its SQL (`CREATE OR REPLACE VIEW … AS …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFile {
    pub name: String,
    pub sql: String,
}

macro_rules! builtin {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../queries/", $dir, $name, ".sql")))),*]
    };
}

/// The views shipped with arstream: the plain definitions, over the state tables.
const BUILTIN: &[(&str, &str)] = builtin!("":
    // In the order they read each other, so that one pass creates them all.
    "fx_closing",
    "daily_sales",
    "invoice_balances",
    "invoice_status",
    "open_items",
    "aging_exact",
    "aging_totals_exact",
    "aging_totals",
    "aging",
    "monthly_sales",
    "promise_results",
    "promise_outcomes",
    "promise_counts",
    "kpi_balances",
    "kpi_flows",
    "kpi_summary",
    "collector_productivity",
    "actions_log",
    "customer_holds",
    "dispute_teams",
    "dispute_routing",
    "dispute_queue",
    "dispute_escalations",
    "dispute_stats",
    "promise_stats",
    "missing_fx_rates",
    "invoice_outcomes",
    "risk_segments",
    "invoice_risk",
    "customer_risk",
    "next_actions",
    "worklist_customers",
    "worklist_queue",
    "worklist",
    "cash_forecast",
    "invoice_forecast",
    "outreach_invoices",
    "outreach_candidates",
);

/// The same building blocks of the KPI summary computed from the ledger (`ledger_*`
/// tables), so that the summary costs what the ledger holds, not what the state holds.
const INCREMENTAL: &[(&str, &str)] = builtin!("incremental/":
    "daily_sales",
    "kpi_balances",
    "aging_totals_exact",
    "kpi_flows",
    "promise_counts",
    "missing_fx_rates",
    "aging_exact",
);

/// The views of one row per customer or fewer (the KPI summary, the aging report, the
/// worklist, …): cheap to keep once computed, asked again by many readers.
pub const SUMMARIES: &[&str] = &[
    "kpi_summary",
    "aging",
    "aging_totals",
    "monthly_sales",
    "collector_productivity",
    "dispute_stats",
    "dispute_queue",
    "promise_stats",
    "risk_segments",
    "customer_risk",
    "next_actions",
    "worklist_queue",
    "worklist",
    "cash_forecast",
];

/// The shipped plain definition of `name`, if there is one.
pub fn builtin_plain(name: &str) -> Option<&'static str> {
    (BUILTIN.iter())
        .find(|(n, _)| *n == name)
        .map(|(_, sql)| *sql)
}

/// Whether `sql` is a shipped definition of view `name` (plain or incremental).
pub fn is_builtin(name: &str, sql: &str) -> bool {
    (BUILTIN.iter().chain(INCREMENTAL)).any(|(n, s)| *n == name && *s == sql)
}

/// The views the ledger stands in for (their plain definitions are not used by default).
pub fn stood_in_for() -> impl Iterator<Item = &'static str> {
    INCREMENTAL.iter().map(|(name, _)| *name)
}

/// The views whose ledger tables hold one as-of date only (the last refresh's).
const PINNED: &[&str] = &["aging_exact"];

/// `views` with the pinned ones in their plain definition (from `plain`).
pub fn pinned_to_plain(views: &[ViewFile], plain: &[ViewFile]) -> Vec<ViewFile> {
    let mut out = views.to_vec();
    for view in out.iter_mut().filter(|v| PINNED.contains(&v.name.as_str())) {
        if let Some(p) = plain.iter().find(|p| p.name == view.name) {
            view.sql = p.sql.clone();
        }
    }
    out
}

/// Which definitions of the KPI building blocks to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewSet {
    /// From the ledger, maintained as changes apply (the default).
    #[default]
    Incremental,
    /// The plain views over the state tables: the reference definition.
    Plain,
}

/// The built-in views of `set`, replaced or extended by the `.sql` files of `folder` when it
/// exists (and, for the incremental set, of its `incremental/` folder after them).
pub fn load(folder: Option<&Path>, set: ViewSet) -> Result<Vec<ViewFile>, EngineError> {
    let mut views: Vec<ViewFile> = Vec::new();
    let mut builtin = BUILTIN.to_vec();
    if set == ViewSet::Incremental {
        builtin.extend_from_slice(INCREMENTAL);
    }
    for (name, sql) in builtin {
        replace(&mut views, name.to_string(), sql.to_string());
    }
    if let Some(folder) = folder.filter(|f| f.is_dir()) {
        read_folder(&mut views, folder)?;
        let incremental = folder.join("incremental");
        if set == ViewSet::Incremental && incremental.is_dir() {
            read_folder(&mut views, &incremental)?;
        }
    }
    Ok(views)
}

fn replace(views: &mut Vec<ViewFile>, name: String, sql: String) {
    match views.iter_mut().find(|v| v.name == name) {
        Some(v) => v.sql = sql,
        None => views.push(ViewFile { name, sql }),
    }
}

/// Every `.sql` file of `folder`, in file-name order, over the views of the same name.
fn read_folder(views: &mut Vec<ViewFile>, folder: &Path) -> Result<(), EngineError> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| EngineError::Queries(format!("{}: {e}", folder.display())))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    for path in paths {
        let sql = std::fs::read_to_string(&path)
            .map_err(|e| EngineError::Queries(format!("{}: {e}", path.display())))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        replace(views, name, sql);
    }
    Ok(())
}

/// Create every view, in as many passes as their dependencies need. A view that still fails
/// when no pass makes progress is reported with its file name and DataFusion's message.
pub async fn create_all(ctx: &SessionContext, views: &[ViewFile]) -> Result<(), EngineError> {
    // A view captures the plans of the views it reads when it is created: drop them all first,
    // so that none is made on a stale version of another (one made for earlier parameters).
    for view in views {
        ctx.deregister_table(view.name.as_str())?;
    }
    let mut pending: Vec<&ViewFile> = views.iter().collect();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        for view in &pending {
            match ctx.sql(&view.sql).await {
                Ok(df) => {
                    df.collect().await?;
                }
                Err(e) => {
                    errors.push(format!("queries/{}.sql: {e}", view.name));
                    failed.push(*view);
                }
            }
        }
        if failed.len() == pending.len() {
            return Err(EngineError::Queries(errors.join("; ")));
        }
        pending = failed;
    }
    Ok(())
}
