//! `arstream sql`: one query, or an interactive shell with history and multi-line input.

use std::process::ExitCode;

use rustyline::error::ReadlineError;

use super::GlobalArgs;
use super::output::{self, Format};
use crate::engine::Engine;
use crate::service::models::ModelTables;
use crate::service::stored_models::{self, StoredModels};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  arstream sql \"SELECT status, count(*) FROM invoices GROUP BY status\"\n  arstream sql --format csv \"SELECT * FROM customers\" > customers.csv\n  arstream sql            (interactive shell; end statements with ';', \\q to quit)\n  arstream sql --as-known 2026-12-03T09:00 \"SELECT total_ar FROM kpi_summary\"   (as published then)\n  arstream sql --cluster df://sched.internal:50050 \"SELECT * FROM aging\"   (on a Ballista cluster, over the published tables)"
)]
pub struct SqlArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The query; without one an interactive shell opens
    pub query: Option<String>,
    #[command(flatten)]
    pub as_known: super::AsKnownArgs,
}

pub async fn run(global: &GlobalArgs, args: SqlArgs) -> anyhow::Result<ExitCode> {
    let mut session = super::open_session(&args.as_known.global(global)).await?;
    let published = args.as_known.published_engine(&session).await?;
    let from_published = published.is_some();
    let (engine, params) = match (published, &args.query) {
        (Some(engine), _) => engine,
        (None, Some(query)) => session.engine_for_query(query).await?,
        (None, None) => session.engine().await?,
    };
    let options = session.risk_options();
    // The models stored beside the state are of the state now, not as published.
    let stored = match from_published {
        true => None,
        false => stored_models::of(&session.state, &engine, &params, options),
    };
    let mut risk = Risk {
        as_of: params.as_of,
        options,
        stored,
        made: false,
    };
    match args.query {
        Some(query) => {
            risk.make_if_read(&engine, &query).await;
            let (schema, batches) = match engine.query_read_only(&query).await {
                Ok(result) => result,
                Err(e) => anyhow::bail!(explain(&engine, e)),
            };
            output::print(args.format, &schema, &batches)?;
            Ok(ExitCode::SUCCESS)
        }
        None => shell(&engine, args.format, risk).await,
    }
}

/// The models' tables (`invoice_scores`, `assignments`, `cash_forecast`, …), made once, when
/// a statement first reads them (through `worklist`, `invoice_risk`, `kpi_summary`, …).
struct Risk {
    as_of: chrono::NaiveDate,
    options: crate::models::risk::RiskOptions,
    stored: Option<StoredModels>,
    made: bool,
}

impl Risk {
    async fn make_if_read(&mut self, engine: &Engine, sql: &str) {
        if self.made || !engine.reads_derived(sql) {
            return;
        }
        self.made = true;
        let stored = self.stored.as_ref();
        let made = ModelTables::make(engine, self.as_of, self.options, stored).await;
        if let Err(e) = made {
            eprintln!(
                "warning: the risk scores and cash forecast could not be made, so their tables are empty: {e}"
            );
        }
    }
}

const HELP: &str =
    "End a statement with ';'. Commands: \\d lists tables, \\d NAME describes one, \\q quits.";

async fn shell(engine: &Engine, format: Format, mut risk: Risk) -> anyhow::Result<ExitCode> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".arstream_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!("arstream SQL shell. {HELP}");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "arstream> "
        } else {
            "      ...> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with('\\') {
                    let _ = editor.add_history_entry(trimmed);
                    match backslash(trimmed) {
                        Some((sql, if_empty)) => {
                            execute(engine, &sql, format, if_empty.as_deref()).await
                        }
                        None => break,
                    }
                    continue;
                }
                if buffer.is_empty() && matches!(trimmed, "exit" | "quit") {
                    break;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if trimmed.ends_with(';') {
                    let statement = std::mem::take(&mut buffer);
                    let _ = editor.add_history_entry(statement.trim());
                    let sql = statement.trim().trim_end_matches(';');
                    risk.make_if_read(engine, sql).await;
                    execute(engine, sql, format, None).await;
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => {
                // Input piped in may end without a last ';': run what is there.
                let statement = std::mem::take(&mut buffer);
                let sql = statement.trim().trim_end_matches(';');
                risk.make_if_read(engine, sql).await;
                execute(engine, sql, format, None).await;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(ExitCode::SUCCESS)
}

/// The SQL a backslash command stands for, with what to say when it finds nothing; `None`
/// to quit.
fn backslash(command: &str) -> Option<(String, Option<String>)> {
    let mut parts = command.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("\\q"), _) => None,
        (Some("\\d"), None) => Some((
            "SELECT table_name, table_type FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_%' ESCAPE '\\' \
             ORDER BY table_name"
                .into(),
            None,
        )),
        (Some("\\d"), Some(name)) => Some((
            format!(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                 WHERE table_name = '{}' ORDER BY ordinal_position",
                name.replace('\'', "''")
            ),
            Some(format!("no table or view named '{name}' (\\d lists them)")),
        )),
        _ => {
            println!("{HELP}");
            Some((String::new(), None))
        }
    }
}

/// Run one statement and print its rows, or `if_empty` when there are none.
async fn execute(engine: &Engine, sql: &str, format: Format, if_empty: Option<&str>) {
    if sql.trim().is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    match engine.query_read_only(sql).await {
        Ok((schema, batches)) => {
            let empty = batches.iter().all(|b| b.num_rows() == 0);
            if let (true, Some(message)) = (empty, if_empty) {
                eprintln!("{message}");
                return;
            }
            if let Err(e) = output::print(format, &schema, &batches) {
                eprintln!("error: {e}");
            }
            println!("({:.3} s)", started.elapsed().as_secs_f64());
        }
        Err(e) => eprintln!("error: {}", explain(engine, e)),
    }
}

/// A query's error, with the table the user likely meant when it names one that is not there.
fn explain(engine: &Engine, error: crate::engine::EngineError) -> String {
    let message = error.to_string();
    match engine.table_hint(&message) {
        Some(hint) => format!("{message} (did you mean '{hint}'?)"),
        None => message,
    }
}
