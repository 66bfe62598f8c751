//! `arstream model report`: the risk model's backtest beside its baseline.

use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;

use super::GlobalArgs;
use crate::dates::days;
use crate::models::history::History;
use crate::models::risk;

#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Backtest the risk model: train as of a cut-off before the as-of date (--as-of), score
    /// the invoices open at the cut-off or issued after it whose outcome is decided by the
    /// as-of date, and compare ROC AUC and Brier score with the baseline (each customer's
    /// share of late invoices at the cut-off)
    #[command(
        after_help = "Examples:\n  arstream model report\n  arstream model report --as-of 2025-12-31 --late-days 30 --format json\n  arstream model report --cutoff 2025-06-30"
    )]
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The training date [default: the as-of date minus [risk] backtest_days, 180]
    #[arg(long, value_name = "DATE")]
    pub cutoff: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

pub async fn run(global: &GlobalArgs, args: ModelArgs) -> anyhow::Result<ExitCode> {
    let ModelCommand::Report(args) = args.command;
    let mut session = super::open_session(global).await?;
    let (engine, params) = session.engine_without_aging().await?;
    let options = session.risk_options();
    let risk = &session.config.risk;
    let cutoff = args
        .cutoff
        .unwrap_or(params.as_of - chrono::Duration::days(risk.backtest_days.into()));
    if cutoff >= params.as_of {
        anyhow::bail!(
            "the cut-off {cutoff} must come before the as-of date {}",
            params.as_of
        );
    }
    let history = History::read(&engine)
        .await
        .context("reading the receivables history")?;
    let report = risk::backtest(&history, days(params.as_of), days(cutoff), options)
        .context("backtesting the risk model")?;
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Table => print_table(&report),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &risk::Backtest) {
    let better = |model: f64, baseline: f64, higher_is_better: bool| {
        let wins = if higher_is_better {
            model > baseline
        } else {
            model < baseline
        };
        if wins {
            "model better"
        } else {
            "baseline better or equal"
        }
    };
    println!(
        "Risk model backtest: late = paid over {} days after due, or unpaid",
        r.late_days
    );
    println!(
        "  trained as of {} on {} invoices ({} rows), tested on {} invoices to {} ({:.1}% late)",
        r.cutoff,
        r.train_invoices,
        r.train_rows,
        r.test_invoices,
        r.as_of,
        100.0 * r.test_late_share
    );
    println!();
    println!("  {:<12} {:>8} {:>10}", "", "model", "baseline");
    println!(
        "  {:<12} {:>8.3} {:>10.3}   {}",
        "ROC AUC",
        r.auc,
        r.baseline_auc,
        better(r.auc, r.baseline_auc, true)
    );
    println!(
        "  {:<12} {:>8.4} {:>10.4}   {}",
        "Brier score",
        r.brier,
        r.baseline_brier,
        better(r.brier, r.baseline_brier, false)
    );
    println!();
    println!(
        "  baseline: each customer's share of late invoices at the cut-off (overall share for a new one)"
    );
}
