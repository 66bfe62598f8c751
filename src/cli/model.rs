//! `arstream model report`: the risk model's and the cash forecast's backtests, each beside
//! its baselines.

use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;

use super::GlobalArgs;
use crate::models::cash_backtest::CashBacktest;
use crate::models::risk;
use crate::models::rolling::{self, Rolling, Spread};
use crate::service::model_report::{self, Backtests, ReportRequest};

#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Backtest the risk model and the cash forecast. The risk model: train as of a cut-off
    /// before the as-of date (--as-of), score the invoices open at the cut-off or issued after
    /// it whose outcome is decided by the as-of date, and compare ROC AUC and Brier score with
    /// the baseline (each customer's share of late invoices at the cut-off). The forecast:
    /// forecast 13 weeks before the as-of date, compare each week with the cash that came in
    /// (WAPE, band coverage), beside forecasting every invoice paid on its due date and at its
    /// customer's average delay
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
    /// Backtest at this many evaluation days (the as-of date the last), for each figure's
    /// mean and spread; 1: the as-of date only
    #[arg(long, value_name = "N", default_value_t = 13, value_parser = clap::value_parser!(u16).range(1..=120))]
    pub origins: u16,
    /// Days between two evaluation days
    #[arg(long, value_name = "DAYS", default_value_t = 28, value_parser = clap::value_parser!(i32).range(1..=366))]
    pub every: i32,
    /// Output format (json: every figure, each week of the forecast's backtest, and each
    /// evaluation day of the rolling backtest)
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    #[command(flatten)]
    pub as_known: super::AsKnownArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

pub async fn run(global: &GlobalArgs, args: ModelArgs) -> anyhow::Result<ExitCode> {
    let ModelCommand::Report(args) = args.command;
    let mut session = super::open_session(&args.as_known.global(global)).await?;
    let published = args.as_known.published_engine(&session).await?;
    let of_live_state = published.is_none();
    let (engine, params) = match published {
        Some(engine) => engine,
        None => session.engine_without_aging().await?,
    };
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
    let request = ReportRequest {
        cutoff,
        origins: args.origins,
        every: args.every,
    };
    let backtests = model_report::backtests(&session, &engine, &params, request, of_live_state)
        .await
        .context("reading the receivables history")?;
    // A history that ended long before the as-of date (an imported export, and `--as-of`
    // left to today) backtests nothing: say which date would.
    if let Some(last) = backtests.feed_ended {
        eprintln!(
            "note: the feed's last invoice or settlement is dated {last}, {} days before the as-of date {}: `--as-of feed` (or a date) backtests the feed's own time",
            (params.as_of - last).num_days(),
            params.as_of
        );
    }
    let Backtests {
        risk,
        forecast,
        rolling,
        ..
    } = backtests;
    let failed = risk.is_err() || forecast.is_err();
    let report = Report {
        risk_error: risk.as_ref().err().cloned(),
        forecast_error: forecast.as_ref().err().cloned(),
        risk: risk.ok(),
        forecast: forecast.ok(),
        rolling,
    };
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Table => {
            match (&report.risk, &report.risk_error) {
                (Some(r), _) => print_table(r, args.cutoff.is_none()),
                (None, e) => println!(
                    "Risk model backtest: not made: {}",
                    e.as_deref().unwrap_or("")
                ),
            }
            println!();
            match (&report.forecast, &report.forecast_error) {
                (Some(f), _) => print_forecast(f),
                (None, e) => println!(
                    "Cash forecast backtest: not made: {}",
                    e.as_deref().unwrap_or("")
                ),
            }
            if let Some(r) = &report.rolling {
                println!();
                print_rolling(r);
            }
        }
    }
    for error in [&report.risk_error, &report.forecast_error]
        .into_iter()
        .flatten()
    {
        eprintln!("error: {error}");
    }
    Ok(match failed {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
    })
}

/// Both backtests: `model report`'s JSON is one object with the keys of both, and
/// `risk_error` / `forecast_error` for one that could not be made.
#[derive(serde::Serialize)]
struct Report {
    #[serde(flatten)]
    risk: Option<risk::Backtest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_error: Option<String>,
    #[serde(flatten)]
    forecast: Option<CashBacktest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forecast_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rolling: Option<Rolling>,
}

fn better(model: f64, baseline: f64, higher_is_better: bool) -> &'static str {
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
}

/// `judging`: this is the backtest that decides whether the model's scores are used.
fn print_table(r: &risk::Backtest, judging: bool) {
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
    match (r.auc, r.baseline_auc) {
        (Some(auc), Some(baseline)) => println!(
            "  {:<12} {:>8.3} {:>10.3}   {}",
            "ROC AUC",
            auc,
            baseline,
            better(auc, baseline, true)
        ),
        _ => println!(
            "  {:<12} {:>8} {:>10}   not measurable: {} late and {} on-time test invoices ({} of each needed)",
            "ROC AUC",
            "-",
            "-",
            r.late_invoices,
            r.on_time_invoices,
            risk::MIN_CASES_FOR_AUC
        ),
    }
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
    if let (Some(model), Some(baseline)) = (r.auc, r.baseline_auc)
        && model <= baseline
        && judging
    {
        println!(
            "  the model loses here: the worklist and outreach rank by the baseline's scores (their reasons say so)"
        );
    }
}

fn print_forecast(f: &CashBacktest) {
    println!(
        "Cash forecast backtest: forecast as of {} ({} open invoices), receipts in the 13 weeks after ({:.2} {})",
        f.forecast_from, f.forecast_invoices, f.actual_receipts, f.currency
    );
    println!();
    println!(
        "  {:<10} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "week from", "actual", "forecast", "low (80 %)", "high (80 %)", "due date", "avg delay"
    );
    for w in &f.forecast_weeks {
        println!(
            "  {:<10} {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
            w.week_start.to_string(),
            w.actual,
            w.expected,
            w.low,
            w.high,
            w.due_date,
            w.average_delay
        );
    }
    println!();
    println!("  {:<28} {:>8}", "", "WAPE");
    println!("  {:<28} {:>7.1}%", "forecast", 100.0 * f.wape);
    let vs = |b: f64| better(f.wape, b, false);
    println!(
        "  {:<28} {:>7.1}%   {}",
        "baseline: paid on due date",
        100.0 * f.wape_due_date,
        vs(f.wape_due_date)
    );
    println!(
        "  {:<28} {:>7.1}%   {}",
        "baseline: average delay",
        100.0 * f.wape_average_delay,
        vs(f.wape_average_delay)
    );
    println!(
        "  band coverage: {:.0}% of the 13 weeks inside the 80 % band ({} band)",
        100.0 * f.band_coverage,
        f.band
    );
}

/// A spread as `mean (min–max)`, `-` where nothing was measured.
fn spread(s: &Option<Spread>, percent: bool, places: usize) -> String {
    let scale = if percent { 100.0 } else { 1.0 };
    let unit = if percent { " %" } else { "" };
    match s {
        None => "-".into(),
        Some(s) => format!(
            "{:.places$}{unit} ({:.places$}–{:.places$})",
            scale * s.mean,
            scale * s.min,
            scale * s.max
        ),
    }
}

/// A difference's mean and the 90 % bootstrap interval of it, signed: `+0.051 [+0.045, +0.057]`
/// (`-` where nothing was measured; no interval over too few days).
fn difference(s: &Option<Spread>, percent: bool, places: usize) -> String {
    let scale = if percent { 100.0 } else { 1.0 };
    let unit = if percent { " pt" } else { "" };
    match s {
        None => "-".into(),
        Some(s) => {
            let mean = format!("{:+.places$}{unit}", scale * s.mean);
            match s.interval {
                Some([lo, hi]) => format!(
                    "{mean}, 90 % interval [{:+.places$}, {:+.places$}]",
                    scale * lo,
                    scale * hi
                ),
                None => format!("{mean} (too few days for an interval)"),
            }
        }
    }
}

fn print_rolling(r: &Rolling) {
    let (first, last) = (r.origins.first(), r.origins.last());
    println!(
        "Rolling backtest: {} evaluation days every {} days, {} to {}: mean (min–max) over the days each figure could be measured on",
        r.origins.len(),
        r.every_days,
        first.map_or(String::new(), |o| o.as_of.to_string()),
        last.map_or(String::new(), |o| o.as_of.to_string()),
    );
    println!();
    let n = r.origins.len();
    let measured = |s: &Option<Spread>| s.as_ref().map_or(0, |s| s.count);
    println!(
        "  {:<14} {:>24} {:>24}   model better",
        "", "model", "baseline"
    );
    println!(
        "  {:<14} {:>24} {:>24}   {} of {} measured ({} of {} days with fewer than {} late or on-time test invoices)",
        "ROC AUC",
        spread(&r.auc, false, 3),
        spread(&r.baseline_auc, false, 3),
        r.auc_wins,
        measured(&r.auc),
        (r.origins.iter())
            .filter(|o| o.late_invoices.is_some() && o.auc.is_none())
            .count(),
        n,
        risk::MIN_CASES_FOR_AUC
    );
    println!(
        "  {:<14} model − baseline {}",
        "",
        difference(&r.auc_difference, false, 3)
    );
    println!(
        "  {:<14} {:>24} {:>24}   {} of {} ({} of {} days without a backtest: nothing to learn from yet)",
        "Brier score",
        spread(&r.brier, false, 4),
        spread(&r.baseline_brier, false, 4),
        r.brier_wins,
        measured(&r.brier),
        r.risk_not_made,
        n
    );
    println!();
    println!(
        "  {:<14} {:>24} {:>24} {:>24}   forecast better than both",
        "", "forecast", "paid on due date", "average delay"
    );
    println!(
        "  {:<14} {:>24} {:>24} {:>24}   {} of {} measured ({} of {} days: fewer than {} weeks with receipts, or none to forecast)",
        "WAPE",
        spread(&r.wape, true, 1),
        spread(&r.wape_due_date, true, 1),
        spread(&r.wape_average_delay, true, 1),
        r.wape_wins,
        measured(&r.wape),
        n - measured(&r.wape),
        n,
        rolling::MIN_WEEKS_WITH_RECEIPTS
    );
    println!(
        "  {:<14} forecast − paid on due date {}; forecast − average delay {}",
        "",
        difference(&r.wape_vs_due_date, true, 1),
        difference(&r.wape_vs_average_delay, true, 1)
    );
    println!(
        "  {:<14} {:>24}   of the 13 weeks inside the 80 % band",
        "band coverage",
        spread(&r.band_coverage, true, 0)
    );
    let by_week: Vec<String> = (r.band_coverage_by_week.iter())
        .map(|c| c.map_or("-".into(), |c| format!("{:.0}", 100.0 * c)))
        .collect();
    println!(
        "  {:<14} {}   (% of days inside the band, week 1 to 13 of the horizon)",
        "by week",
        by_week.join(" ")
    );
}
