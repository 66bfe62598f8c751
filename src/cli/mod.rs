//! The command line: one file per command; shared set-up (config, feed, state) lives here.

mod act;
mod close;
mod cluster;
mod dashboard;
mod generate;
mod import;
mod kpi;
mod model;
mod output;
mod outreach;
mod pipeline;
mod publish;
mod run;
mod serve;
mod sql;
mod status;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::service::session::{Session, SessionOptions};

/// arstream: an SQL-first collections engine for accounts receivable.
///
/// ERP change feeds (Parquet files under <feed>/<entity>/) are applied exactly once to
/// current-state tables, which you query with SQL.
#[derive(Debug, Parser)]
#[command(
    name = "arstream",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Exit code of an invalid pipeline or command line.
pub(crate) const INVALID: u8 = 2;

/// The heading of the options every command takes in `--help`…
const GLOBAL: &str = "Global options";
/// …and of those that set what the KPIs and models compute, for the commands that read the
/// state (not `generate` or `import`, which ignore them).
const KPI: &str = "KPI and model options (commands that read the state)";

/// Options every command takes; the command line wins over `arstream.toml`.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Config file [default: ./arstream.toml when it exists]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Feed root: a path, file://, s3://, gs://, az:// or memory:// URL [default: from config]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "URL")]
    pub feed: Option<String>,
    /// The feed's layout: arstream (the contract's own), dms (AWS DMS to S3), sap (SAP
    /// replication flows) or debezium (Kafka Connect's S3 sink of Debezium events) [default:
    /// from config, arstream]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FORMAT")]
    pub feed_format: Option<crate::feed::format::FeedFormat>,
    /// A mapping file: which source table is which entity, which column which (TOML,
    /// docs/change-feed.md) [default: from config]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub feed_map: Option<PathBuf>,
    /// The config file once read, shared by every session this command opens.
    #[arg(skip)]
    pub loaded_config: std::sync::Arc<std::sync::OnceLock<crate::config::Config>>,
    /// State folder: a path or object-store URL [default: from config]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "URL")]
    pub state: Option<String>,
    /// Do not look for new feed files: use the state as last checkpointed. Loading it still
    /// re-reads from the feed the files applied after its last snapshot (the feed is the log),
    /// and `<entity>_changes` reads the feed when queried
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub offline: bool,
    /// As-of date of the KPI views: YYYY-MM-DD, `today`, or `feed` (day of the latest change)
    #[arg(long, global = true, help_heading = KPI, value_name = "DATE")]
    pub as_of: Option<String>,
    /// KPI window in days [default: from config, 90]
    #[arg(long, global = true, help_heading = KPI, value_name = "DAYS")]
    pub window: Option<i32>,
    /// Reporting currency [default: from config, USD]
    #[arg(long, global = true, help_heading = KPI, value_name = "CCY")]
    pub currency: Option<String>,
    /// Compute the KPIs with the plain views over the state tables instead of the ledger:
    /// the reference definition, slower on a big state
    #[arg(long, global = true, help_heading = KPI)]
    pub plain: bool,
    /// The risk model's late: paid more than this many days after the due date, or not at
    /// all [default: from config [risk] late_days, 30]
    #[arg(long, global = true, help_heading = KPI, value_name = "DAYS")]
    pub late_days: Option<i32>,
    /// Who is working: a collector's id, recorded on every action (`act`, the dashboard's
    /// keys) [env: ARSTREAM_USER]
    #[arg(long = "as", global = true, env = "ARSTREAM_USER", hide_env = true, help_heading = GLOBAL, value_name = "ID")]
    pub who: Option<String>,
    /// Log format: text, or json (one object per line, for services and log collectors)
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log output (-v info, -vv debug); logs go to stderr
    #[arg(short, long, global = true, help_heading = GLOBAL, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `--as-known TIME [--published URL]`: a command on the state as published at a time.
#[derive(Debug, Clone, clap::Args)]
pub struct AsKnownArgs {
    /// Run on the state as it was published at this time (each Delta table of [publish] url
    /// at its latest version then): YYYY-MM-DD (the end of that day, UTC),
    /// YYYY-MM-DDTHH:MM[:SS] (UTC), RFC 3339 with an offset, or now (the latest). The views
    /// are the plain ones
    #[arg(long, value_name = "TIME", value_parser = as_known_time)]
    pub as_known: Option<chrono::DateTime<chrono::Utc>>,
    /// Run the views on the Ballista cluster whose scheduler is at URL (df://HOST:PORT; see
    /// `arstream scheduler`), over the published tables [default: from config [engine] cluster]
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
    /// Where the state was published (with --as-known or --cluster) [default: from config
    /// [publish] url]
    #[arg(long, value_name = "URL")]
    pub published: Option<String>,
}

/// A time for `--as-known`: a date (its end, UTC), a date and time (UTC), or RFC 3339.
pub(crate) fn as_known_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    let text = text.trim();
    if text == "now" {
        return Ok(Utc::now());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        format!(
            "'{text}' is not a time: give YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC), RFC 3339 or now"
        )
    })?;
    let end = day
        .and_hms_milli_opt(23, 59, 59, 999)
        .expect("a valid time of day");
    Ok(Utc.from_utc_datetime(&end))
}

impl AsKnownArgs {
    /// The command line's options, offline when as known (the state's files are not read
    /// for it; the published tables are).
    pub fn global(&self, global: &GlobalArgs) -> GlobalArgs {
        let mut global = global.clone();
        global.offline |= self.as_known.is_some() || self.cluster.is_some();
        global
    }

    /// The engine these options ask for: over the published tables (as known at a time, on a
    /// cluster: the option's or the config's) or, with neither, `None` (the live state's).
    pub async fn published_engine(
        &self,
        session: &crate::service::session::Session,
    ) -> anyhow::Result<Option<(crate::engine::Engine, crate::engine::params::KpiParams)>> {
        let cluster = session.cluster(self.cluster.as_deref());
        if self.as_known.is_none() && cluster.is_none() {
            anyhow::ensure!(
                self.published.is_none(),
                "--published is where --as-known or --cluster read the published tables: give one of them"
            );
            return Ok(None);
        }
        let published = self.published.as_deref();
        let engine =
            (session.engine_published(self.as_known, published, cluster.as_deref())).await?;
        Ok(Some(engine))
    }
}

/// The stack of the runtime's threads (what Ballista's own binaries give theirs).
pub const STACK_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline as a service: apply new feed files, refresh the KPIs, write the outputs,
    /// log a line per refresh, until Ctrl-C (--once: one refresh)
    Run(run::RunArgs),
    /// List, validate or run once the pipelines of pipelines/*.toml
    Pipeline(pipeline::PipelineArgs),
    /// Run one SQL query, or open an interactive SQL shell when no query is given
    Sql(sql::SqlArgs),
    /// Print the KPI summary (DSO, CEI, ADD, aging, …) as of a date, or its history
    Kpi(kpi::KpiArgs),
    /// Show files applied and quarantined, rows per table and the last change per entity
    Status(status::StatusArgs),
    /// Write a synthetic ERP change feed (realistic payers, disputes, promises, FX)
    Generate(generate::GenerateArgs),
    /// Write another system's export as a feed (IBM's late-payment histories)
    Import(import::ImportArgs),
    /// The late-payment risk model and the cash forecast: their backtests beside naive baselines
    Model(model::ModelArgs),
    /// Dunning by policy (pipelines/outreach.toml): preview, send, log and replay reminders
    /// over email, SMS and webhooks, each message once
    Outreach(outreach::OutreachArgs),
    /// The live terminal dashboard: KPIs, aging, DSO, risk, worklist, forecast, outreach and
    /// feed health, laid out by dashboards/*.toml (what `run` shows on a terminal; the
    /// dashboard alone never sends outreach)
    Dashboard(dashboard::DashboardArgs),
    /// The service (as `run --headless`) with SQL over the Postgres wire protocol on its
    /// snapshots, read-only, for psql, BI tools, JDBC and Python
    Serve(serve::ServeArgs),
    /// Record what a collector did: a contact, a promise to pay, a dispute opened or closed
    /// (written to the actions feed and applied like any feed file)
    Act(act::ActArgs),
    /// Publish the state as Delta Lake tables (one per entity and per <entity>_changes) that
    /// Spark, Trino, DuckDB, Polars or pandas read
    Publish(publish::PublishArgs),
    /// Keep a month's KPI summary, as published, as the period's figures (closed_periods)
    Close(close::CloseArgs),
    /// A Ballista scheduler that runs arstream's views on executors (`sql --cluster`)
    Scheduler(cluster::SchedulerArgs),
    /// A Ballista executor for `arstream scheduler`: runs the tasks of `sql --cluster` queries
    Executor(cluster::ExecutorArgs),
}

/// Parse the command line, run the command, and turn any error into one line on stderr.
pub fn main() -> ExitCode {
    return_large_frees_to_the_system();
    let cli = Cli::parse();
    // A cluster's scheduler and executors serve on whoever reads their output: a reader that
    // goes away must not stop them (a closed pipe fails the write, which they survive).
    if !matches!(cli.command, Command::Scheduler(_) | Command::Executor(_)) {
        restore_sigpipe();
    }
    init_logging(cli.global.verbose, cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Decoding a view's plan (a Ballista scheduler or executor) recurses once per node.
        .thread_stack_size(STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(&cli.global, args).await,
            Command::Pipeline(args) => pipeline::run(&cli.global, args).await,
            Command::Sql(args) => sql::run(&cli.global, args).await,
            Command::Status(args) => status::run(&cli.global, args).await,
            Command::Kpi(args) => kpi::run(&cli.global, args).await,
            Command::Generate(args) => generate::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Model(args) => model::run(&cli.global, args).await,
            Command::Outreach(args) => outreach::run(&cli.global, args).await,
            Command::Dashboard(args) => dashboard::run(&cli.global, args).await,
            Command::Serve(args) => serve::run(&cli.global, args).await,
            Command::Act(args) => act::run(&cli.global, args).await,
            Command::Publish(args) => publish::run(&cli.global, args).await,
            Command::Close(args) => close::run(&cli.global, args).await,
            Command::Scheduler(args) => cluster::scheduler(args).await,
            Command::Executor(args) => cluster::executor(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Die quietly when the reader of stdout goes away (`arstream sql … | head`), as command-line
/// tools do, instead of panicking on the failed write.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before the runtime's threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Serve allocations of 1 MiB and more (Arrow buffers) straight from the system and give
/// them back when freed. glibc otherwise raises that threshold as the state grows and keeps
/// freed buffers, so the resident size of a large state drifts well above what it holds.
fn return_large_frees_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// An error and its causes on one line, without repeating a cause the line already says.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let letters = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let tail = text.split_once(": ").map(|(_, t)| t).unwrap_or(&text);
        if letters(&line).contains(&letters(tail)) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        // Ballista's scheduler logs an error for every stage whose metrics its own display
        // cannot line up with the plan: not an error of the query.
        0 => "warn,arstream::sql_server=info,ballista_scheduler::display=off",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARSTREAM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::dashboard::logs::Writer)
        .with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// How logs (and `run --watch`'s refresh lines) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people
    #[default]
    Text,
    /// One JSON object per line, for log collectors
    Json,
}

impl GlobalArgs {
    /// The session these options ask for.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            config: self.config.clone(),
            feed: self.feed.clone(),
            state: self.state.clone(),
            offline: self.offline,
            as_of: self.as_of.clone(),
            window: self.window,
            currency: self.currency.clone(),
            plain: self.plain,
            late_days: self.late_days,
            feed_format: self.feed_format,
            feed_map: self.feed_map.clone(),
            loaded: self.loaded_config.clone(),
            who: self.who.clone().filter(|w| !w.trim().is_empty()),
        }
    }
}

/// Open the session of the command line, with a progress bar while catching up on a terminal.
pub(crate) async fn open_session(global: &GlobalArgs) -> anyhow::Result<Session> {
    let bar = progress_bar();
    let progress = |done: usize, total: usize| {
        if let Some(bar) = &bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    };
    let session = Session::open(&global.session_options(), Some(&progress), None).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(session)
}

/// A progress bar on stderr when it is a terminal.
pub(crate) fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    let style =
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} files {elapsed}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message("applying");
    Some(bar)
}
