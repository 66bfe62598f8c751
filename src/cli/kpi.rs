//! `arstream kpi`: the KPI summary as of a date, or its history over a range of dates.

use std::process::ExitCode;

use anyhow::Context;
use arrow::array::RecordBatch;
use chrono::NaiveDate;

use super::GlobalArgs;
use super::output::{self, Format};
use crate::engine::Engine;
use crate::pipeline::history;
use crate::service::models::ModelTables;
use crate::service::stored_models;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  arstream kpi --as-of 2025-12-31\n  arstream kpi --window 31 --format json\n  arstream kpi --from 2025-01-31 --to 2025-12-31 --every month\n  arstream kpi --from 2025-01-01 --to 2025-12-31 --every week --out history.parquet\n  arstream kpi --as-of 2026-11-30 --as-known 2026-12-03   (the month-end figures as published on 3 December)"
)]
pub struct KpiArgs {
    /// Output format (table: for people, with units)
    #[arg(long, value_enum, default_value_t = KpiFormat::Table)]
    pub format: KpiFormat,
    /// First as-of date of a history (with --to)
    #[arg(long, value_name = "DATE", requires = "to")]
    pub from: Option<NaiveDate>,
    /// Last as-of date of a history (with --from)
    #[arg(long, value_name = "DATE", requires = "from")]
    pub to: Option<NaiveDate>,
    /// Step of a history
    #[arg(long, value_enum, default_value_t = Every::Month)]
    pub every: Every,
    /// Write the history as Parquet to this file or object-store URL instead of printing it
    #[arg(long, value_name = "URL", requires = "from")]
    pub out: Option<String>,
    /// Print on stderr how long loading, making the views and computing the summary took
    #[arg(long)]
    pub timing: bool,
    #[command(flatten)]
    pub as_known: super::AsKnownArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KpiFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Every {
    Day,
    Week,
    Month,
}

pub async fn run(global: &GlobalArgs, args: KpiArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let mut session = super::open_session(&args.as_known.global(global)).await?;
    let opened = started.elapsed();
    let published = args.as_known.published_engine(&session).await?;
    let from_published = published.is_some();
    let (engine, params) = match published {
        Some(engine) => engine,
        None => session.engine_without_aging().await?,
    };
    let made = started.elapsed();
    warn_missing_rates(&engine).await?;
    if let (Some(from), Some(to)) = (args.from, args.to) {
        return history(&engine, params, from, to, args).await;
    }
    if engine.reads_derived(crate::service::kpi::KpiSummary::QUERY) {
        // The models stored beside the state are of the state now, not as published.
        let stored = match from_published {
            true => None,
            false => stored_models::of(&session.state, &engine, &params, session.risk_options()),
        };
        let made = ModelTables::put_forecast_accuracy(&engine, params.as_of, stored.as_ref()).await;
        if let Err(e) = made {
            eprintln!("warning: the cash forecast's backtest could not be made: {e}");
        }
    }
    let checked = started.elapsed();
    let (schema, summary) = engine
        .query_with_schema("SELECT * FROM kpi_summary")
        .await?;
    let summarized = started.elapsed();
    let aging = aging_totals(&engine).await?;
    if args.timing {
        eprintln!(
            "timing: load and catch up {:.3} s, tables and views {:.3} s, cash forecast backtest {:.3} s, kpi_summary {:.3} s, aging {:.3} s",
            opened.as_secs_f64(),
            (made - opened).as_secs_f64(),
            (checked - made).as_secs_f64(),
            (summarized - checked).as_secs_f64(),
            (started.elapsed() - summarized).as_secs_f64()
        );
    }
    match args.format {
        KpiFormat::Json => {
            let mut object = first_row_json(&summary)?;
            object.insert(
                "aging".into(),
                serde_json::Value::Object(aging.into_iter().collect()),
            );
            println!("{}", serde_json::to_string_pretty(&object)?);
        }
        KpiFormat::Csv => output::print(Format::Csv, &schema, &summary)?,
        KpiFormat::Table => print_summary(&first_row_json(&summary)?, &aging, &params.currency),
    }
    Ok(ExitCode::SUCCESS)
}

/// Warn (on stderr) about open invoices whose currency has no rate.
async fn warn_missing_rates(engine: &Engine) -> anyhow::Result<()> {
    let rows = engine
        .query("SELECT currency, invoices FROM missing_fx_rates")
        .await?;
    for row in crate::engine::rows_as_json(&rows)? {
        tracing::warn!(
            "no FX rate for {} at the as-of date: {} invoice(s) left out of the reporting-currency totals",
            row["currency"].as_str().unwrap_or("?"),
            row["invoices"]
        );
    }
    Ok(())
}

/// Bucket → open amount in the reporting currency, in bucket order, every bucket present.
async fn aging_totals(engine: &Engine) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let rows = engine
        .query(
            "SELECT bucket, round(CAST(open_amount_rc AS DOUBLE), 2) AS amount \
             FROM aging_totals ORDER BY ord",
        )
        .await?;
    let mut out = Vec::new();
    for row in crate::engine::rows_as_json(&rows)? {
        let bucket = row["bucket"].as_str().unwrap_or_default().to_string();
        out.push((bucket, row["amount"].clone()));
    }
    Ok(out)
}

fn first_row_json(
    batches: &[RecordBatch],
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    crate::engine::rows_as_json(batches)?
        .into_iter()
        .next()
        .context("kpi_summary returned no row")
}

/// The summary for people: every figure with its unit.
fn print_summary(
    k: &serde_json::Map<String, serde_json::Value>,
    aging: &[(String, serde_json::Value)],
    ccy: &str,
) {
    let num = |key: &str| k.get(key).and_then(|v| v.as_f64());
    let money = |key: &str| {
        num(key)
            .map(|v| format!("{} {ccy}", thousands(v)))
            .unwrap_or_else(|| "n/a".into())
    };
    let days = |key: &str| {
        num(key)
            .map(|v| format!("{v:.1} days"))
            .unwrap_or_else(|| "n/a".into())
    };
    let pct = |key: &str, scale: f64| {
        num(key)
            .map(|v| format!("{:.2} %", v * scale))
            .unwrap_or_else(|| "n/a".into())
    };
    let text = |key: &str| {
        k.get(key)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    println!(
        "KPI summary as of {}, window {} days, in {ccy}",
        text("as_of"),
        text("window_days")
    );
    println!();
    let lines: Vec<(&str, String)> = vec![
        ("Total AR", money("total_ar")),
        ("Current AR", money("current_ar")),
        ("Past-due AR", money("past_due_ar")),
        ("Unapplied cash", money("unapplied_cash")),
        ("Credit sales in window", money("credit_sales")),
        ("DSO", days("dso")),
        ("Best-possible DSO", days("best_possible_dso")),
        ("ADD (average days delinquent)", days("add")),
        ("ADD, amount-weighted", days("add_weighted")),
        ("Countback DSO", days("countback_dso")),
        ("CEI", pct("cei", 100.0)),
        ("Bad-debt ratio", pct("bad_debt_ratio", 100.0)),
        ("Recovery rate", pct("recovery_rate", 100.0)),
        ("Promises kept", pct("ptp_kept_rate", 100.0)),
        ("Dispute resolution (mean)", days("dispute_resolution_days")),
        (
            "Dispute resolution (median)",
            days("dispute_resolution_days_median"),
        ),
        ("Cash forecast WAPE", pct("cash_forecast_wape", 100.0)),
    ];
    for (label, value) in lines {
        println!("  {label:<32} {value:>24}");
    }
    if num("unconverted_invoices").unwrap_or(0.0) > 0.0 {
        println!(
            "  ! {} invoice(s) have no FX rate and are not in the totals",
            text("unconverted_invoices")
        );
    }
    println!();
    println!("Aging ({ccy})");
    for (bucket, amount) in aging {
        println!(
            "  {bucket:<32} {:>24}",
            amount.as_f64().map(thousands).unwrap_or_default()
        );
    }
}

/// 1234567.891 → "1,234,567.89".
fn thousands(v: f64) -> String {
    let s = format!("{:.2}", v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{}{out}.{frac}", if v < 0.0 { "-" } else { "" })
}

async fn history(
    engine: &Engine,
    params: crate::engine::params::KpiParams,
    from: NaiveDate,
    to: NaiveDate,
    args: KpiArgs,
) -> anyhow::Result<ExitCode> {
    let every = match args.every {
        Every::Day => history::Every::Day,
        Every::Week => history::Every::Week,
        Every::Month => history::Every::Month,
    };
    let found = history::kpi_history(engine, params, from, to, every).await?;
    let (schema, batches) = found.context("no as-of date between --from and --to")?;
    if let Some(out) = args.out {
        let (folder, file) = match out.rsplit_once('/') {
            Some((f, name)) if name.ends_with(".parquet") => (f.to_string(), name.to_string()),
            _ => (out.clone(), "kpi_history.parquet".to_string()),
        };
        let folder = if folder.is_empty() {
            ".".to_string()
        } else {
            folder
        };
        let location = crate::store::open(&folder, true)?;
        let path = location.child(&file);
        crate::parquet_io::put(location.store.as_ref(), &path, &schema, &batches).await?;
        println!(
            "wrote {} as-of dates to {}",
            batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            location.url_of(&file)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let format = match args.format {
        KpiFormat::Table => Format::Table,
        KpiFormat::Json => Format::Json,
        KpiFormat::Csv => Format::Csv,
    };
    output::print(format, &schema, &batches)?;
    Ok(ExitCode::SUCCESS)
}
