//! The model tables and the KPI ledger's tables stored in the state folder: a command on a
//! state already modelled at the same as-of date reads them instead of reading the history
//! and modelling (or building the ledger) again, with the same results; a damaged file is
//! computed again, never trusted; another as-of date is another key; a newer generation's
//! tables replace the older ones.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

/// `arstream` with the arstream's own debug log on stderr (which says what was read or made).
fn arstream(feed: &Path, state: &Path, as_of: &str, args: &[&str]) -> Output {
    common::succeeded(
        Command::new(BIN)
            .env("ARSTREAM_LOG", "arstream=debug")
            .args(["--feed", feed.to_str().unwrap()])
            .args(["--state", state.to_str().unwrap(), "--as-of", as_of])
            .args(args),
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The folders under `state/models` that hold tables, by name (the store deletes files, and
/// a local folder emptied stays behind).
fn model_folders(state: &Path) -> Vec<String> {
    folders_of(state, "models")
}

/// The folders under `state/<kind>` that hold tables, by name.
fn folders_of(state: &Path, kind: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state.join(kind)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = (entries.map(|e| e.unwrap().path()))
        .filter(|folder| folder.join("manifest.json").exists())
        .map(|folder| folder.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The tables a folder's manifest lists.
fn manifest_tables(folder: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(folder.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names: Vec<String> = (manifest["tables"].as_array().unwrap().iter())
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

const HISTORY_READ: &str = "risk history read";
const LEDGER_BUILT: &str = "ledger built";
const WORKLIST: &str =
    "SELECT customer_id, collector_id, expected_at_risk FROM worklist ORDER BY rank";

/// The sample feed up to November 2025 in a folder of its own, and a state folder beside it.
fn sample_to_november() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (feed, state) = (dir.path().join("feed"), dir.path().join("state"));
    common::copy_months_up_to(&repo().join("sample-data/feed"), &feed, "2025-11");
    (dir, feed, state)
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn model_tables_are_read_as_stored_until_the_state_or_the_day_changes() {
    let (_dir, feed, state) = sample_to_november();
    let offline = |as_of: &str, args: &[&str]| {
        let mut all = vec!["--offline"];
        all.extend_from_slice(args);
        arstream(&feed, &state, as_of, &all)
    };

    // The KPI summary backtests the forecast once, and stores only that.
    let first = arstream(&feed, &state, "2025-11-30", &["kpi", "--format", "json"]);
    assert!(stderr(&first).contains(HISTORY_READ), "{}", stderr(&first));
    let folders = model_folders(&state);
    assert_eq!(folders.len(), 1, "{folders:?}");
    let folder = state.join("models").join(&folders[0]);
    assert_eq!(manifest_tables(&folder), ["forecast_accuracy"]);
    let again = offline("2025-11-30", &["kpi", "--format", "json"]);
    assert!(!stderr(&again).contains(HISTORY_READ), "{}", stderr(&again));
    assert_eq!(stdout(&again), stdout(&first));
    // And the KPI ledger's tables, which the next command reads instead of building it.
    assert!(stderr(&first).contains(LEDGER_BUILT));
    assert!(!stderr(&again).contains(LEDGER_BUILT), "{}", stderr(&again));
    let ledger = folders_of(&state, "ledger");
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(
        manifest_tables(&state.join("ledger").join(&ledger[0])).len(),
        8,
        "ledger_open, ledger_sales, … ledger_aging"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert!(summary["cash_forecast_wape"].is_number(), "{summary}");

    // The worklist makes every model table and stores them beside the backtest, with the
    // accounts it assigned and the model that scored (which a service rescores with).
    let made = offline("2025-11-30", &["sql", "--format", "csv", WORKLIST]);
    assert!(stderr(&made).contains(HISTORY_READ));
    assert_eq!(
        manifest_tables(&folder),
        [
            "assignments",
            "forecast_accuracy",
            "forecast_invoices",
            "forecast_weeks",
            "invoice_scores",
            "worklist_accounts"
        ]
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    let scored_by = &manifest["documents"]["scored_by"];
    assert!(
        scored_by.get("Model").is_some() || scored_by.get("Baseline").is_some(),
        "{manifest}"
    );
    let read = offline("2025-11-30", &["sql", "--format", "csv", WORKLIST]);
    assert!(!stderr(&read).contains(HISTORY_READ), "{}", stderr(&read));
    assert!(stderr(&read).contains("model tables read as stored"));
    assert_eq!(stdout(&read), stdout(&made));
    assert!(stdout(&made).lines().count() > 2, "{}", stdout(&made));

    // A damaged file is named, not trusted: the tables are made again, and stored again.
    let scores = folder.join("invoice_scores.parquet");
    let mut bytes = std::fs::read(&scores).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&scores, bytes).unwrap();
    let remade = offline("2025-11-30", &["sql", "--format", "csv", WORKLIST]);
    let log = stderr(&remade);
    assert!(log.contains("invoice_scores.parquet is not used"), "{log}");
    assert!(
        log.contains("checksum") && log.contains(HISTORY_READ),
        "{log}"
    );
    assert_eq!(stdout(&remade), stdout(&made));
    let read = offline("2025-11-30", &["sql", "--format", "csv", WORKLIST]);
    assert!(stderr(&read).contains("model tables read as stored"));

    // Another day is another key, beside the first in the same generation.
    let other_day = offline("2025-10-31", &["kpi", "--format", "json"]);
    assert!(stderr(&other_day).contains(HISTORY_READ));
    assert_ne!(stdout(&other_day), stdout(&first));
    assert_eq!(model_folders(&state).len(), 2);

    // A new file is a new generation: its tables replace the older ones.
    common::copy_months_up_to(&repo().join("sample-data/feed"), &feed, "2025-12");
    let caught_up = arstream(&feed, &state, "2025-11-30", &["kpi", "--format", "json"]);
    assert!(stderr(&caught_up).contains(HISTORY_READ));
    let folders = model_folders(&state);
    assert_eq!(folders.len(), 1, "{folders:?}");
    assert_ne!(state.join("models").join(&folders[0]), folder);
    assert_eq!(folders_of(&state, "ledger").len(), 1);
    assert_ne!(folders_of(&state, "ledger"), ledger);

    // A damaged ledger table is named and built again: the same KPIs.
    let ledger = state.join("ledger").join(&folders_of(&state, "ledger")[0]);
    std::fs::write(ledger.join("ledger_open.parquet"), b"not parquet").unwrap();
    let rebuilt = offline("2025-11-30", &["kpi", "--format", "json"]);
    let log = stderr(&rebuilt);
    assert!(
        log.contains("ledger_open.parquet is not used") && log.contains(LEDGER_BUILT),
        "{log}"
    );
    assert_eq!(stdout(&rebuilt), stdout(&caught_up));
}

#[test]
fn model_report_backtests_are_read_as_stored_until_the_request_or_the_state_changes() {
    let (_dir, feed, state) = sample_to_november();
    let report = |args: &[&str]| {
        let mut all = vec!["--offline", "model", "report", "--origins", "3"];
        all.extend_from_slice(args);
        arstream(&feed, &state, "2025-11-30", &all)
    };
    arstream(&feed, &state, "2025-11-30", &["status"]);

    let made = report(&["--format", "json"]);
    assert!(stderr(&made).contains(HISTORY_READ), "{}", stderr(&made));
    assert_eq!(folders_of(&state, "backtests").len(), 1);
    let read = report(&["--format", "json"]);
    assert!(!stderr(&read).contains(HISTORY_READ), "{}", stderr(&read));
    assert!(stderr(&read).contains("backtests read as stored"));
    assert_eq!(stdout(&read), stdout(&made));
    let figures: serde_json::Value = serde_json::from_str(&stdout(&read)).unwrap();
    assert!(
        figures["auc"].is_number() && figures["wape"].is_number(),
        "{figures}"
    );
    assert_eq!(figures["rolling"]["origins"].as_array().unwrap().len(), 3);
    // The table is printed from the same stored figures.
    let table = report(&[]);
    assert!(!stderr(&table).contains(HISTORY_READ));
    assert!(
        stdout(&table).contains("Rolling backtest: 3 evaluation days"),
        "{}",
        stdout(&table)
    );

    // Another request is another key; a damaged manifest is made again, the same figures.
    let other = report(&["--every", "14", "--format", "json"]);
    assert!(stderr(&other).contains(HISTORY_READ));
    assert_ne!(stdout(&other), stdout(&made));
    assert_eq!(folders_of(&state, "backtests").len(), 2);
    for folder in folders_of(&state, "backtests") {
        let manifest = state.join("backtests").join(folder).join("manifest.json");
        std::fs::write(manifest, b"{ not json").unwrap();
    }
    let remade = report(&["--format", "json"]);
    assert!(
        stderr(&remade).contains(HISTORY_READ),
        "{}",
        stderr(&remade)
    );
    assert_eq!(stdout(&remade), stdout(&made));
}
