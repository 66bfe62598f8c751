//! A collector works a customer in the dashboard, in a real terminal (tmux): records a
//! promise for the worklist's first customer and opens a dispute, from the drill-down's
//! forms. The promise is in `promises` with the collector's id, the customer's next action
//! becomes "follow up a promise", outreach holds its reminders for the promised invoice, the
//! dispute is in `dispute_queue` with its team and SLA, and a bad amount or date gets a
//! sentence on the screen and writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");
const AS_OF: &str = "2025-03-31";

/// A tmux server of the test's own, with the dashboard in its one window.
struct Terminal {
    socket: String,
}

impl Terminal {
    fn start(command: &str) -> Terminal {
        let socket = format!("arstream-test-{}", std::process::id());
        let started = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "50",
            ])
            .arg(command)
            .status()
            .expect("tmux (the CI installs it from Debian)");
        assert!(started.success());
        Terminal { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys by tmux's names (`Enter`, `Tab`, `Escape`, `BSpace`).
    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Text typed as it is.
    fn type_text(&self, text: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "t", "-l", "--", text])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait (at most a minute) until the screen shows `text`; the screen.
    fn wait_for(&self, text: &str) -> String {
        self.wait_until(text, |screen| screen.contains(text))
    }

    /// Wait (at most a minute) until `shown` holds of the screen (`what` says what for).
    fn wait_until(&self, what: &str, shown: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if shown(&screen) {
                return screen;
            }
            assert!(Instant::now() < until, "'{what}' never showed:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn arstream(feed: &Path, state: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(std::env::temp_dir())
        .env_remove("ARSTREAM_USER")
        .args(["--feed", feed.to_str().unwrap(), "--state"])
        .arg(state)
        .args(["--as-of", AS_OF]);
    command
}

fn sql(feed: &Path, state: &Path, query: &str) -> Vec<String> {
    let out = common::succeeded(arstream(feed, state).args(["sql", "--format", "csv", query]));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().skip(1).map(str::to_string).collect()
}

/// The invoices outreach would write to `customer` about today.
fn reminded(feed: &Path, state: &Path, customer: &str) -> Vec<String> {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/outreach.toml");
    let out = common::succeeded(
        arstream(feed, state)
            .args([
                "outreach",
                "preview",
                "--format",
                "json",
                "--customer",
                customer,
                "--policy",
            ])
            .arg(&policy),
    );
    let messages: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut invoices: Vec<String> = (messages.as_array().unwrap().iter())
        .flat_map(|m| m["items"].as_array().unwrap().iter())
        .map(|item| item["invoice_id"].as_str().unwrap().to_string())
        .collect();
    invoices.sort();
    invoices
}

fn action_files(state: &Path) -> usize {
    let actions = state.join("actions");
    match actions.exists() {
        true => (common::walk(&actions).into_iter())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count(),
        false => 0,
    }
}

#[test]
fn a_collector_records_a_promise_and_a_dispute_in_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 30, 3, 7, 100_000);
    let state = dir.path().join("state");
    let first = sql(
        &feed,
        &state,
        "SELECT customer_id FROM worklist ORDER BY rank LIMIT 1",
    )[0]
    .clone();
    let open = sql(
        &feed,
        &state,
        &format!(
            "SELECT invoice_id FROM open_items WHERE customer_id = '{first}' AND open_amount > 0 ORDER BY due_date, invoice_id"
        ),
    );
    let before = reminded(&feed, &state, &first);
    let promised = before.first().cloned().unwrap_or_else(|| open[0].clone());
    let disputed = open
        .iter()
        .find(|i| **i != promised)
        .expect("two open invoices")
        .clone();

    let layout: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/collector.toml");
    let command = format!(
        "{BIN} --feed {} --state {} --as-of {AS_OF} --as ana dashboard --layout {} --interval 0.2 2>{}",
        feed.display(),
        state.display(),
        layout.display(),
        dir.path().join("dashboard.log").display(),
    );
    let terminal = Terminal::start(&command);
    terminal.wait_for(&first);
    terminal.keys(&["Enter"]);
    terminal.wait_for("Open invoices (");

    // A bad amount and a date in the past get a sentence each; Enter records nothing.
    terminal.keys(&["p"]);
    terminal.wait_for("Record a promise to pay");
    terminal.type_text("-3");
    terminal.keys(&["Tab"]);
    terminal.type_text("2025-03-01");
    let screen = terminal.wait_for("is in the past (the as-of date is 2025-03-31)");
    assert!(screen.contains("is not an amount above zero"), "{screen}");
    terminal.keys(&["Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        terminal.screen().contains("Record a promise to pay"),
        "the form closed"
    );
    assert_eq!(action_files(&state), 0, "a bad form wrote something");

    // Enter took the cursor to the first field that is wrong; corrected, with the invoice,
    // it is recorded.
    terminal.keys(&["BSpace", "BSpace"]);
    terminal.type_text("10");
    terminal.keys(&["Tab"]);
    terminal.keys(&["BSpace"; 10]);
    terminal.type_text("2025-04-07");
    terminal.keys(&["Tab"]);
    terminal.type_text(&promised);
    terminal.keys(&["Tab"]);
    terminal.type_text("wires on Monday");
    terminal.wait_for("wires on Monday");
    terminal.keys(&["Enter"]);
    terminal.wait_for("recorded promise by");
    let recorded = Instant::now();
    // On the screen after the next refresh: the invoice's promised date in the drill-down.
    terminal.wait_until("the promised date", |screen| {
        (screen.lines()).any(|l| l.contains(&promised) && l.contains("2025-04-07"))
    });
    eprintln!(
        "the promise on the screen {:?} after it was recorded",
        recorded.elapsed()
    );

    // A dispute on another invoice.
    terminal.keys(&["d"]);
    terminal.wait_for("Open a dispute");
    terminal.keys(&["BSpace"; 20]);
    terminal.type_text(&disputed);
    terminal.keys(&["Tab"]);
    terminal.type_text("pricing");
    terminal.keys(&["Tab"]);
    terminal.type_text("5");
    terminal.keys(&["Enter"]);
    terminal.wait_for("recorded dispute on");
    terminal.wait_for("Disputes (1)");
    terminal.keys(&["q"]);
    drop(terminal);

    assert_eq!(
        sql(
            &feed,
            &state,
            "SELECT invoice_id, amount, collector_id, recorded_via FROM promises WHERE recorded_by = 'ana'"
        ),
        [format!("{promised},10.00,ana,dashboard")]
    );
    assert_eq!(
        sql(
            &feed,
            &state,
            &format!("SELECT next_action FROM worklist WHERE customer_id = '{first}'")
        ),
        ["follow up a promise"]
    );
    let after = reminded(&feed, &state, &first);
    assert!(
        !after.contains(&promised),
        "outreach still writes about {promised}: {after:?}"
    );
    let queued = sql(
        &feed,
        &state,
        &format!(
            "SELECT invoice_id, reason, amount, team, sla_due FROM dispute_queue WHERE customer_id = '{first}' AND dispute_id LIKE 'arstream:%'"
        ),
    );
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(
        queued[0].starts_with(&format!("{disputed},pricing,5.00,")),
        "{queued:?}"
    );
    assert!(
        queued[0].contains(",sales,2025-04-20") || queued[0].contains(",key_accounts,2025-04-10"),
        "{queued:?}"
    );
    assert_eq!(action_files(&state), 2);
}
