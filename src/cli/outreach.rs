//! `arstream outreach`: preview, send, log and replay the dunning policy
//! (`pipelines/outreach.toml` unless `--policy` names another; `docs/outreach.md`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::GlobalArgs;
use super::output::{self, Format};
use crate::engine::Engine;
use crate::outreach::candidates::{self, Candidate};
use crate::outreach::ledger::{Ledger, Message, Status};
use crate::outreach::plan::compose;
use crate::outreach::replay::replay;
use crate::outreach::send::{SendReport, Sender};
use crate::outreach::{Outreach, OutreachError};
use crate::service::models::ModelTables;
use crate::service::session::Session;
use crate::service::stored_models;

#[derive(Debug, clap::Args)]
pub struct OutreachArgs {
    /// The policy file [default: outreach.toml of the pipelines folder]
    #[arg(long, global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[command(subcommand)]
    pub command: OutreachCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum OutreachCommand {
    /// Show the messages a send would make as of the as-of date, in words, without sending
    /// or recording anything
    #[command(
        after_help = "Examples:\n  arstream outreach preview\n  arstream outreach preview --as-of 2025-11-30 --format json\n  arstream outreach preview --customer C000007"
    )]
    Preview(PreviewArgs),
    /// Send the day's messages (the as-of date's): each is recorded in the ledger before it
    /// goes out and never goes out twice. Exit code 3: some messages wait for a server that is
    /// down (the next send retries them); 4: a server refused to take messages from us (its
    /// settings are to be fixed; the messages wait); 130: stopped by a signal before all went
    /// out (the rest go out next time)
    #[command(
        after_help = "Channels without a server write to the outbox (<state>/outreach/outbox):\n  ARSTREAM_SMTP_URL        email, e.g. smtp://127.0.0.1:2525 or smtps://user:pass@host:465\n  ARSTREAM_WEBHOOK_URL     webhooks (or [channels.webhook] url); ARSTREAM_WEBHOOK_SECRET signs them\n  ARSTREAM_SMS_URL         the SMS gateway (or [channels.sms] url); ARSTREAM_SMS_TOKEN authorizes\n\nExamples:\n  arstream outreach send\n  ARSTREAM_SMTP_URL=smtp://127.0.0.1:2525 arstream outreach send --as-of 2025-12-31"
    )]
    Send(SendArgs),
    /// List what the ledger holds: messages sent, failed or pending, and entries skipped, each
    /// with its reason
    #[command(
        after_help = "Examples:\n  arstream outreach log\n  arstream outreach log --status failed\n  arstream outreach log --format json"
    )]
    Log(LogArgs),
    /// Run the policy over history, day by day, with suppression and without sending: who
    /// would have been contacted when, by stage and channel, and how many of those invoices
    /// were then paid within 7 and 30 days
    #[command(
        after_help = "Examples:\n  arstream outreach replay --from 2025-10-01 --to 2025-12-31\n  arstream outreach replay --from 2025-12-01 --to 2025-12-31 --format json"
    )]
    Replay(ReplayArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutreachFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// Output format (json: every message with its body, recipient and channel)
    #[arg(long, value_enum, default_value_t = OutreachFormat::Table)]
    pub format: OutreachFormat,
    /// Only this customer's messages and skipped entries (its customer_id, as in the feed)
    #[arg(long, value_name = "ID")]
    pub customer: Option<String>,
    /// Show at most this many messages in full (table format; all are counted)
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Send even outside the policy's send window
    #[arg(long)]
    pub ignore_window: bool,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Output format (json: a list of entries with status, reason, rule, stage, customer_id,
    /// channel, message_id)
    #[arg(long, value_enum, default_value_t = OutreachFormat::Table)]
    pub format: OutreachFormat,
    /// Only entries with this status
    #[arg(long, value_enum)]
    pub status: Option<LogStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStatus {
    Sent,
    Skipped,
    Failed,
    Pending,
    /// Left pending, then decided again when it could go out (see its reason).
    Dropped,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The first day
    #[arg(long, value_name = "DATE")]
    pub from: NaiveDate,
    /// The last day
    #[arg(long, value_name = "DATE")]
    pub to: NaiveDate,
    /// Output format (json: adds every contact)
    #[arg(long, value_enum, default_value_t = OutreachFormat::Table)]
    pub format: OutreachFormat,
}

/// What outreach reads: the engine for it needs no more than these views do.
const CANDIDATES_VIEWS: &str = "SELECT * FROM outreach_candidates, invoice_outcomes";

/// Exit code of a send that left messages waiting for a server.
const WAITING: u8 = 3;

/// Exit code of a send whose server refused the sender (a configuration to fix); its
/// messages wait.
const REFUSED: u8 = 4;

/// Exit code of a send stopped by a signal before all its messages went out (as a shell
/// reports an interrupted command).
const STOPPED: u8 = 130;

pub async fn run(global: &GlobalArgs, args: OutreachArgs) -> anyhow::Result<ExitCode> {
    let policy_file = |config: &crate::config::Config| {
        args.policy
            .clone()
            .unwrap_or_else(|| PathBuf::from(&config.engine.pipelines).join("outreach.toml"))
    };
    if let OutreachCommand::Log(log_args) = &args.command {
        // The log reads the ledger only: a policy whose templates are broken still has one.
        let config = global.session_options().config_file()?;
        let state = global.state.clone().unwrap_or(config.state.url.clone());
        let location = crate::store::open(&state, false)
            .with_context(|| format!("opening the state folder '{state}'"))?;
        let folder =
            Outreach::ledger_folder_of(&policy_file(&config), &location.url).map_err(explain)?;
        return log(&folder, log_args);
    }
    let mut session = super::open_session(global).await?;
    let outreach = load(&policy_file(&session.config), &session.state.location().url)?;
    match args.command {
        OutreachCommand::Preview(a) => preview(&mut session, &outreach, a).await,
        OutreachCommand::Send(a) => send(&mut session, &outreach, a).await,
        OutreachCommand::Replay(a) => {
            if a.from > a.to {
                anyhow::bail!("--from {} comes after --to {}", a.from, a.to);
            }
            let (engine, params) = session.engine_for_query(CANDIDATES_VIEWS).await?;
            if a.to > params.as_of {
                anyhow::bail!(
                    "--to {} is after the as-of date {}: what followed is not known yet",
                    a.to,
                    params.as_of
                );
            }
            let found = replay(
                &outreach,
                &engine,
                &params,
                a.from,
                a.to,
                session.risk_options(),
            )
            .await
            .map_err(explain)?;
            match a.format {
                OutreachFormat::Json => println!("{}", serde_json::to_string_pretty(&found)?),
                OutreachFormat::Table => print_replay(&found)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        OutreachCommand::Log(_) => unreachable!("handled above"),
    }
}

fn load(file: &std::path::Path, state: &url::Url) -> anyhow::Result<Outreach> {
    Outreach::load(file, state).map_err(explain)
}

/// An outreach error as the one line the user reads.
fn explain(e: OutreachError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The candidates of the as-of date, with the risk model's tables made when a trigger reads
/// the segment.
async fn candidates_of(
    session: &mut Session,
    outreach: &Outreach,
) -> anyhow::Result<(Engine, NaiveDate, Vec<Candidate>)> {
    // Outreach reads no KPI ledger table: the engine is made without building it.
    let (engine, params) = session.engine_for_query(CANDIDATES_VIEWS).await?;
    let query = outreach.prepare(&engine).await.map_err(explain)?;
    if engine.reads_derived(&query) {
        let options = session.risk_options();
        let stored = stored_models::of(&session.state, &engine, &params, options);
        ModelTables::make(&engine, params.as_of, options, stored.as_ref())
            .await
            .context("scoring the invoices for the rules that read the risk segment")?;
    }
    let batches = match engine.query(&query).await {
        Ok(batches) => batches,
        Err(e) => {
            let why = candidates::explain_failure(&outreach.policy, &engine, e).await;
            return Err(explain(why));
        }
    };
    let rows = candidates::from_batches(&batches, outreach.policy.rules.len()).map_err(explain)?;
    Ok((engine, params.as_of, rows))
}

async fn preview(
    session: &mut Session,
    outreach: &Outreach,
    args: PreviewArgs,
) -> anyhow::Result<ExitCode> {
    let (_engine, day, rows) = candidates_of(session, outreach).await?;
    // Read only: what a send would decide, taken in memory.
    let mut ledger = Ledger::read(&outreach.ledger_folder)?;
    let now = Utc::now();
    let changes = (ledger.policy()).map(|(last, at)| (outreach.shape().changes_since(last), *at));
    let channels = outreach.channels().map_err(explain)?;
    let sender = Sender {
        policy: &outreach.policy,
        templates: &outreach.templates,
        channels: &channels,
    };
    let mut decided = SendReport::default();
    let (carried, planned) = sender
        .decide(&mut ledger, &rows, (day, now), &mut decided)
        .map_err(explain)?;
    let wanted = |customer: &str| args.customer.as_ref().is_none_or(|c| c == customer);
    // Left unconfirmed by a crash: they go again as they were made, first.
    let again = carried.len();
    let mut messages: Vec<(Message, Option<String>)> = (carried.into_iter())
        .filter(|m| wanted(&m.customer_id))
        .map(|m| (m, None))
        .collect();
    for draft in planned.drafts.iter().filter(|d| wanted(&d.customer_id)) {
        let via = sender.route(&ledger, draft.channel(&outreach.policy));
        let composed = compose(
            &outreach.policy,
            &outreach.templates,
            &rows,
            draft,
            (day, now),
            via.name(),
        );
        messages.push((composed.message, composed.problem));
    }
    let skips: Vec<_> = (planned.skips.iter())
        .filter(|s| wanted(&s.customer_id))
        .collect();
    if let Some(customer) = &args.customer
        && !rows.iter().any(|r| &r.customer_id == customer)
    {
        anyhow::bail!(
            "no invoice of customer '{customer}' is one the policy's rules hold for as of {day} (ids are as in the feed, such as {})",
            rows.first().map_or("C000007", |r| r.customer_id.as_str())
        );
    }
    match args.format {
        OutreachFormat::Json => {
            #[derive(Serialize)]
            struct Shown<'a> {
                #[serde(flatten)]
                message: &'a Message,
                problem: &'a Option<String>,
            }
            let shown: Vec<Shown> = (messages.iter())
                .map(|(m, problem)| Shown {
                    message: m,
                    problem,
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        OutreachFormat::Table => {
            let window = match &outreach.policy.window {
                Some(w) => format!("; send window {}", w.describe()),
                None => String::new(),
            };
            println!(
                "Outreach as of {day} by {} ({} message(s), {} skipped entries, {} waiting for tomorrow{window})",
                outreach.policy.file.display(),
                messages.len(),
                skips.len(),
                planned.deferred
            );
            if let Some((changes, at)) = &changes
                && !changes.is_empty()
            {
                println!(
                    "\nThe policy changed since the last send ({}); a send records the new one:",
                    at.format("%Y-%m-%d %H:%M UTC")
                );
                for change in changes {
                    println!("  - {change}");
                }
            }
            if again > 0 {
                println!(
                    "\n{again} message(s) left unconfirmed by a crash go again as they were made, with the same id"
                );
            }
            if decided.redecided + decided.waiting > 0 {
                println!(
                    "\nOf the messages an earlier send left waiting, {} are decided again (these include what they still have to say) and {} keep waiting for their server (`outreach log --status pending`)",
                    decided.redecided, decided.waiting
                );
            }
            for (m, problem) in messages.iter().take(args.limit) {
                let via = m.via.as_deref().unwrap_or("outbox");
                println!(
                    "\n──── {} · {} → {} [{}] via {via}",
                    m.customer_id,
                    m.channel.name(),
                    display_to(m),
                    m.language
                );
                println!(
                    "     rule {} · stage {} · {} invoice(s) · {}",
                    m.rule,
                    m.stage,
                    m.items.len(),
                    m.id
                );
                if let Some(p) = problem {
                    println!("     NOT SENDABLE: {p}");
                }
                if !m.subject.is_empty() {
                    println!("Subject: {}", m.subject);
                }
                println!("{}", m.body.trim_end());
            }
            if messages.len() > args.limit {
                println!(
                    "\n… and {} more (--limit, --customer, or --format json for all)",
                    messages.len() - args.limit
                );
            }
            if !skips.is_empty() {
                let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
                for s in &skips {
                    *reasons.entry(s.reason.as_str()).or_default() += 1;
                }
                let list: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
                println!(
                    "\nSkipped (would be due, but suppressed): {}",
                    list.join(", ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn display_to(m: &Message) -> &str {
    match m.to.is_empty() {
        true => "(no address)",
        false => &m.to,
    }
}

async fn send(
    session: &mut Session,
    outreach: &Outreach,
    args: SendArgs,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let (_engine, day, rows) = candidates_of(session, outreach).await?;
    let read = started.elapsed();
    let mut ledger = Ledger::open(&outreach.ledger_folder)?;
    let channels = outreach.channels().map_err(explain)?;
    let sender = Sender {
        policy: &outreach.policy,
        templates: &outreach.templates,
        channels: &channels,
    };
    let cancel = crate::service::signals::stop_on_signals();
    let report = sender
        .send(
            &mut ledger,
            &rows,
            day,
            Utc::now(),
            args.ignore_window,
            Some(&cancel),
        )
        .await
        .map_err(explain)?;
    tracing::debug!(
        candidates_s = read.as_secs_f64(),
        rows = rows.len(),
        send_s = (started.elapsed() - read).as_secs_f64(),
        sent = report.sent,
        "outreach sent"
    );
    print_send(&report, outreach);
    Ok(exit_code(&report))
}

/// 4 when a server refused the sender, 3 when messages wait, 130 when a signal stopped the
/// send before all went out, else 0.
pub fn exit_code(report: &SendReport) -> ExitCode {
    match (
        report.refused.is_empty(),
        report.waiting > 0,
        report.stopped,
    ) {
        (false, _, _) => ExitCode::from(REFUSED),
        (true, true, _) => ExitCode::from(WAITING),
        (true, false, true) => ExitCode::from(STOPPED),
        (true, false, false) => ExitCode::SUCCESS,
    }
}

/// One line of a send's outcome, then the channels.
pub fn print_send(report: &SendReport, outreach: &Outreach) {
    let day = report.day.map(|d| d.to_string()).unwrap_or_default();
    if let Some(closed) = &report.window_closed {
        println!(
            "outreach {day}: nothing sent: {closed} (`arstream outreach send --ignore-window` sends now)"
        );
        return;
    }
    for change in &report.policy_changes {
        println!("outreach {day}: the policy changed since the last send: {change}");
    }
    let mut earlier = Vec::new();
    if report.redecided > 0 {
        earlier.push(format!(
            "{} that had waited decided again with what is known now",
            report.redecided
        ));
    }
    if report.resent > 0 {
        earlier.push(format!(
            "{} left unconfirmed by a crash sent again as made",
            report.resent
        ));
    }
    let earlier = match earlier.is_empty() {
        true => String::new(),
        false => format!(" ({})", earlier.join("; ")),
    };
    println!(
        "outreach {day}: {} sent{earlier}, {} failed, {} waiting, {} skipped, {} due tomorrow (one message a customer a day){}",
        report.sent,
        report.failed,
        report.waiting,
        report.skipped,
        report.deferred,
        if report.stopped {
            "; stopped by a signal, the rest go out next time"
        } else {
            ""
        }
    );
    for ((channel, via), n) in &report.by_channel {
        let place = match via.as_str() {
            "outbox" => format!(" ({})", outreach.outbox().display()),
            _ => String::new(),
        };
        println!("  {channel} via {via}: {n}{place}");
    }
    for (channel, answer) in &report.refused {
        eprintln!(
            "error: the {channel} server refused to take messages from us: {answer}. Nothing was lost: the {channel} messages wait; fix the server's settings (address, credentials, sender) and send again"
        );
    }
    if report.waiting > 0 && report.refused.is_empty() {
        eprintln!(
            "warning: {} message(s) wait for their server (down, or not configured); `arstream outreach log --status pending` says why, and the next send tries them again",
            report.waiting
        );
    }
}

/// One entry of `outreach log`.
#[derive(Debug, Serialize)]
struct LogEntry {
    day: NaiveDate,
    status: LogStatus,
    reason: Option<String>,
    rule: String,
    stage: String,
    customer_id: String,
    channel: Option<String>,
    message_id: Option<String>,
    to: Option<String>,
    via: Option<String>,
    invoices: Vec<String>,
    at: chrono::DateTime<Utc>,
}

fn log(folder: &std::path::Path, args: &LogArgs) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::read(folder)?;
    let mut entries: Vec<LogEntry> = Vec::new();
    for e in ledger.messages() {
        let m = &e.message;
        let (status, reason, via, at) = match &e.status {
            Status::Sent { via, at } => (LogStatus::Sent, None, Some(via.clone()), *at),
            Status::Failed { reason } => {
                (LogStatus::Failed, Some(reason.clone()), None, m.recorded_at)
            }
            Status::Pending { waiting } => {
                (LogStatus::Pending, waiting.clone(), None, m.recorded_at)
            }
            Status::Skipped { reason } => (
                LogStatus::Skipped,
                Some(reason.clone()),
                None,
                m.recorded_at,
            ),
            Status::Dropped { reason } => (
                LogStatus::Dropped,
                Some(reason.clone()),
                m.via.clone(),
                m.recorded_at,
            ),
        };
        let mut invoices: Vec<String> = m.items.iter().map(|i| i.invoice_id.clone()).collect();
        invoices.dedup();
        entries.push(LogEntry {
            day: m.day,
            status,
            reason,
            rule: m.rule.clone(),
            stage: m.stage.clone(),
            customer_id: m.customer_id.clone(),
            channel: Some(m.channel.name().into()),
            message_id: Some(m.id.clone()),
            to: Some(m.to.clone()),
            via,
            invoices,
            at,
        });
    }
    for s in ledger.skips().iter().filter(|s| s.message_id.is_none()) {
        entries.push(LogEntry {
            day: s.day,
            status: LogStatus::Skipped,
            reason: Some(s.reason.clone()),
            rule: s.rule.clone(),
            stage: s.stage.clone(),
            customer_id: s.customer_id.clone(),
            channel: None,
            message_id: None,
            to: None,
            via: None,
            invoices: vec![s.invoice_id.clone()],
            at: s.at,
        });
    }
    entries.sort_by_key(|e| (e.day, e.at));
    if let Some(wanted) = args.status {
        entries.retain(|e| e.status == wanted);
    }
    match args.format {
        OutreachFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        OutreachFormat::Table => {
            let text = |f: &dyn Fn(&LogEntry) -> String| -> ArrayRef {
                Arc::new(StringArray::from_iter_values(entries.iter().map(f)))
            };
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            let columns: Vec<(&str, ArrayRef)> = vec![
                ("day", text(&|e| e.day.to_string())),
                (
                    "status",
                    text(&|e| format!("{:?}", e.status).to_lowercase()),
                ),
                ("rule", text(&|e| e.rule.clone())),
                ("stage", text(&|e| e.stage.clone())),
                ("customer_id", text(&|e| e.customer_id.clone())),
                ("channel", text(&|e| opt(&e.channel))),
                ("via", text(&|e| opt(&e.via))),
                ("to", text(&|e| opt(&e.to))),
                ("invoices", text(&|e| shorten(&e.invoices))),
                ("reason", text(&|e| opt(&e.reason))),
                ("message_id", text(&|e| opt(&e.message_id))),
            ];
            print_columns(columns)?;
            println!("ledger: {}", folder.join("ledger.jsonl").display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// At most three invoice numbers, then how many more (the JSON format lists all).
fn shorten(invoices: &[String]) -> String {
    match invoices.len() {
        0..=3 => invoices.join(" "),
        n => format!("{} … (+{})", invoices[..3].join(" "), n - 3),
    }
}

/// Print string columns as a table.
fn print_columns(columns: Vec<(&str, ArrayRef)>) -> anyhow::Result<()> {
    let schema = Arc::new(Schema::new(
        (columns.iter())
            .map(|(n, _)| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, c)| c).collect(),
    )?;
    output::print(Format::Table, &schema, &[batch])
}

fn print_replay(found: &crate::outreach::replay::Replay) -> anyhow::Result<()> {
    println!(
        "Replay {} to {}: {} message(s); payments known to {}",
        found.from,
        found.to,
        found.contacts.len(),
        found.known_to
    );
    let s = &found.stages;
    let share = |n: usize, of: usize| match of {
        0 => "-".to_string(),
        _ => format!("{n} ({:.0} %)", 100.0 * n as f64 / of as f64),
    };
    let col = |f: &dyn Fn(&crate::outreach::replay::StageSummary) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(s.iter().map(f)))
    };
    print_columns(vec![
        ("rule", col(&|x| x.rule.clone())),
        ("stage", col(&|x| x.stage.clone())),
        ("channel", col(&|x| x.channel.clone())),
        ("messages", col(&|x| x.messages.to_string())),
        ("invoices", col(&|x| x.invoices.to_string())),
        (
            "paid_within_7_days",
            col(&|x| share(x.paid_within_7_days, x.invoices)),
        ),
        (
            "paid_within_30_days",
            col(&|x| share(x.paid_within_30_days, x.invoices)),
        ),
    ])?;
    if !found.skipped.is_empty() {
        let list: Vec<String> = found
            .skipped
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        println!("skipped (due but suppressed): {}", list.join(", "));
    }
    let mut by_day: std::collections::BTreeMap<NaiveDate, usize> = Default::default();
    for c in &found.contacts {
        *by_day.entry(c.day).or_default() += 1;
    }
    let busiest: Vec<String> = by_day
        .iter()
        .rev()
        .take(7)
        .map(|(d, n)| format!("{d}: {n}"))
        .collect();
    println!("messages on the last days: {}", busiest.join(", "));
    Ok(())
}
