//! Outreach as a user runs it, against real servers on loopback: the binary sends by a policy
//! to an SMTP server and HTTP endpoints the tests start, over a small feed written here with
//! one customer per case (languages, suppression reasons, bad addresses). `trust.rs` holds
//! a test per way outreach once went wrong: the wrong customer, twice, or lost.

#[path = "../common/mod.rs"]
mod common;
mod trust;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::generate::simulate::Op;
use common::servers::{HttpServer, SmtpServer, free_port};

/// The binary under test: this build's, or `ARSTREAM_TEST_BIN` (to run these tests against
/// another build, such as one from before a fix).
fn bin() -> String {
    std::env::var("ARSTREAM_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_arstream").into())
}
const AS_OF: &str = "2025-12-31";
/// 2025-12-31 as days since 1970-01-01.
const D: i32 = 20_453;
/// 2025-12-31T00:00:00Z in microseconds.
const TS: i64 = 1_767_139_200_000_000;

/// A customer of the fixture: id, name, language, email, phone, collector.
type Customer = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

const CUSTOMERS: &[Customer] = &[
    (
        "C01",
        "Acme Corp",
        "en-US",
        "ap@acme.example",
        "+1-555-0101",
        Some("K1"),
    ),
    (
        "C02",
        "Société Durand",
        "fr-FR",
        "compta@durand.example",
        "+33 1 23 45 67 89",
        Some("K1"),
    ),
    (
        "C03",
        "Müller GmbH",
        "de-DE",
        "buchhaltung@mueller.example",
        "+49 30 1234567",
        Some("K1"),
    ),
    (
        "C04",
        "Bad Address Ltd",
        "en-GB",
        "not-an-email",
        "+44 20 7946 0000",
        Some("K1"),
    ),
    (
        "C05",
        "Opted Out Inc",
        "en-US",
        "ap@optedout.example",
        "+1-555-0105",
        Some("K1"),
    ),
    (
        "C06",
        "Disputer LLC",
        "en-US",
        "ap@disputer.example",
        "+1-555-0106",
        Some("K1"),
    ),
    (
        "C07",
        "Promiser LLC",
        "en-US",
        "ap@promiser.example",
        "+1-555-0107",
        Some("K1"),
    ),
    (
        "C08",
        "Payer LLC",
        "en-US",
        "ap@payer.example",
        "+1-555-0108",
        Some("K1"),
    ),
    (
        "C09",
        "Credited LLC",
        "en-US",
        "ap@credited.example",
        "+1-555-0109",
        Some("K1"),
    ),
    (
        "C10",
        "Texter LLC",
        "en-US",
        "ap@texter.example",
        "12345",
        Some("K1"),
    ),
    (
        "C11",
        "Escalated LLC",
        "en-US",
        "ap@escalated.example",
        "+1-555-0111",
        Some("K1"),
    ),
    (
        "C12",
        "Phoner LLC",
        "en-US",
        "ap@phoner.example",
        "+1-555-0112",
        Some("K1"),
    ),
];

/// An invoice: id, customer, days past due at the as-of date, amount in cents, currency.
type Invoice = (&'static str, &'static str, i32, i64, &'static str);

const INVOICES: &[Invoice] = &[
    ("I-1001", "C01", 7, 120_000, "USD"),
    ("I-1002", "C01", 1, 30_000, "USD"),
    ("I-2001", "C02", 11, 250_050, "EUR"),
    ("I-3001", "C03", 3, 99_999, "EUR"),
    ("I-4001", "C04", 5, 10_000, "GBP"),
    ("I-5001", "C05", 5, 10_000, "USD"),
    ("I-6001", "C06", 5, 10_000, "USD"),
    ("I-7001", "C07", 5, 10_000, "USD"),
    ("I-8001", "C08", 10, 10_000, "USD"),
    ("I-9001", "C09", 10, 10_000, "USD"),
    ("I-10001", "C10", 20, 10_000, "USD"),
    ("I-11001", "C11", 50, 777_700, "USD"),
    ("I-12001", "C12", 16, 4_200, "USD"),
];

/// `n` more customers with one invoice 2 days past due each (for a send that takes a while).
fn extra(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("X{i:03}"), format!("I-X{i:03}")))
        .collect()
}

fn write(feed: &Path, entity: Entity, batch: arrow::array::RecordBatch) {
    common::write(
        feed,
        &format!("{}/month=2025-12/part-00000.parquet", entity.name()),
        &batch,
    );
}

/// The fixture's feed, with `extra_customers` more plain ones.
fn feed(dir: &Path, extra_customers: usize) -> PathBuf {
    let feed = dir.join("feed");
    let extras = extra(extra_customers);
    let mut seq = 0i64;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut b = BatchBuilder::new(Entity::Customers);
    for &(id, name, language, email, phone, collector) in CUSTOMERS {
        let currency = if language.starts_with("en-GB") {
            "GBP"
        } else if language.starts_with("en") {
            "USD"
        } else {
            "EUR"
        };
        b.row(Op::Create, next(), TS)
            .text(Some(id))
            .text(Some(name))
            .text(Some("US"))
            .text(Some(currency))
            .decimal(10_000_000)
            .int(30)
            .text(Some("enterprise"))
            .text(Some(language))
            .text(Some(email))
            .text(Some(phone))
            .text(collector);
    }
    for (id, _) in &extras {
        b.row(Op::Create, next(), TS)
            .text(Some(id))
            .text(Some(&format!("Extra {id}")))
            .text(Some("US"))
            .text(Some("USD"))
            .decimal(10_000_000)
            .int(30)
            .text(Some("smb"))
            .text(Some("en-US"))
            .text(Some(&format!("ap@{}.example", id.to_lowercase())))
            .text(Some("+1-555-0199"))
            .text(Some("K1"));
    }
    write(&feed, Entity::Customers, b.finish());

    let mut b = BatchBuilder::new(Entity::Collectors);
    b.row(Op::Create, next(), TS)
        .text(Some("K1"))
        .text(Some("Kim Collector"))
        .text(Some("kim@ar.example"))
        .text(Some("en,fr,de"))
        .int(40);
    write(&feed, Entity::Collectors, b.finish());

    let mut b = BatchBuilder::new(Entity::Invoices);
    let invoices = INVOICES
        .iter()
        .map(|&(i, c, late, cents, ccy)| (i.to_string(), c.to_string(), late, cents, ccy));
    let extra_invoices = extras
        .iter()
        .map(|(c, i)| (i.clone(), c.clone(), 2, 50_000, "USD"));
    for (id, customer, late, cents, currency) in invoices.chain(extra_invoices) {
        let due = D - late;
        b.row(Op::Create, next(), TS)
            .text(Some(&id))
            .text(Some(&customer))
            .date(Some(due - 30))
            .date(Some(due))
            .decimal(cents as i128)
            .text(Some(currency))
            .text(Some("posted"));
    }
    write(&feed, Entity::Invoices, b.finish());

    // C08's invoice paid two days ago; C09's credited yesterday.
    let mut b = BatchBuilder::new(Entity::Payments);
    b.row(Op::Create, next(), TS)
        .text(Some("P-8001"))
        .text(Some("C08"))
        .text(Some("I-8001"))
        .date(Some(D - 2))
        .decimal(10_000)
        .text(Some("USD"));
    write(&feed, Entity::Payments, b.finish());
    let mut b = BatchBuilder::new(Entity::Adjustments);
    b.row(Op::Create, next(), TS)
        .text(Some("A-9001"))
        .text(Some("I-9001"))
        .text(Some("C09"))
        .date(Some(D - 1))
        .decimal(10_000)
        .text(Some("USD"))
        .text(Some("credit_note"));
    write(&feed, Entity::Adjustments, b.finish());
    // C06's invoice in an open dispute; C07's promised for next week.
    let mut b = BatchBuilder::new(Entity::Disputes);
    b.row(Op::Create, next(), TS)
        .text(Some("D-6001"))
        .text(Some("I-6001"))
        .text(Some("C06"))
        .date(Some(D - 3))
        .decimal(10_000)
        .text(Some("USD"))
        .text(Some("pricing"))
        .text(Some("open"))
        .date(None);
    write(&feed, Entity::Disputes, b.finish());
    let mut b = BatchBuilder::new(Entity::Promises);
    b.row(Op::Create, next(), TS)
        .text(Some("PR-7001"))
        .text(Some("C07"))
        .text(Some("I-7001"))
        .date(Some(D - 2))
        .date(Some(D + 5))
        .decimal(10_000)
        .text(Some("USD"))
        .text(Some("K1"));
    write(&feed, Entity::Promises, b.finish());
    let mut b = BatchBuilder::new(Entity::FxRates);
    for (ccy, rate) in [("EUR", 110_000_000i128), ("GBP", 127_000_000)] {
        b.row(Op::Create, next(), TS)
            .text(Some(ccy))
            .date(Some(D - 30))
            .decimal(rate);
    }
    write(&feed, Entity::FxRates, b.finish());
    feed
}

/// The shipped templates, or `ARSTREAM_TEST_TEMPLATES` (the templates of the build that
/// `ARSTREAM_TEST_BIN` names).
fn shipped_templates() -> PathBuf {
    match std::env::var("ARSTREAM_TEST_TEMPLATES") {
        Ok(folder) => PathBuf::from(folder),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/templates"),
    }
}

/// The test policy: the shipped templates, no send window, quick retries.
fn policy(dir: &Path, opt_outs: bool) -> PathBuf {
    let templates = shipped_templates();
    let opt_out_line = match opt_outs {
        true => {
            std::fs::write(
                dir.join("opt-outs.csv"),
                "customer_id,reason\nC05,asked by phone\n",
            )
            .unwrap();
            "opt_outs = \"opt-outs.csv\"\n"
        }
        false => "",
    };
    let text = format!(
        r#"name = "test-dunning"
sender = "Accounts Receivable <ar@example.com>"
templates = "{templates}"
default_language = "en"
payment_link = "https://pay.example.com/{{{{ customer_id }}}}"
{opt_out_line}
[retry]
attempts = 2
first_wait = "50ms"
max_wait = "100ms"

[[rules]]
name = "standard"
trigger = "days_past_due >= 1"
min_open_amount = 10

[[rules.stages]]
name = "first"
day = 1
channel = "email"
template = "reminder"

[[rules.stages]]
name = "second"
day = 7
channel = "email"
template = "reminder"

[[rules.stages]]
name = "text"
day = 15
channel = "sms"
template = "sms-reminder"

[[rules.stages]]
name = "escalate"
day = 45
channel = "email"
template = "escalation"
to = "collector"

[[rules]]
name = "euro-case"
trigger = "currency = 'EUR' AND days_past_due >= 3"

[[rules.stages]]
name = "case"
day = 3
channel = "webhook"
template = "case"
to = "collector"
"#,
        templates = templates.display()
    );
    let file = dir.join("outreach.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// A fixture: a feed, a state folder, a policy.
struct Fixture {
    _dir: tempfile::TempDir,
    feed: PathBuf,
    state: PathBuf,
    policy: PathBuf,
}

impl Fixture {
    fn new(extra_customers: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let feed = feed(dir.path(), extra_customers);
        let policy = policy(dir.path(), true);
        Fixture {
            state: dir.path().join("state"),
            feed,
            policy,
            _dir: dir,
        }
    }

    fn command(&self, args: &[&str], env: &[(&str, String)]) -> Command {
        self.command_at(AS_OF, args, env)
    }

    /// The folder of the fixture's policy (and its opt-out list).
    fn dir(&self) -> &Path {
        self.policy.parent().unwrap()
    }

    /// `outreach ARGS` as of `as_of`.
    fn command_at(&self, as_of: &str, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--feed")
            .arg(&self.feed)
            .arg("--state")
            .arg(&self.state)
            .args(["--as-of", as_of, "outreach", "--policy"])
            .arg(&self.policy)
            .args(args);
        for var in [
            "ARSTREAM_SMTP_URL",
            "ARSTREAM_WEBHOOK_URL",
            "ARSTREAM_WEBHOOK_SECRET",
            "ARSTREAM_SMS_URL",
            "ARSTREAM_SMS_TOKEN",
            "ARSTREAM_PAYMENT_LINK_SECRET",
        ] {
            c.env_remove(var);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    fn run_at(&self, as_of: &str, args: &[&str], env: &[(&str, String)]) -> Output {
        self.command_at(as_of, args, env).output().unwrap()
    }

    /// A pipeline `dunning` that sends by the fixture's policy, on this schedule; returns its
    /// config file.
    fn pipeline(&self, every: &str) -> PathBuf {
        let dir = self.dir();
        std::fs::create_dir_all(dir.join("pipelines")).unwrap();
        std::fs::write(
            dir.join("pipelines/dunning.toml"),
            format!(
                "name = \"dunning\"\nfeed = \"{}\"\nstate = \"{}\"\nout = \"../out\"\nas_of = \"{AS_OF}\"\noutreach = \"{}\"\n\n[schedule]\nevery = \"{every}\"\n\n[[steps]]\nview = \"kpi_summary\"\n",
                self.feed.display(),
                self.state.display(),
                self.policy.display()
            ),
        )
        .unwrap();
        let config = dir.join("arstream.toml");
        std::fs::write(&config, "[engine]\npipelines = \"pipelines\"\n").unwrap();
        config
    }

    /// Rewrite the policy file.
    fn edit_policy(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.policy).unwrap();
        std::fs::write(&self.policy, edit(text)).unwrap();
    }

    /// `outreach log --format json`.
    fn log(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["log", "--format", "json"], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The log entries about `invoice`.
    fn entries_of(&self, invoice: &str) -> Vec<serde_json::Value> {
        let has = |e: &serde_json::Value| {
            e["invoices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == invoice)
        };
        self.log().into_iter().filter(has).collect()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Wait until `done` holds, up to `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    done()
}

#[test]
fn messages_reach_real_servers_once_in_the_customers_languages() {
    let fx = Fixture::new(0);
    let smtp = SmtpServer::start(0, Duration::ZERO);
    let hooks = HttpServer::start(200);
    let env = [
        ("ARSTREAM_SMTP_URL", smtp.url()),
        ("ARSTREAM_WEBHOOK_URL", hooks.url("/hooks/dunning")),
        ("ARSTREAM_WEBHOOK_SECRET", "s3cret".to_string()),
        ("ARSTREAM_SMS_URL", hooks.url("/sms")),
        ("ARSTREAM_SMS_TOKEN", "tok-123".to_string()),
    ];
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));

    // Emails: C01 (both invoices in one, English), C02 (French), C03 (German), C11's
    // collector (the escalation).
    let emails = smtp.emails();
    let to: Vec<&str> = emails.iter().map(|e| e.to[0].as_str()).collect();
    let mut sorted = to.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "ap@acme.example",
            "buchhaltung@mueller.example",
            "compta@durand.example",
            "kim@ar.example"
        ],
        "{}",
        text(&out)
    );
    let email_to = |address: &str| emails.iter().find(|e| e.to[0] == address).unwrap();
    let acme = email_to("ap@acme.example");
    assert_eq!(acme.header("Content-Language").as_deref(), Some("en"));
    assert!(acme.subject().contains("1,500.00 USD"), "{}", acme.data);
    assert!(durand_subject_is_french(&emails));
    assert!(
        acme.body().contains("I-1001") && acme.body().contains("I-1002"),
        "{}",
        acme.data
    );
    assert!(acme.body().contains("1,200.00 USD") && acme.body().contains("300.00 USD"));
    assert!(acme.body().contains("https://pay.example.com/C01"));
    let durand = email_to("compta@durand.example");
    assert_eq!(durand.header("Content-Language").as_deref(), Some("fr"));
    assert!(
        durand.body().contains("I-2001") && durand.body().contains("2\u{202f}500,50 EUR"),
        "{}",
        durand.data
    );
    assert!(durand.body().contains("jours de retard"));
    let mueller = email_to("buchhaltung@mueller.example");
    assert_eq!(mueller.header("Content-Language").as_deref(), Some("de"));
    assert!(
        mueller.body().contains("999,99 EUR") && mueller.body().contains("überfällig"),
        "{}",
        mueller.data
    );
    let kim = email_to("kim@ar.example");
    assert!(
        kim.body().contains("Escalated LLC") && kim.body().contains("I-11001"),
        "{}",
        kim.data
    );
    // Line breaks are CRLF in the body as sent, not encoded as =0A (RFC 2045 6.7), whatever
    // the encoding (quoted-printable for lines of 76 characters or more).
    for email in &emails {
        assert!(
            !email.data.contains("=0A") && !email.data.contains("=0D"),
            "{}",
            email.data
        );
        let body = email.data.split_once("\r\n\r\n").unwrap().1;
        assert!(
            body.contains("\r\n") && !body.replace("\r\n", "").contains('\n'),
            "{body:?}"
        );
    }
    let ids: Vec<String> = emails
        .iter()
        .map(|e| e.header("Message-ID").unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| id.starts_with("<2025-12-31.")),
        "{ids:?}"
    );

    // Webhooks (the EUR customers' cases), signed; the SMS through the gateway with its token.
    let requests = hooks.requests();
    let cases: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/hooks/dunning")
        .collect();
    assert_eq!(cases.len(), 2, "{requests:?}");
    for case in &cases {
        let expected = arstream::outreach::channels::sign("s3cret", &case.body);
        assert_eq!(case.header("X-Arstream-Signature"), Some(expected.as_str()));
        let body: serde_json::Value = serde_json::from_str(&case.body).unwrap();
        assert_eq!(case.header("Idempotency-Key"), body["message_id"].as_str());
        assert!(["C02", "C03"].contains(&body["customer_id"].as_str().unwrap()));
    }
    let sms: Vec<_> = requests.iter().filter(|r| r.path == "/sms").collect();
    assert_eq!(sms.len(), 1, "{requests:?}");
    assert_eq!(sms[0].header("Authorization"), Some("Bearer tok-123"));
    let sms_body: serde_json::Value = serde_json::from_str(&sms[0].body).unwrap();
    // Sent in E.164, whatever the feed's punctuation.
    assert_eq!(sms_body["to"], "+15550112");
    assert!(sms_body["text"].as_str().unwrap().contains("42.00 USD"));

    // A malformed address is reported and did not stop the others.
    let failed: Vec<(String, String)> = (fx.log().iter())
        .filter(|e| e["status"] == "failed")
        .map(|e| {
            (
                e["customer_id"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|(c, r)| c == "C04" && r.contains("malformed email address 'not-an-email'")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|(c, r)| c == "C10" && r.contains("malformed phone number '12345'")),
        "{failed:?}"
    );

    // A second send of the same day sends nothing.
    let again = fx.run(&["send"], &env);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains(": 0 sent"), "{}", text(&again));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(smtp.emails().len(), 4);
    assert_eq!(hooks.requests().len(), 3);
}

fn durand_subject_is_french(emails: &[common::servers::Email]) -> bool {
    let durand = emails
        .iter()
        .find(|e| e.to[0] == "compta@durand.example")
        .unwrap();
    durand.subject() == "Relance : 2\u{202f}500,50 EUR échu"
}

/// The log's skip of `invoice`, with its reason.
fn skipped_reason(fx: &Fixture, invoice: &str) -> Vec<String> {
    (fx.entries_of(invoice).iter())
        .filter(|e| e["status"] == "skipped")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect()
}

/// A send to the outbox, then the skips of `invoice`.
fn skips_after_send(invoice: &str) -> Vec<String> {
    let fx = Fixture::new(0);
    let out = fx.run(&["send"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let sent_about = (fx.entries_of(invoice).iter())
        .filter(|e| e["status"] == "sent")
        .count();
    assert_eq!(sent_about, 0, "a message went out about {invoice}");
    skipped_reason(&fx, invoice)
}

#[test]
fn an_invoice_in_open_dispute_is_not_written_about() {
    assert_eq!(skips_after_send("I-6001"), ["in dispute"]);
}

#[test]
fn an_invoice_with_an_open_promise_is_not_written_about() {
    assert_eq!(skips_after_send("I-7001"), ["promised"]);
}

#[test]
fn an_invoice_paid_by_the_time_of_sending_is_not_written_about() {
    assert_eq!(skips_after_send("I-8001"), ["paid"]);
}

#[test]
fn an_invoice_credited_by_the_time_of_sending_is_not_written_about() {
    assert_eq!(skips_after_send("I-9001"), ["credited"]);
}

#[test]
fn a_customer_on_the_opt_out_list_is_not_written_to() {
    assert_eq!(skips_after_send("I-5001"), ["opted out"]);
}

#[test]
fn messages_wait_while_the_smtp_server_is_down_and_go_out_once_it_is_back() {
    let fx = Fixture::new(0);
    let port = free_port();
    let env = [("ARSTREAM_SMTP_URL", format!("smtp://127.0.0.1:{port}"))];
    let out = fx.run(&["send"], &env);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let pending: Vec<_> = fx
        .log()
        .into_iter()
        .filter(|e| e["status"] == "pending")
        .collect();
    assert_eq!(pending.len(), 4, "{pending:?}");
    let why = |e: &serde_json::Value| e["reason"].as_str().unwrap_or("").to_string();
    assert!(
        pending.iter().all(|e| why(e).contains("SMTP")),
        "{pending:?}"
    );

    let smtp = SmtpServer::start(port, Duration::ZERO);
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    // Those that waited are decided again with what is known now, and go out.
    assert!(
        text(&out).contains("4 sent (4 that had waited decided again with what is known now)"),
        "{}",
        text(&out)
    );
    assert_eq!(smtp.emails().len(), 4);
    let out = fx.run(&["send"], &env);
    assert!(text(&out).contains(": 0 sent"), "{}", text(&out));
    assert_eq!(smtp.emails().len(), 4);
    assert!(fx.log().iter().all(|e| e["status"] != "pending"));
}

#[test]
fn a_send_killed_midway_and_run_again_sends_no_entry_twice() {
    let fx = Fixture::new(30);
    // Each message is acknowledged 150 ms after it arrived: the kill lands mid-send.
    let smtp = SmtpServer::start(0, Duration::from_millis(150));
    let env = [("ARSTREAM_SMTP_URL", smtp.url())];
    let mut child = fx.command(&["send"], &env).spawn().unwrap();
    assert!(
        wait_for(Duration::from_secs(120), || smtp.emails().len() >= 5),
        "no mail arrived"
    );
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let before = smtp.emails().len();
    assert!(
        before < 34,
        "the send finished before it was killed ({before} emails)"
    );

    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let emails = smtp.emails();
    let mut ids: Vec<String> = emails
        .iter()
        .map(|e| e.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    let all = ids.len();
    ids.dedup();
    // 30 extra customers, C01, C02, C03 and C11's collector: each once, but the one in
    // flight at the kill, which may come twice with the same Message-ID.
    assert_eq!(ids.len(), 34, "{ids:?}");
    assert!(all - ids.len() <= 1, "{} duplicates", all - ids.len());
    let sent = fx
        .log()
        .iter()
        .filter(|e| e["status"] == "sent" && e["channel"] == "email")
        .count();
    assert_eq!(sent, 34);
}

#[test]
fn preview_shows_the_messages_in_words_without_sending_and_a_bad_policy_names_its_line() {
    let fx = Fixture::new(0);
    let out = fx.run(&["preview", "--limit", "50"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("Subject: Payment reminder: 1,500.00 USD past due"),
        "{shown}"
    );
    assert!(
        shown.contains("Subject: Relance : 2\u{202f}500,50 EUR échu"),
        "{shown}"
    );
    assert!(
        shown.contains("NOT SENDABLE: malformed email address 'not-an-email'"),
        "{shown}"
    );
    assert!(fx.log().is_empty(), "preview recorded something");

    std::fs::write(
        &fx.policy,
        std::fs::read_to_string(&fx.policy)
            .unwrap()
            .replace("channel = \"sms\"", "channel = \"fax\""),
    )
    .unwrap();
    let out = fx.run(&["preview"], &[]);
    assert!(!out.status.success());
    let line = std::fs::read_to_string(&fx.policy)
        .unwrap()
        .lines()
        .position(|l| l.contains("fax"))
        .unwrap()
        + 1;
    let expected = format!("outreach.toml:{line}: channel 'fax' is not email, sms or webhook");
    assert!(text(&out).contains(&expected), "{}", text(&out));

    std::fs::write(
        &fx.policy,
        std::fs::read_to_string(&fx.policy)
            .unwrap()
            .replace("channel = \"fax\"", "channel = \"sms\"")
            .replace("days_past_due >= 1", "days_pst_due >= 1"),
    )
    .unwrap();
    let out = fx.run(&["preview"], &[]);
    assert!(!out.status.success());
    let line = std::fs::read_to_string(&fx.policy)
        .unwrap()
        .lines()
        .position(|l| l.contains("days_pst_due"))
        .unwrap()
        + 1;
    assert!(
        text(&out).contains(&format!("outreach.toml:{line}: rule 'standard': trigger:")),
        "{}",
        text(&out)
    );
}

#[test]
fn a_pipeline_with_outreach_sends_after_its_refresh_once() {
    let fx = Fixture::new(0);
    let config = fx.pipeline("1s");
    let run = || {
        Command::new(bin())
            .arg("--config")
            .arg(&config)
            .args(["run", "--pipeline", "dunning", "--once"])
            .env_remove("ARSTREAM_SMTP_URL")
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("outreach 2025-12-31: 7 sent"),
        "{}",
        text(&out)
    );
    let outbox = fx.state.join("outreach/outbox/2025-12-31");
    let files = std::fs::read_dir(&outbox).unwrap().count();
    assert_eq!(files, 7, "{}", outbox.display());
    let again = run();
    assert!(
        text(&again).contains("outreach 2025-12-31: 0 sent"),
        "{}",
        text(&again)
    );
}

#[test]
fn replay_shows_who_would_have_been_written_to_and_who_paid_after() {
    let fx = Fixture::new(0);
    let out = fx.run(
        &[
            "replay",
            "--from",
            "2025-12-28",
            "--to",
            AS_OF,
            "--format",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let contacts = found["contacts"].as_array().unwrap();
    // C08's invoice was 7 days past due on the 28th and paid on the 29th.
    let payer = contacts
        .iter()
        .find(|c| c["customer_id"] == "C08")
        .expect("C08 contacted");
    assert_eq!(
        (payer["day"].as_str(), payer["stage"].as_str()),
        (Some("2025-12-28"), Some("second"))
    );
    let second = (found["stages"].as_array().unwrap().iter())
        .find(|s| s["rule"] == "standard" && s["stage"] == "second")
        .unwrap();
    // Of the fixture's 6 invoices written to at the second stage, C08's and one more were
    // paid within 7 days (and within 30).
    assert_eq!(
        (
            second["paid_within_7_days"].as_u64(),
            second["paid_within_30_days"].as_u64()
        ),
        (Some(2), Some(2)),
        "{second}"
    );
    // Nobody twice for the same stage, and nothing sent or recorded.
    let mut keys: Vec<String> = contacts
        .iter()
        .map(|c| format!("{}/{}/{}", c["customer_id"], c["audience"], c["stage"]))
        .collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), all, "{keys:?}");
    assert_eq!(
        found["skipped"],
        serde_json::json!({"in dispute": 1, "opted out": 1})
    );
    assert!(fx.log().is_empty());
}

#[test]
fn a_waiting_message_whose_invoices_were_paid_meanwhile_is_skipped_and_a_4xx_is_final() {
    let fx = Fixture::new(0);
    let port = free_port();
    let hooks = HttpServer::start(400);
    let env = [
        ("ARSTREAM_SMTP_URL", format!("smtp://127.0.0.1:{port}")),
        ("ARSTREAM_WEBHOOK_URL", hooks.url("/hooks")),
    ];
    let out = fx.run(&["send"], &env);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // The webhooks were refused for good (HTTP 400): failed, not waiting.
    let failed: Vec<_> = fx
        .log()
        .into_iter()
        .filter(|e| e["status"] == "failed" && e["channel"] == "webhook")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[0]["reason"].as_str().unwrap().contains("HTTP 400"),
        "{failed:?}"
    );

    // C01 pays both invoices while the SMTP server is down.
    let mut b = BatchBuilder::new(Entity::Payments);
    for (n, (invoice, cents)) in [("I-1001", 120_000i128), ("I-1002", 30_000)]
        .into_iter()
        .enumerate()
    {
        b.row(Op::Create, 1_000 + n as i64, TS + 3_600_000_000)
            .text(Some(&format!("P-C01-{n}")))
            .text(Some("C01"))
            .text(Some(invoice))
            .date(Some(D))
            .decimal(cents)
            .text(Some("USD"));
    }
    common::write(
        &fx.feed,
        "payments/month=2025-12/part-00001.parquet",
        &b.finish(),
    );

    let smtp = SmtpServer::start(port, Duration::ZERO);
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let to: Vec<String> = smtp.emails().iter().map(|e| e.to[0].clone()).collect();
    assert_eq!(to.len(), 3, "{to:?}");
    assert!(!to.contains(&"ap@acme.example".to_string()), "{to:?}");
    let acme: Vec<_> = fx.entries_of("I-1001");
    assert!(
        acme.iter()
            .any(|e| e["status"] == "skipped" && e["reason"] == "paid"),
        "{acme:?}"
    );
    assert_eq!(
        hooks.requests().len(),
        2,
        "a failed webhook was tried again"
    );
}
