//! `arstream dashboard`: the service with its live terminal dashboard in front (what
//! `arstream run` shows on a terminal), for controllers and collectors.

use std::process::ExitCode;

use super::GlobalArgs;
use super::INVALID;
use super::run::{dashboard_layout, plan_of, poll_interval, serve};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Keys: 1-9 or ←/→ tabs · Tab focus · ↑/↓ PgUp/PgDn move · / filter (column:value) · s/S sort · Enter drill into a customer · Esc back · ? help · q quit.\n\nExamples, on the bundled sample feed:\n  arstream dashboard                       (the controller's layout)\n  arstream dashboard --layout collector\n  arstream dashboard --layout my-board.toml --pipeline standard"
)]
pub struct DashboardArgs {
    /// The layout: a file of the dashboards folder without .toml, or a path [default:
    /// controller]
    #[arg(long, value_name = "NAME")]
    pub layout: Option<String>,
    /// The pipeline to run behind it [default: standard, when there is such a file]
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Write the pipeline's outputs under this folder or URL instead of its `out`
    #[arg(long, value_name = "URL")]
    pub out: Option<String>,
    /// Look at the feed every this many seconds instead of the pipeline's schedule (0.05 to
    /// 86400)
    #[arg(long, value_name = "SECONDS", value_parser = poll_interval, allow_negative_numbers = true)]
    pub interval: Option<f64>,
}

pub async fn run(global: &GlobalArgs, args: DashboardArgs) -> anyhow::Result<ExitCode> {
    let Some(plan) = plan_of(
        global,
        args.pipeline.as_deref(),
        args.out.as_deref(),
        args.interval,
    ) else {
        return Ok(ExitCode::from(INVALID));
    };
    let layout = match dashboard_layout(&plan, args.layout.as_deref()) {
        Ok(layout) => layout,
        Err(invalid) => {
            eprintln!("error: {invalid}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    if !crate::dashboard::on_terminal() {
        eprintln!(
            "error: the dashboard needs a terminal (stdin and stdout); `arstream run --headless` logs a line per refresh instead"
        );
        return Ok(ExitCode::from(INVALID));
    }
    serve(&plan, global.log_format, Some(layout), None).await
}
