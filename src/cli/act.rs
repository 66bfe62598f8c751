//! `arstream act`: record what a collector did (a contact, a promise to pay, a dispute
//! opened or closed), checked against the state, written to the actions feed and applied.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;

use super::GlobalArgs;
use crate::actions::write::RecordedBy;
use crate::actions::{Action, Channel, Money, Outcome};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  arstream act --as ana contact --customer C000126 --outcome reached --note \"will pay Friday\"\n  arstream act --as ana promise --customer C000126 --amount 1200.50 --date 2026-12-18 --invoice I0001234\n  arstream act --as ana dispute --customer C000126 --invoice I0001234 --reason pricing --amount 200\n  arstream act --as ana resolve --dispute D000042\n  arstream act --as ana --format json apply actions.jsonl\n\nEach action is checked against the state (the customer exists, the invoices are this\ncustomer's and open, an amount is not more than what is open, a promised date is not in the\npast), written to the actions feed ([actions] url, default <state>/actions) and applied.\nNothing is written when a check fails."
)]
pub struct ActArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = ActFormat::Text)]
    pub format: ActFormat,
    #[command(subcommand)]
    pub action: ActCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum ActCommand {
    /// Log a contact with a customer and how it went
    Contact {
        #[arg(long)]
        customer: String,
        #[arg(long, value_enum)]
        outcome: Outcome,
        #[arg(long, value_enum, default_value_t = Channel::Call)]
        channel: Channel,
        #[arg(long)]
        note: Option<String>,
    },
    /// Record a promise to pay an amount by a date, on invoices or on the account
    Promise {
        #[arg(long)]
        customer: String,
        #[arg(long, allow_hyphen_values = true)]
        amount: Money,
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = date)]
        date: NaiveDate,
        /// An invoice the promise covers (repeat for several; none: the account)
        #[arg(long = "invoice", value_name = "ID")]
        invoices: Vec<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Open a dispute on an invoice
    Dispute {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        invoice: String,
        /// pricing, quantity, damaged_goods, not_received, billing_error, … (queries/dispute_routing.sql routes it)
        #[arg(long)]
        reason: String,
        /// The amount disputed [default: what is open on the invoice]
        #[arg(long, allow_hyphen_values = true)]
        amount: Option<Money>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Put a customer on hold: no reminders and no calls, until a date or until released
    Hold {
        #[arg(long)]
        customer: String,
        /// The last day of the hold [default: until released]
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = date)]
        until: Option<NaiveDate>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Opt a customer out of outreach (no reminders; collectors still call)
    OptOut {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// End a customer's hold or opt-out
    Release {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Hand an open dispute to another team than its routing rule's (see dispute_teams)
    Reassign {
        #[arg(long)]
        dispute: String,
        #[arg(long)]
        team: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Close an open dispute: resolved, or --rejected
    Resolve {
        #[arg(long)]
        dispute: String,
        #[arg(long)]
        rejected: bool,
        #[arg(long)]
        note: Option<String>,
    },
    /// Record every action of a JSON-lines file (one object per line, `action` naming it:
    /// contact, promise, dispute, reassign, resolve, hold, opt_out, release); all are checked before any is written
    Apply { file: PathBuf },
}

/// A date as `--date` takes it, or a sentence saying what one looks like.
fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("'{text}' is not a date (YYYY-MM-DD, like 2026-01-15)"))
}

pub async fn run(global: &GlobalArgs, args: ActArgs) -> anyhow::Result<ExitCode> {
    let who = (global.session_options().who).context(
        "say who records it: --as ID (a collector id) or the environment variable ARSTREAM_USER",
    )?;
    let (actions, via) = match args.action {
        ActCommand::Apply { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read '{}'", file.display()))?;
            let actions = crate::actions::parse_lines(&text)
                .with_context(|| format!("'{}'", file.display()))?;
            (actions, format!("act apply {}", file.display()))
        }
        one => {
            let action = as_action(one);
            let via = format!("act {}", action.name());
            (vec![action], via)
        }
    };
    if actions.is_empty() {
        anyhow::bail!("no actions to record");
    }
    let mut session = super::open_session(global).await?;
    let (engine, params) = session.engine().await?;
    let by = RecordedBy {
        who,
        via,
        at: chrono::Utc::now(),
    };
    let to = session.state.actions().clone();
    let (recorded, files) =
        crate::actions::record(&engine, params.as_of, actions, &by, &to).await?;
    drop(engine);
    #[cfg(debug_assertions)]
    if std::env::var_os("ARSTREAM_TEST_KILL_AFTER_ACTION_WRITE").is_some() {
        // The crash tests' SIGKILL between writing the actions and applying them.
        // SAFETY: sending a signal to this process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    // Applied now, as the next command or the service would.
    let opts = session.ingest_options();
    let feed = session.feed.clone();
    let report = crate::ingest::catch_up(&mut session.state, &feed, &opts, None)
        .await
        .context("the actions were written but could not be applied yet (the next command or the service applies them)")?;
    if let Some(bad) = report.quarantined.first() {
        anyhow::bail!("an action file was refused by the state: {}", bad.reason());
    }
    match args.format {
        ActFormat::Json => {
            let out: Vec<serde_json::Value> = (recorded.iter())
                .map(|r| {
                    serde_json::json!({
                        "action": r.action.name(),
                        "id": r.id,
                        "customer_id": r.customer_id,
                        "summary": r.summary,
                        "rows": r.rows.len(),
                        "recorded_by": by.who,
                    })
                })
                .collect();
            let out = serde_json::json!({ "recorded": out, "files": files, "applied": report.files_applied });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        ActFormat::Text => {
            for r in &recorded {
                println!("recorded {} ({}) by {}", r.summary, r.id, by.who);
            }
            println!("{} file(s) written to {} and applied", files.len(), to.url);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn as_action(command: ActCommand) -> Action {
    match command {
        ActCommand::Contact {
            customer,
            outcome,
            channel,
            note,
        } => Action::Contact {
            customer,
            outcome,
            channel,
            note,
        },
        ActCommand::Promise {
            customer,
            amount,
            date,
            invoices,
            note,
        } => Action::Promise {
            customer,
            amount,
            date,
            invoices,
            note,
        },
        ActCommand::Dispute {
            customer,
            invoice,
            reason,
            amount,
            note,
        } => Action::Dispute {
            customer,
            invoice,
            reason,
            amount,
            note,
        },
        ActCommand::Resolve {
            dispute,
            rejected,
            note,
        } => Action::Resolve {
            dispute,
            rejected,
            note,
        },
        ActCommand::Hold {
            customer,
            until,
            note,
        } => Action::Hold {
            customer,
            until,
            note,
        },
        ActCommand::OptOut { customer, note } => Action::OptOut { customer, note },
        ActCommand::Release { customer, note } => Action::Release { customer, note },
        ActCommand::Reassign {
            dispute,
            team,
            note,
        } => Action::Reassign {
            dispute,
            team,
            note,
        },
        ActCommand::Apply { .. } => unreachable!("a file is read, not made one action"),
    }
}
