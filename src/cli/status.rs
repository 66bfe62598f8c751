//! `arstream status`: what has been applied, what was quarantined and why, rows per table.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Serialize;

use super::{GlobalArgs, Session};
use crate::feed::contract::Entity;
use crate::state::State;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

/// The machine-readable status (`--format json`).
#[derive(Debug, Serialize)]
pub struct Status {
    pub feed: String,
    pub state: String,
    pub generation: u64,
    pub files_applied: usize,
    pub files_quarantined: Vec<QuarantineLine>,
    /// Entity → rows of its current state.
    pub tables: BTreeMap<String, usize>,
    /// Entity → latest `_ts` applied (RFC 3339).
    pub last_change: BTreeMap<String, String>,
    /// Currencies of open invoices with no FX rate at the KPI as-of date: their amounts are
    /// left out of reporting-currency totals.
    pub missing_fx_rates: Vec<MissingRate>,
    /// Newer checkpoints found damaged and skipped when the state was loaded (path and why).
    pub damaged_checkpoints: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct MissingRate {
    pub currency: String,
    pub invoices: i64,
    pub as_of: String,
}

#[derive(Debug, Serialize)]
pub struct QuarantineLine {
    pub path: String,
    pub code: String,
    pub reason: String,
}

/// Gather the status of a state.
pub fn status_of(feed: &str, state: &State) -> Status {
    let cp = state.checkpoint();
    Status {
        feed: feed.to_string(),
        state: state.location().url.to_string(),
        generation: cp.generation,
        files_applied: cp.applied.len(),
        files_quarantined: cp
            .quarantined
            .iter()
            .map(|q| QuarantineLine {
                path: q.path.clone(),
                code: q.code.to_string(),
                reason: q.reason.clone(),
            })
            .collect(),
        tables: Entity::ALL
            .iter()
            .map(|e| (e.name().to_string(), state.table(*e).live_rows()))
            .collect(),
        last_change: cp
            .last_change
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
            })
            .collect(),
        missing_fx_rates: Vec::new(),
        damaged_checkpoints: state.damaged_checkpoints().to_vec(),
    }
}

/// The currencies without a rate at the as-of date, from the `missing_fx_rates` view.
async fn missing_rates(session: &mut Session) -> anyhow::Result<Vec<MissingRate>> {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    let (engine, params) = session.engine_with(false).await?;
    let batches = engine
        .query("SELECT currency, CAST(invoices AS BIGINT) AS invoices FROM missing_fx_rates")
        .await?;
    let mut out = Vec::new();
    for b in batches {
        let currencies = b.column(0).as_string::<i32>();
        let counts = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push(MissingRate {
                currency: currencies.value(i).to_string(),
                invoices: counts.value(i),
                as_of: params.as_of.to_string(),
            });
        }
    }
    Ok(out)
}

pub async fn run(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let mut session = Session::open(global).await?;
    let mut status = status_of(session.feed.url.as_str(), &session.state);
    status.missing_fx_rates = missing_rates(&mut session).await?;
    match args.format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        StatusFormat::Table => print_table(&status),
    }
    Ok(ExitCode::SUCCESS)
}

/// The status for people.
pub fn print_table(status: &Status) {
    println!("feed   {}", status.feed);
    println!("state  {} (generation {})", status.state, status.generation);
    println!();
    println!("files applied      {}", status.files_applied);
    println!("files quarantined  {}", status.files_quarantined.len());
    for q in &status.files_quarantined {
        println!("  [{}] {}", q.code, q.reason);
    }
    for d in &status.damaged_checkpoints {
        println!("  ! damaged checkpoint skipped: {d}");
    }
    for m in &status.missing_fx_rates {
        println!(
            "  ! no FX rate for {} at {}: {} open invoice(s) left out of reporting-currency totals",
            m.currency, m.as_of, m.invoices
        );
    }
    println!();
    println!("{:<14} {:>12}  last change (UTC)", "table", "rows");
    for (name, rows) in &status.tables {
        let last = status
            .last_change
            .get(name)
            .map(String::as_str)
            .unwrap_or("-");
        println!("{name:<14} {rows:>12}  {last}");
    }
}
