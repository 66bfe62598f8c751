//! `arstream act`: what a collector records is checked against the state (a sentence and
//! nothing written when it is wrong), written to the actions feed with the collector's id,
//! applied exactly once (a SIGKILL between writing and applying included), and seen by every
//! view: the promise in `promises`, the next action, the dispute in `disputes`,
//! `actions_log`. The ERP's feed may not use the actions' ids.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

/// A generated feed of 30 customers over 3 months and a state beside it.
struct Books {
    _dir: tempfile::TempDir,
    feed: PathBuf,
    state: PathBuf,
}

impl Books {
    fn new() -> Books {
        let dir = tempfile::tempdir().unwrap();
        let feed = dir.path().join("feed");
        common::generated_feed(&feed, 30, 3, 7, 100_000);
        let state = dir.path().join("state");
        Books {
            _dir: dir,
            feed,
            state,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .current_dir(std::env::temp_dir())
            .env_remove("ARSTREAM_USER")
            .args(["--feed", self.feed.to_str().unwrap(), "--state"])
            .arg(&self.state)
            .args(["--as-of", "2025-03-31"])
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn act(&self, args: &[&str]) -> Output {
        let mut all = vec!["act", "--as", "ana"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// The rows of `sql` as CSV lines, header left out.
    fn sql(&self, sql: &str) -> Vec<String> {
        let out = common::succeeded(&mut self.command(&["sql", "--format", "csv", sql]));
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().skip(1).map(str::to_string).collect()
    }

    /// The files of the actions feed.
    fn action_files(&self) -> Vec<PathBuf> {
        let actions = self.state.join("actions");
        if !actions.exists() {
            return Vec::new();
        }
        common::walk(&actions)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect()
    }
}

fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The worklist's first customer and its open invoices, oldest due first, with what is open.
fn first_customer(books: &Books) -> (String, Vec<(String, f64)>) {
    let customer = books.sql("SELECT customer_id FROM worklist ORDER BY rank LIMIT 1")[0].clone();
    let invoices = books.sql(&format!(
        "SELECT invoice_id, open_amount FROM open_items WHERE customer_id = '{customer}' AND open_amount > 0 ORDER BY due_date, invoice_id"
    ));
    let invoices = invoices
        .iter()
        .map(|line| {
            let (id, open) = line.split_once(',').unwrap();
            (id.to_string(), open.parse().unwrap())
        })
        .collect();
    (customer, invoices)
}

#[test]
fn a_collector_records_a_promise_and_a_dispute_checked_against_the_state() {
    let books = Books::new();
    let (customer, invoices) = first_customer(&books);
    assert!(invoices.len() >= 2, "{customer}: {invoices:?}");
    let (first, second) = (&invoices[0], &invoices[1]);

    // Wrong input gets a sentence naming what is wrong, and writes nothing.
    let no_one = books.run(&[
        "act",
        "contact",
        "--customer",
        &customer,
        "--outcome",
        "reached",
    ]);
    assert!(
        !no_one.status.success() && said(&no_one).contains("--as"),
        "{}",
        said(&no_one)
    );
    for (args, sentence) in [
        (
            vec![
                "promise",
                "--customer",
                &customer,
                "--amount",
                "-5",
                "--date",
                "2025-04-10",
            ],
            "not an amount",
        ),
        (
            vec![
                "promise",
                "--customer",
                &customer,
                "--amount",
                "12.345",
                "--date",
                "2025-04-10",
            ],
            "not an amount",
        ),
        (
            vec![
                "promise",
                "--customer",
                &customer,
                "--amount",
                "100",
                "--date",
                "2025-03-01",
            ],
            "in the past",
        ),
        (
            vec![
                "promise",
                "--customer",
                "NOBODY",
                "--amount",
                "100",
                "--date",
                "2025-04-10",
            ],
            "customer 'NOBODY' is not in the state",
        ),
        (
            vec![
                "promise",
                "--customer",
                &customer,
                "--amount",
                "100",
                "--date",
                "2025-04-10",
                "--invoice",
                "NOPE",
            ],
            "not an open invoice",
        ),
        (
            vec![
                "promise",
                "--customer",
                &customer,
                "--amount",
                "99999999",
                "--date",
                "2025-04-10",
                "--invoice",
                &first.0,
            ],
            "more than the",
        ),
        (
            vec![
                "dispute",
                "--customer",
                &customer,
                "--invoice",
                &first.0,
                "--reason",
                "Bad Reason",
            ],
            "lower case",
        ),
        (
            vec![
                "promise",
                "--customer",
                &customer,
                "--amount",
                "12,5",
                "--date",
                "2025-04-10",
            ],
            "with a point for decimals",
        ),
        (
            vec![
                "promise",
                "--customer",
                &customer,
                "--amount",
                "5",
                "--date",
                "tomorrow",
            ],
            "'tomorrow' is not a date (YYYY-MM-DD",
        ),
        (
            vec![
                "contact",
                "--customer",
                &customer,
                "--outcome",
                "reached",
                "--note",
                "red \u{1b}[31m",
            ],
            "control character",
        ),
    ] {
        let out = books.act(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(said(&out).contains(sentence), "{args:?}: {}", said(&out));
    }
    let bad_id = books.run(&[
        "act",
        "--as",
        "bob'; --",
        "contact",
        "--customer",
        &customer,
        "--outcome",
        "left_message",
    ]);
    assert!(
        said(&bad_id).contains("is not a collector id"),
        "{}",
        said(&bad_id)
    );
    assert!(
        books.action_files().is_empty(),
        "a refused action wrote a file"
    );

    // A promise on two invoices: spread oldest due first, with the collector's id.
    let amount = first.1 + 1.0;
    let out = books.act(&[
        "--format",
        "json",
        "promise",
        "--customer",
        &customer,
        "--amount",
        &format!("{amount:.2}"),
        "--date",
        "2025-04-10",
        "--invoice",
        &second.0,
        "--invoice",
        &first.0,
        "--note",
        "pays on the 10th",
    ]);
    assert!(out.status.success(), "{}", said(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = json["recorded"][0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("arstream:promise:"), "{id}");
    assert_eq!(json["applied"], 1, "{json}");
    let promised = books.sql(&format!(
        "SELECT invoice_id, amount, collector_id, recorded_by, note FROM promises WHERE customer_id = '{customer}' AND recorded_by = 'ana' ORDER BY amount DESC"
    ));
    assert_eq!(
        promised,
        [
            format!("{},{:.2},ana,ana,pays on the 10th", first.0, first.1),
            format!("{},1.00,ana,ana,pays on the 10th", second.0),
        ]
    );
    let next = books.sql(&format!(
        "SELECT next_action FROM worklist WHERE customer_id = '{customer}'"
    ));
    assert_eq!(next, ["follow up a promise"]);

    // A dispute, then resolved; each step once in the log.
    let out = books.act(&[
        "--format",
        "json",
        "dispute",
        "--customer",
        &customer,
        "--invoice",
        &second.0,
        "--reason",
        "pricing",
        "--amount",
        "10",
    ]);
    assert!(out.status.success(), "{}", said(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dispute = json["recorded"][0]["id"].as_str().unwrap().to_string();
    let status = |d: &str| {
        books.sql(&format!(
            "SELECT status, amount FROM disputes WHERE dispute_id = '{d}'"
        ))
    };
    assert_eq!(status(&dispute), ["open,10.00"]);
    // Routed by the rules (pricing: sales, or key accounts for an enterprise customer), with
    // its SLA; reassigned by hand to a team of dispute_teams only.
    let queue = |d: &str| {
        books.sql(&format!(
            "SELECT team, routed_by, sla_due FROM dispute_queue WHERE dispute_id = '{d}'"
        ))
    };
    let routed = queue(&dispute);
    assert!(
        routed.len() == 1
            && (routed[0].starts_with("sales,rule,")
                || routed[0].starts_with("key_accounts,rule,")),
        "{routed:?}"
    );
    let out = books.act(&["reassign", "--dispute", &dispute, "--team", "nobody"]);
    assert!(
        said(&out).contains("team 'nobody' is not in dispute_teams"),
        "{}",
        said(&out)
    );
    let out = books.act(&["reassign", "--dispute", &dispute, "--team", "billing"]);
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(queue(&dispute), ["billing,reassigned,2025-04-10"]);
    // No more than what is open and not yet disputed on the invoice.
    let out = books.act(&[
        "dispute",
        "--customer",
        &customer,
        "--invoice",
        &second.0,
        "--reason",
        "quantity",
        "--amount",
        &format!("{:.2}", second.1),
    ]);
    assert!(
        said(&out).contains("not yet disputed") && said(&out).contains("10.00 of its"),
        "{}",
        said(&out)
    );
    let out = books.act(&["resolve", "--dispute", &dispute, "--note", "credit note"]);
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(status(&dispute), ["resolved,10.00"]);
    let again = books.act(&["resolve", "--dispute", &dispute]);
    assert!(
        said(&again).contains("resolved already"),
        "{}",
        said(&again)
    );
    let log = books
        .sql("SELECT action, recorded_by, recorded_via FROM actions_log ORDER BY recorded_at, id");
    assert_eq!(
        log,
        [
            "promise,ana,act promise",
            "promise,ana,act promise",
            "dispute,ana,act dispute",
            "reassign,ana,act reassign",
            "resolve,ana,act resolve",
        ]
    );
    // The as-of date `feed` still follows the ERP's changes, not the actions recorded today.
    let out = common::succeeded(
        Command::new(BIN)
            .current_dir(std::env::temp_dir())
            .args(["--feed", books.feed.to_str().unwrap(), "--state"])
            .arg(&books.state)
            .args([
                "--as-of",
                "feed",
                "sql",
                "--format",
                "csv",
                "SELECT as_of FROM params",
            ]),
    );
    let as_of = String::from_utf8(out.stdout).unwrap();
    assert!(as_of.contains("2025-03-"), "{as_of}");
}

#[test]
fn a_json_lines_file_is_checked_whole_before_anything_is_written() {
    let books = Books::new();
    let (customer, invoices) = first_customer(&books);
    let dir = tempfile::tempdir().unwrap();
    let lines = |extra: &str| {
        format!(
            "{{\"action\":\"contact\",\"customer\":\"{customer}\",\"outcome\":\"left_message\"}}\n\n{{\"action\":\"promise\",\"customer\":\"{customer}\",\"amount\":25,\"date\":\"2025-04-20\",\"invoices\":[\"{}\"]}}\n{extra}",
            invoices[0].0
        )
    };
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        lines(&format!(
            "{{\"action\":\"contact\",\"customer\":\"{customer}\",\"outcome\":\"maybe\"}}\n"
        )),
    )
    .unwrap();
    let out = books.act(&["apply", bad.to_str().unwrap()]);
    assert!(
        !out.status.success() && said(&out).contains("line 4"),
        "{}",
        said(&out)
    );
    assert!(books.action_files().is_empty());

    // A dispute changed twice in one file: refused, nothing written.
    let dispute = books.sql("SELECT dispute_id FROM disputes WHERE status = 'open' LIMIT 1");
    if let Some(dispute) = dispute.first() {
        let twice = dir.path().join("twice.jsonl");
        std::fs::write(&twice, format!(
            "{{\"action\":\"reassign\",\"dispute\":\"{dispute}\",\"team\":\"credit\"}}\n{{\"action\":\"resolve\",\"dispute\":\"{dispute}\"}}\n"
        )).unwrap();
        let out = books.act(&["apply", twice.to_str().unwrap()]);
        assert!(
            said(&out).contains("line 2") && said(&out).contains("changed by an earlier line"),
            "{}",
            said(&out)
        );
        assert!(books.action_files().is_empty());
    }

    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, lines("")).unwrap();
    let out = books.act(&["--format", "json", "apply", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", said(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["recorded"].as_array().unwrap().len(), 2, "{json}");
    let log = books.sql("SELECT action, outcome, amount FROM actions_log ORDER BY action");
    assert_eq!(log, ["contact,left_message,", "promise,,25.00"]);
}

#[test]
fn an_action_written_before_a_kill_is_applied_once() {
    let books = Books::new();
    let (customer, _) = first_customer(&books);
    let out = books
        .command(&[
            "act",
            "--as",
            "ana",
            "contact",
            "--customer",
            &customer,
            "--outcome",
            "reached",
        ])
        .env("ARSTREAM_TEST_KILL_AFTER_ACTION_WRITE", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{}", said(&out));
    assert_eq!(books.action_files().len(), 1);
    let count = "SELECT count(*) FROM activities WHERE recorded_by = 'ana'";
    let offline = common::succeeded(&mut books.command(&[
        "--offline",
        "sql",
        "--format",
        "csv",
        "SELECT count(*) FROM activities WHERE collector_id = 'ana'",
    ]));
    assert!(
        String::from_utf8_lossy(&offline.stdout).ends_with("0\n"),
        "applied before the kill"
    );
    // The next command applies it; every later one finds it applied.
    assert_eq!(books.sql(count), ["1"]);
    assert_eq!(books.sql(count), ["1"]);
    assert_eq!(books.sql("SELECT count(*) FROM actions_log"), ["1"]);
}

#[test]
fn the_erp_feed_may_not_use_the_actions_ids() {
    let books = Books::new();
    books.sql("SELECT count(*) FROM promises");
    // An ERP file with an id in the actions' space is quarantined with why; the rest goes on.
    let promises = common::walk(&books.feed.join("promises"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let batch = common::read_parquet(&promises);
    let ids = arrow::array::StringArray::from_iter_values(
        (0..batch.num_rows()).map(|i| format!("arstream:promise:{i}")),
    );
    let batch = common::with_column(&batch, "promise_id", std::sync::Arc::new(ids));
    common::write(&books.feed, "promises/late/part-9.parquet", &batch);
    let out = common::succeeded(&mut books.command(&["status"]));
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        status.contains("promises/late/part-9.parquet") && status.contains("reserved_id"),
        "{status}"
    );
    let _: &Path = &books.feed;
}

#[test]
fn a_dispute_past_its_sla_is_escalated_once_to_its_teams_lead_by_email() {
    use common::servers::SmtpServer;
    let books = Books::new();
    let (customer, invoices) = first_customer(&books);
    let out = books.act(&[
        "--format",
        "json",
        "dispute",
        "--customer",
        &customer,
        "--invoice",
        &invoices[0].0,
        "--reason",
        "damaged_goods",
        "--amount",
        "12",
    ]);
    assert!(out.status.success(), "{}", said(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dispute = json["recorded"][0]["id"].as_str().unwrap().to_string();

    // The shipped policy, escalating only the disputes recorded here (the generated feed has
    // its own, breached long ago); its ledger in the state's outreach-dispute_escalations.
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let policy = std::fs::read_to_string(shipped.join("dispute_escalation.toml"))
        .unwrap()
        .replace(
            "trigger = \"breached\"",
            "trigger = \"breached AND invoice_id LIKE 'arstream:%'\"",
        )
        .replace(
            "templates = \"templates\"",
            &format!(
                "templates = {:?}",
                shipped.join("templates").display().to_string()
            ),
        );
    let policy_file = dir.path().join("escalation.toml");
    std::fs::write(&policy_file, policy).unwrap();

    let smtp = SmtpServer::start(0, std::time::Duration::ZERO);
    let send = |as_of: &str| {
        let mut command = Command::new(BIN);
        command
            .current_dir(std::env::temp_dir())
            .env("ARSTREAM_SMTP_URL", smtp.url())
            .args(["--feed", books.feed.to_str().unwrap(), "--state"])
            .arg(&books.state)
            .args(["--as-of", as_of, "outreach", "send", "--policy"])
            .arg(&policy_file);
        common::succeeded(&mut command)
    };
    // Within its SLA (logistics: 14 days from 2025-03-31): nothing.
    send("2025-04-10");
    assert_eq!(smtp.emails().len(), 0);
    // Past it: one email to the lead, naming the dispute; the next send sends nothing more.
    send("2025-04-16");
    send("2025-04-17");
    let emails = smtp.emails();
    assert_eq!(
        emails.len(),
        1,
        "{:?}",
        emails.iter().map(|e| e.subject()).collect::<Vec<_>>()
    );
    assert!(emails[0].body().contains(&dispute), "{}", emails[0].body());
    assert!(
        emails[0].subject().contains("Disputes past their SLA"),
        "{}",
        emails[0].subject()
    );
    assert_eq!(emails[0].to, ["logistics-lead@example.com"]);
    // A week past the SLA, the second stage, once.
    send("2025-04-23");
    send("2025-04-24");
    assert_eq!(smtp.emails().len(), 2);
    assert!(
        books
            .state
            .join("outreach-dispute_escalations/ledger.jsonl")
            .exists()
    );
}

#[test]
fn a_customer_on_hold_or_opted_out_gets_no_reminders_until_released() {
    let books = Books::new();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/outreach.toml");
    let preview = |customer: Option<&str>| -> Vec<String> {
        let mut args = vec![
            "outreach",
            "preview",
            "--format",
            "json",
            "--policy",
            policy.to_str().unwrap(),
        ];
        if let Some(customer) = customer {
            args.extend(["--customer", customer]);
        }
        let out = common::succeeded(&mut books.command(&args));
        let messages: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (messages.as_array().unwrap().iter())
            .map(|m| m["customer_id"].as_str().unwrap().to_string())
            .collect()
    };
    let customer = preview(None)
        .into_iter()
        .next()
        .expect("a customer with reminders");
    let next = |c: &str| {
        books.sql(&format!(
            "SELECT next_action FROM next_actions WHERE customer_id = '{c}'"
        ))
    };

    let out = books.act(&["hold", "--customer", &customer, "--until", "2025-03-01"]);
    assert!(said(&out).contains("is in the past"), "{}", said(&out));
    let out = books.act(&[
        "hold",
        "--customer",
        &customer,
        "--until",
        "2025-04-15",
        "--note",
        "CFO asked for two weeks",
    ]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        preview(Some(&customer)).is_empty(),
        "a customer on hold gets reminders"
    );
    assert_eq!(next(&customer), ["on hold"]);
    assert_eq!(
        books.sql(&format!("SELECT status, hold_until, recorded_by FROM customer_holds WHERE customer_id = '{customer}'")),
        ["on hold,2025-04-15,ana"]
    );

    let out = books.act(&["opt-out", "--customer", &customer]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        preview(Some(&customer)).is_empty(),
        "an opted-out customer gets reminders"
    );
    assert_ne!(
        next(&customer),
        ["on hold"],
        "opting out of outreach is not a hold on calls"
    );

    let out = books.act(&["release", "--customer", &customer]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        !preview(Some(&customer)).is_empty(),
        "the released customer's reminders are back"
    );
    let again = books.act(&["release", "--customer", &customer]);
    assert!(
        said(&again).contains("neither on hold nor opted out"),
        "{}",
        said(&again)
    );
}
