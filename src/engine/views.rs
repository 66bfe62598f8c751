//! The views of `queries/*.sql`: the business rules, in SQL an analyst can read.
//!
//! The views shipped with arstream are compiled in, so the binary works from any folder; a
//! `queries/` folder next to the config (or named by `[engine] queries`) replaces a built-in
//! view of the same file name and adds its own. Views may use each other in any order of file
//! names: they are created in passes until every one resolves.

use std::path::Path;

use datafusion::prelude::SessionContext;

use super::EngineError;

/// One view: its name (the file stem) and its SQL (`CREATE OR REPLACE VIEW … AS …`).
#[derive(Debug, Clone)]
pub struct ViewFile {
    pub name: String,
    pub sql: String,
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../queries/", $name, ".sql")))),*]
    };
}

/// The views shipped with arstream.
const BUILTIN: &[(&str, &str)] = builtin!(
    "fx_closing",
    "invoice_balances",
    "open_items",
    "aging",
    "monthly_sales",
    "promise_outcomes",
    "kpi_summary",
    "collector_productivity",
    "dispute_stats",
    "promise_stats",
    "missing_fx_rates",
);

/// The built-in views, replaced or extended by the `.sql` files of `folder` when it exists.
pub fn load(folder: Option<&Path>) -> Result<Vec<ViewFile>, EngineError> {
    let mut views: Vec<ViewFile> = BUILTIN
        .iter()
        .map(|(name, sql)| ViewFile {
            name: name.to_string(),
            sql: sql.to_string(),
        })
        .collect();
    let Some(folder) = folder.filter(|f| f.is_dir()) else {
        return Ok(views);
    };
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
        match views.iter_mut().find(|v| v.name == name) {
            Some(v) => v.sql = sql,
            None => views.push(ViewFile { name, sql }),
        }
    }
    Ok(views)
}

/// Create every view, in as many passes as their dependencies need. A view that still fails
/// when no pass makes progress is reported with its file name and DataFusion's message.
pub async fn create_all(ctx: &SessionContext, views: &[ViewFile]) -> Result<(), EngineError> {
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
