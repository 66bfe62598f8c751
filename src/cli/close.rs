//! `arstream close PERIOD`: a month's KPI summary, as published, kept as the period's figures.

use std::process::ExitCode;

use anyhow::Context;

use super::GlobalArgs;
use crate::publish::Publisher;
use crate::publish::closed::Period;
use crate::service::models::ModelTables;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The KPI summary as of the month's last day, computed with the plain views on the published tables as known now (or at --as-known), is appended to the Delta table closed_periods beside them, once: a closed period is never closed again, so the figures reported stay as they were whatever back-dated changes arrive later. Read them with `arstream sql --as-known now \"SELECT * FROM closed_periods\"`, or any Delta reader. See docs/scale-out.md.\n\nExamples:\n  arstream close 2026-11\n  arstream close 2026-11 --as-known 2026-12-03T09:00 --published s3://lake/arstream"
)]
pub struct CloseArgs {
    /// The month to close: YYYY-MM (it must have ended)
    #[arg(value_parser = Period::parse)]
    pub period: Period,
    /// Close it with the tables as published at this time [default: now] (as `kpi --as-known`)
    #[arg(long, value_name = "TIME", value_parser = super::as_known_time)]
    pub as_known: Option<chrono::DateTime<chrono::Utc>>,
    /// Where the state was published [default: from config [publish] url]
    #[arg(long, value_name = "URL")]
    pub published: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: CloseArgs) -> anyhow::Result<ExitCode> {
    let period = args.period;
    if period.last >= chrono::Utc::now().date_naive() {
        eprintln!(
            "error: {} has not ended (its last day is {})",
            period.name(),
            period.last
        );
        return Ok(ExitCode::from(super::INVALID));
    }
    let mut global = global.clone();
    global.offline = true;
    global.as_of = Some(period.last.to_string());
    let session = super::open_session(&global).await?;
    let Some(url) = (args.published.clone()).or(session.config.publish.url.clone()) else {
        eprintln!(
            "error: no published state to close a period of: give --published URL, or url = \"…\" under [publish] in the config"
        );
        return Ok(ExitCode::from(super::INVALID));
    };
    let known_at = args.as_known.unwrap_or_else(chrono::Utc::now);
    let (engine, params) = session
        .engine_published(Some(known_at), Some(&url), None)
        .await?;
    // The KPI summary reads the cash forecast's backtest, made from the same tables.
    if let Err(e) = ModelTables::put_forecast_accuracy(&engine, params.as_of, None).await {
        eprintln!("warning: the cash forecast's backtest could not be made: {e}");
    }
    let publisher = Publisher::of_config(&url, &session.config.publish)?;
    let kept = (publisher.close(&engine, period, known_at).await)
        .with_context(|| format!("closing {}", period.name()))?;
    let json = crate::engine::rows_as_json(&kept)?;
    let row = json.first().cloned().unwrap_or_default();
    println!(
        "closed {} (as of {}, the tables as published at {}): total AR {}, DSO {}, CEI {}; kept in {}",
        period.name(),
        period.last,
        known_at.to_rfc3339(),
        row.get("total_ar").cloned().unwrap_or_default(),
        row.get("dso").cloned().unwrap_or_default(),
        row.get("cei").cloned().unwrap_or_default(),
        publisher.location().url_of(crate::publish::closed::TABLE)
    );
    Ok(ExitCode::SUCCESS)
}
