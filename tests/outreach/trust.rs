//! One test per way outreach once wrote to the wrong customer, wrote twice, or lost a message
//! while marking it sent; each failed before its fix. Real SMTP and HTTP servers on loopback
//! wherever a channel is involved.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::generate::simulate::Op;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::common::servers::{HttpServer, Reply, SmtpMode, SmtpServer, free_port};
use super::{D, Fixture, TS, bin, text, wait_for};

/// A customer added by a test: id, name, language, email.
type NewCustomer<'a> = (&'a str, &'a str, &'a str, &'a str);
/// An invoice added by a test: id, customer, days past due at the as-of date, cents.
type NewInvoice<'a> = (&'a str, &'a str, i32, i64);

/// Add customers and their USD invoices to the fixture's feed, in files of their own.
fn add(fx: &Fixture, customers: &[NewCustomer], invoices: &[NewInvoice]) {
    let mut seq = 10_000;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut b = BatchBuilder::new(Entity::Customers);
    for &(id, name, language, email) in customers {
        b.row(Op::Create, next(), TS)
            .text(Some(id))
            .text(Some(name))
            .text(Some("US"))
            .text(Some("USD"))
            .decimal(10_000_000)
            .int(30)
            .text(Some("enterprise"))
            .text(Some(language))
            .text(Some(email))
            .text(Some("+1-555-0100"))
            .text(Some("K1"));
    }
    super::common::write(
        &fx.feed,
        "customers/month=2025-12/part-00009.parquet",
        &b.finish(),
    );
    let mut b = BatchBuilder::new(Entity::Invoices);
    for &(id, customer, late, cents) in invoices {
        let due = D - late;
        b.row(Op::Create, next(), TS)
            .text(Some(id))
            .text(Some(customer))
            .date(Some(due - 30))
            .date(Some(due))
            .decimal(cents as i128)
            .text(Some("USD"))
            .text(Some("posted"));
    }
    super::common::write(
        &fx.feed,
        "invoices/month=2025-12/part-00009.parquet",
        &b.finish(),
    );
}

/// A payment landing in the feed: id, customer, invoice (none: unapplied), cents.
fn pay(fx: &Fixture, file: &str, payments: &[(&str, &str, Option<&str>, i64)]) {
    let mut b = BatchBuilder::new(Entity::Payments);
    for (n, &(id, customer, invoice, cents)) in payments.iter().enumerate() {
        b.row(Op::Create, 20_000 + n as i64, TS + 3_600_000_000)
            .text(Some(id))
            .text(Some(customer))
            .text(invoice)
            .date(Some(D - 1))
            .decimal(cents as i128)
            .text(Some("USD"));
    }
    super::common::write(
        &fx.feed,
        &format!("payments/month=2025-12/{file}.parquet"),
        &b.finish(),
    );
}

/// The shipped templates copied next to the policy, which then reads them from there.
fn own_templates(fx: &Fixture) -> std::path::PathBuf {
    let from = super::shipped_templates();
    let to = fx.dir().join("templates");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let shown = to.display().to_string();
    fx.edit_policy(|text| {
        let line = text
            .lines()
            .find(|l| l.starts_with("templates = "))
            .unwrap();
        text.replace(line, &format!("templates = \"{shown}\""))
    });
    to
}

/// Log entries with `status`.
fn with_status(fx: &Fixture, status: &str) -> Vec<serde_json::Value> {
    (fx.log().into_iter())
        .filter(|e| e["status"] == status)
        .collect()
}

fn smtp_env(url: String) -> [(&'static str, String); 1] {
    [("ARSTREAM_SMTP_URL", url)]
}

/// Emails received per recipient.
fn per_recipient(smtp: &SmtpServer) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in smtp.emails() {
        *out.entry(e.to[0].clone()).or_default() += 1;
    }
    out
}

// 1. The opt-out list.

#[test]
fn an_opt_out_list_as_a_spreadsheet_writes_it_opts_its_customers_out() {
    let fx = Fixture::new(0);
    // A byte order mark, the reason first with a comma in it, a quoted id.
    std::fs::write(
        fx.dir().join("opt-outs.csv"),
        b"\xEF\xBB\xBFreason,customer_id\r\n\"asked, by phone\",\"C05\"\r\n\"legal hold\",C01\r\n",
    )
    .unwrap();
    let out = fx.run(&["send"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    for invoice in ["I-5001", "I-1001", "I-1002"] {
        let entries = fx.entries_of(invoice);
        assert!(
            entries
                .iter()
                .all(|e| e["status"] == "skipped" && e["reason"] == "opted out"),
            "{invoice}: {entries:?}"
        );
        assert!(!entries.is_empty(), "{invoice}");
    }

    // A list that cannot be read is an error naming the file and line, not an empty list.
    std::fs::write(
        fx.dir().join("opt-outs.csv"),
        b"customer_id,reason\nC05,x\n\xFF\xFE,y\n",
    )
    .unwrap();
    let out = fx.run(&["preview"], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("opt-outs.csv, line 3"),
        "{}",
        text(&out)
    );
}

// 2. A message that waited is decided again when it can go out.

#[test]
fn a_message_that_waited_goes_out_as_things_are_when_it_finally_can() {
    let fx = Fixture::new(0);
    let port = free_port();
    let env = smtp_env(format!("smtp://127.0.0.1:{port}"));
    let out = fx.run(&["send"], &env);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // C01 pays one of its two invoices while the server is down.
    pay(
        &fx,
        "part-00001",
        &[("P-1001", "C01", Some("I-1001"), 120_000)],
    );

    // The preview says what the send will do: the waiting messages decided again.
    let preview = fx.run(&["preview", "--format", "json"], &env);
    assert!(preview.status.success(), "{}", text(&preview));
    let previewed: serde_json::Value = serde_json::from_slice(&preview.stdout).unwrap();
    let about = |m: &serde_json::Value| {
        let mut invoices: Vec<String> = (m["items"].as_array().unwrap().iter())
            .map(|i| i["invoice_id"].as_str().unwrap().to_string())
            .collect();
        invoices.dedup();
        format!("{} {}", m["customer_id"], invoices.join(","))
    };
    let mut previewed: Vec<String> = previewed.as_array().unwrap().iter().map(about).collect();
    previewed.sort();

    let smtp = SmtpServer::start(port, Duration::ZERO);
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    // (The webhooks and the SMS went to the outbox at the first send.)
    let mut sent: Vec<String> = (fx.log().iter())
        .filter(|e| e["status"] == "sent" && e["channel"] == "email")
        .map(|e| {
            let invoices: Vec<&str> = (e["invoices"].as_array().unwrap().iter())
                .map(|i| i.as_str().unwrap())
                .collect();
            format!("{} {}", e["customer_id"], invoices.join(","))
        })
        .collect();
    sent.sort();
    assert_eq!(previewed, sent);
    let acme: Vec<_> = (smtp.emails().into_iter())
        .filter(|e| e.to[0] == "ap@acme.example")
        .collect();
    assert_eq!(acme.len(), 1, "{acme:?}");
    let body = acme[0].body();
    assert!(
        body.contains("I-1002") && !body.contains("I-1001"),
        "{body}"
    );
    let dropped = with_status(&fx, "dropped");
    assert_eq!(dropped.len(), 4, "{dropped:?}");
    assert!(
        dropped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("decided again on 2025-12-31"),
        "{dropped:?}"
    );
}

#[test]
fn a_message_that_waited_a_day_and_the_days_own_make_one_email() {
    let fx = Fixture::new(0);
    let port = free_port();
    let env = smtp_env(format!("smtp://127.0.0.1:{port}"));
    let out = fx.run_at("2025-12-30", &["send"], &env);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    let smtp = SmtpServer::start(port, Duration::ZERO);
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let counts = per_recipient(&smtp);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(counts.contains_key("ap@acme.example"), "{counts:?}");
    assert!(
        (smtp.emails().iter()).all(|e| e.header("Message-ID").unwrap().starts_with("<2025-12-31.")),
        "a message of the 30th went out"
    );
}

// 3. The ledger knows a stage by its reader and day, not by the policy's names.

/// The messages of `day`: customer → its invoices, from the log, and how many entries were
/// skipped that day.
fn messages_on(fx: &Fixture, day: &str) -> (BTreeMap<String, Vec<String>>, usize) {
    let log = fx.log();
    let skipped = (log.iter())
        .filter(|e| e["day"] == day && e["status"] == "skipped")
        .count();
    let sent = (log.into_iter())
        .filter(|e| e["day"] == day && e["status"] == "sent")
        .map(|e| {
            let invoices = (e["invoices"].as_array().unwrap().iter())
                .map(|i| i.as_str().unwrap().to_string())
                .collect();
            (format!("{}/{}", e["customer_id"], e["channel"]), invoices)
        })
        .collect();
    (sent, skipped)
}

#[test]
fn renaming_a_rule_or_a_stage_neither_sends_a_stage_again_nor_stops_the_next() {
    let run = |rename: &dyn Fn(String) -> String| {
        let fx = Fixture::new(0);
        let out = fx.run_at("2025-12-30", &["send"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        fx.edit_policy(rename);
        let preview = fx.run(&["preview"], &[]);
        let out = fx.run(&["send"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        (messages_on(&fx, "2025-12-31"), text(&preview))
    };
    // The same messages, and the same skips (none new: a suppressed entry logged on the
    // 30th is not logged again under its new name).
    let (unchanged, _) = run(&|p| p);
    assert!(!unchanged.0.is_empty(), "{unchanged:?}");
    let (rule_renamed, preview) =
        run(&|p| p.replace("name = \"standard\"", "name = \"dunning-v2\""));
    assert_eq!(rule_renamed, unchanged);
    assert!(
        preview.contains("The policy changed since the last send")
            && preview.contains("is now 'dunning-v2/first'")
            && preview.contains("a name only"),
        "{preview}"
    );
    let (stage_renamed, _) = run(&|p| p.replace("name = \"first\"", "name = \"reminder-1\""));
    assert_eq!(stage_renamed, unchanged);
}

// 4. A message made for a server goes out there or keeps waiting; a dashboard never sends.

#[test]
fn emails_that_wait_for_a_server_never_go_to_the_outbox_instead() {
    let fx = Fixture::new(0);
    let port = free_port();
    let out = fx.run(&["send"], &smtp_env(format!("smtp://127.0.0.1:{port}")));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let waiting = with_status(&fx, "pending").len();
    assert_eq!(waiting, 4);

    // The same send without the server configured: they keep waiting, nothing in the outbox.
    let out = fx.run(&["send"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let outbox = fx.state.join("outreach/outbox/2025-12-31");
    let emails = std::fs::read_dir(&outbox)
        .map(|d| {
            d.filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "eml")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(emails, 0, "emails went to the outbox");
    let pending = with_status(&fx, "pending");
    assert_eq!(pending.len(), 4, "{pending:?}");
    assert!(
        pending[0]["reason"]
            .as_str()
            .unwrap()
            .contains("ARSTREAM_SMTP_URL is not set now"),
        "{pending:?}"
    );
    assert!(
        !fx.log()
            .iter()
            .any(|e| e["channel"] == "email" && e["via"] == "outbox"),
        "an email was recorded sent via the outbox"
    );
}

#[test]
fn opening_a_dashboard_sends_nothing() {
    let fx = Fixture::new(0);
    let config = fx.pipeline("1s");
    // The dashboard on a terminal of its own (script's), for a while after its service
    // caught up, then its terminal goes away.
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/controller.toml");
    let command = format!(
        "stty cols 120 rows 40; {} --config {} dashboard --pipeline dunning --layout {}",
        bin(),
        config.display(),
        layout.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("ARSTREAM_SMTP_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs the dashboard on a terminal");
    let state_seen = wait_for(Duration::from_secs(60), || {
        fx.state.join("checkpoints").is_dir()
    });
    std::thread::sleep(Duration::from_secs(8));
    let _ = child.kill();
    let _ = child.wait();
    assert!(state_seen, "the dashboard's service never caught up");
    assert!(
        !fx.state.join("outreach/ledger.jsonl").exists()
            || fx.log().iter().all(|e| e["status"] != "sent"),
        "the dashboard sent messages"
    );
    assert!(!fx.state.join("outreach/outbox").exists());
}

// 5. An answer lost after the message went whole: once more, then never again.

#[test]
fn a_message_whose_answer_is_lost_is_handed_over_at_most_twice() {
    let fx = Fixture::new(0);
    let smtp = SmtpServer::start_with(0, Duration::ZERO, SmtpMode::DropAfterData);
    let env = smtp_env(smtp.url());
    let out = fx.run(&["send"], &env);
    let _ = fx.run(&["send"], &env);
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for e in smtp.emails() {
        *copies.entry(e.header("Message-ID").unwrap()).or_default() += 1;
    }
    assert_eq!(copies.len(), 4, "{copies:?} {}", text(&out));
    assert!(copies.values().all(|&n| n <= 2), "{copies:?}");
    let failed: Vec<_> = (with_status(&fx, "failed").into_iter())
        .filter(|e| e["channel"] == "email" && e["customer_id"] != "C04")
        .collect();
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("may have arrived"),
        "{failed:?}"
    );
}

// 6. A redirect of a POST is not followed as a GET.

#[test]
fn a_webhook_redirected_elsewhere_waits_and_is_never_sent_as_a_get() {
    let fx = Fixture::new(0);
    let target = HttpServer::start(200);
    let moved = target.url("/elsewhere");
    let hooks = HttpServer::start_with(move |_, _| Reply::Redirect(302, moved.clone()));
    let env = [("ARSTREAM_WEBHOOK_URL", hooks.url("/hooks"))];
    let out = fx.run(&["send"], &env);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(target.requests().is_empty(), "{:?}", target.requests());
    let cases: Vec<_> = (fx.log().into_iter())
        .filter(|e| e["channel"] == "webhook")
        .collect();
    assert_eq!(cases.len(), 2);
    for case in &cases {
        assert_eq!(case["status"], "pending", "{case}");
    }
    assert!(
        cases[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&target.url("/elsewhere")),
        "{cases:?}"
    );
    assert!(text(&out).contains("302"), "{}", text(&out));

    // A 307 keeps the method and the body: followed.
    let moved = target.url("/kept");
    let hooks = HttpServer::start_with(move |_, _| Reply::Redirect(307, moved.clone()));
    let env = [("ARSTREAM_WEBHOOK_URL", hooks.url("/hooks"))];
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let kept: Vec<_> = (target.requests().into_iter())
        .filter(|r| r.path == "/kept")
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter()
            .all(|r| r.method == "POST" && r.body.contains("message_id"))
    );
}

// 7. A server that refuses us is told from a refused recipient.

#[test]
fn a_server_that_refuses_the_sender_keeps_the_emails_waiting_and_fails_the_send() {
    for mode in [
        SmtpMode::RefuseSender("530 5.7.0 Authentication required".into()),
        SmtpMode::RefuseGreeting("554 5.3.2 No service here".into()),
    ] {
        let fx = Fixture::new(0);
        let refusing = SmtpServer::start_with(0, Duration::ZERO, mode.clone());
        let out = fx.run(&["send"], &smtp_env(refusing.url()));
        assert_eq!(out.status.code(), Some(4), "{mode:?}: {}", text(&out));
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        let code = if said.contains("530") { "530" } else { "554" };
        assert!(
            said.contains("error: the email server refused") && said.contains(code),
            "{said}"
        );
        let emails: Vec<_> = (fx.log().into_iter())
            .filter(|e| e["channel"] == "email" && e["customer_id"] != "C04")
            .collect();
        assert!(
            emails.iter().all(|e| e["status"] == "pending"),
            "{mode:?}: {emails:?}"
        );
        let good = SmtpServer::start(0, Duration::ZERO);
        let out = fx.run(&["send"], &smtp_env(good.url()));
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(good.emails().len(), 4, "{mode:?}");
    }
}

#[test]
fn a_refused_recipient_fails_that_message_only() {
    let fx = Fixture::new(0);
    let smtp = SmtpServer::start_with(
        0,
        Duration::ZERO,
        SmtpMode::RefuseRecipient("compta@durand.example".into()),
    );
    let out = fx.run(&["send"], &smtp_env(smtp.url()));
    assert!(out.status.success(), "{}", text(&out));
    let durand: Vec<_> = (with_status(&fx, "failed").into_iter())
        .filter(|e| e["customer_id"] == "C02")
        .collect();
    assert_eq!(durand.len(), 1);
    assert!(durand[0]["reason"].as_str().unwrap().contains("550"));
    let sent = (with_status(&fx, "sent").into_iter())
        .filter(|e| e["channel"] == "email")
        .count();
    assert_eq!(sent, 3);
}

// 8. A template that fails fails its message alone; a typo is found before anything goes.

#[test]
fn a_template_typo_is_found_before_anything_goes_and_a_failing_message_fails_alone() {
    let fx = Fixture::new(0);
    let templates = own_templates(&fx);
    // No customer of the fixture reads French final notices: only the check finds this one.
    let file = templates.join("final-notice.fr.txt");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{{{{ customer.nmae }}}}\n{good}")).unwrap();
    for command in ["preview", "send"] {
        let out = fx.run(&[command], &[]);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("final-notice.fr.txt:1: undefined value"),
            "{}",
            text(&out)
        );
    }
    assert!(!fx.state.join("outreach/ledger.jsonl").exists());
    std::fs::write(&file, good).unwrap();

    // An error only C02's message meets: it fails with its reason, the others go.
    let file = templates.join("reminder.fr.txt");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{{% if customer.id == \"C02\" %}}{{{{ nope }}}}{{% endif %}}{good}"),
    )
    .unwrap();
    let out = fx.run(&["send"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let c02: Vec<_> = (fx.log().into_iter())
        .filter(|e| e["customer_id"] == "C02" && e["channel"] == "email")
        .collect();
    assert_eq!(c02.len(), 1, "{c02:?}");
    assert_eq!(c02[0]["status"], "failed");
    assert!(
        c02[0]["reason"]
            .as_str()
            .unwrap()
            .contains("reminder.fr.txt:1: undefined value"),
        "{c02:?}"
    );
    // Every file of the outbox has its record.
    let outbox = fx.state.join("outreach/outbox/2025-12-31");
    let files = std::fs::read_dir(&outbox).unwrap().count();
    let recorded = (with_status(&fx, "sent").into_iter())
        .filter(|e| e["via"] == "outbox")
        .count();
    assert_eq!(files, recorded);
    assert!(files >= 5, "{files}");
}

// 9. The service sends when the window opens and while messages wait, without a new file.

/// Start `run --pipeline dunning --headless`, its output collected.
fn service(
    config: &Path,
    env: &[(&str, String)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut command = Command::new(bin());
    command
        .arg("--config")
        .arg(config)
        .args(["run", "--pipeline", "dunning", "--headless"])
        .env_remove("ARSTREAM_SMTP_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn stop(mut child: std::process::Child) {
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

#[test]
fn the_service_sends_waiting_messages_again_once_the_server_is_back_without_a_new_file() {
    let fx = Fixture::new(0);
    fx.edit_policy(|p| {
        p.replace(
            "max_wait = \"100ms\"",
            "max_wait = \"100ms\"\nresend_first_wait = \"1s\"\nresend_max_wait = \"2s\"",
        )
    });
    let config = fx.pipeline("1h");
    let port = free_port();
    let (child, lines) = service(&config, &smtp_env(format!("smtp://127.0.0.1:{port}")));
    let started = Instant::now();
    let mut waited = false;
    while started.elapsed() < Duration::from_secs(90) && !waited {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            waited = line.contains("outreach") && !line.contains("waiting=0");
        }
    }
    assert!(waited, "no send left messages waiting");
    let smtp = SmtpServer::start(port, Duration::ZERO);
    let arrived = wait_for(Duration::from_secs(20), || smtp.emails().len() >= 4);
    stop(child);
    assert!(
        arrived,
        "{} emails after the server came back",
        smtp.emails().len()
    );
    assert_eq!(smtp.emails().len(), 4);
}

#[test]
fn the_service_sends_when_the_send_window_opens() {
    use chrono::Timelike;
    let fx = Fixture::new(0);
    // A window that opens at the next minute (UTC), and not before.
    let mut now = chrono::Utc::now();
    if now.hour() == 23 && now.minute() == 59 {
        std::thread::sleep(Duration::from_secs(61 - u64::from(now.second())));
        now = chrono::Utc::now();
    }
    let opens = now + chrono::Duration::minutes(1);
    let window = format!(
        "[send_window]\nstart = \"{:02}:{:02}\"\nend = \"24:00\"\ntimezone = \"UTC\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\n[retry]",
        opens.hour(),
        opens.minute()
    );
    fx.edit_policy(|p| p.replace("[retry]", &window));
    let config = fx.pipeline("1h");
    let smtp = SmtpServer::start(0, Duration::ZERO);
    let (child, _lines) = service(&config, &smtp_env(smtp.url()));
    std::thread::sleep(Duration::from_secs(2));
    let early = smtp.emails().len();
    let arrived = wait_for(Duration::from_secs(100), || smtp.emails().len() >= 4);
    stop(child);
    assert!(
        chrono::Utc::now() >= opens.with_second(0).unwrap(),
        "the test ran past its window"
    );
    assert_eq!(early, 0, "sent before the window opened");
    assert!(arrived, "nothing sent after the window opened");
}

// 10. A signal stops a send within seconds, with what was sent recorded.

/// Run `send` in the background, signal it once `ready`, and how long it took to stop.
fn signalled(fx: &Fixture, env: &[(&str, String)], ready: impl Fn() -> bool) -> Duration {
    let mut child = fx
        .command(&["send"], env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(60), ready), "never got going");
    let signalled = Instant::now();
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopped = wait_for(Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    let took = signalled.elapsed();
    if !stopped {
        let _ = child.kill();
    }
    let _ = child.wait();
    took
}

#[test]
fn a_send_stops_within_seconds_of_a_signal_while_a_server_hangs_or_while_it_waits_to_retry() {
    let fx = Fixture::new(0);
    let hanging = HttpServer::start_with(|_, _| Reply::Hang);
    let env = [("ARSTREAM_WEBHOOK_URL", hanging.url("/hooks"))];
    let took = signalled(&fx, &env, || !hanging.requests().is_empty());
    assert!(took < Duration::from_secs(3), "{took:?}");
    let cases: Vec<_> = (fx.log().into_iter())
        .filter(|e| e["channel"] == "webhook")
        .collect();
    assert!(cases.iter().all(|e| e["status"] == "pending"), "{cases:?}");

    let fx = Fixture::new(0);
    fx.edit_policy(|p| {
        p.replace("attempts = 2", "attempts = 5")
            .replace("first_wait = \"50ms\"", "first_wait = \"20s\"")
            .replace("max_wait = \"100ms\"", "max_wait = \"30s\"")
    });
    let busy = HttpServer::start_with(|_, _| Reply::RetryAfter(503, 20));
    let env = [("ARSTREAM_WEBHOOK_URL", busy.url("/hooks"))];
    let took = signalled(&fx, &env, || !busy.requests().is_empty());
    assert!(took < Duration::from_secs(3), "{took:?}");
    let pending = with_status(&fx, "pending");
    assert!(
        pending
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("HTTP 503")),
        "{pending:?}"
    );
}

#[test]
fn a_busy_server_is_asked_again_no_sooner_than_it_said() {
    let fx = Fixture::new(0);
    fx.edit_policy(|p| p.replace("max_wait = \"100ms\"", "max_wait = \"5s\""));
    let busy = HttpServer::start_with(|_, n| match n {
        0 => Reply::RetryAfter(503, 2),
        _ => Reply::Status(200),
    });
    let env = [("ARSTREAM_WEBHOOK_URL", busy.url("/hooks"))];
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let requests = busy.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}"
    );
    assert_eq!(requests[0].body, requests[1].body);
}

// 11. Reminders state what is past due apart from what is not yet due.

#[test]
fn a_reminder_counts_only_past_due_invoices_as_past_due() {
    let fx = Fixture::new(0);
    add(
        &fx,
        &[("C13", "Mixed Dues Inc", "en-US", "ap@mixed.example")],
        &[
            ("I-13001", "C13", 5, 82_482),
            ("I-13002", "C13", -2, 163_025),
        ],
    );
    fx.edit_policy(|p| {
        p.replace("trigger = \"days_past_due >= 1\"", "trigger = \"days_past_due >= -3\"")
            .replace(
                "[[rules.stages]]\nname = \"first\"",
                "[[rules.stages]]\nname = \"courtesy\"\nday = -3\nchannel = \"email\"\ntemplate = \"courtesy\"\n\n[[rules.stages]]\nname = \"first\"",
            )
    });
    let out = fx.run(&["preview", "--customer", "C13"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("Subject: Payment reminder: 824.82 USD past due"),
        "{shown}"
    );
    let (past, not_yet) = shown
        .split_once("Not yet due")
        .expect("a not-yet-due section");
    assert!(
        past.contains("I-13001") && !past.contains("I-13002"),
        "{shown}"
    );
    assert!(not_yet.contains("I-13002"), "{shown}");
}

// 12. An error answer's body is read a few KiB at most.

#[test]
fn a_huge_error_answer_is_not_read_whole() {
    let fx = Fixture::new(0);
    let offered = 1_000_000_000;
    let hooks = HttpServer::start_with(move |_, _| Reply::BigBody(400, offered));
    let env = [("ARSTREAM_WEBHOOK_URL", hooks.url("/hooks"))];
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let failed: Vec<_> = (with_status(&fx, "failed").into_iter())
        .filter(|e| e["channel"] == "webhook")
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 400")
    );
    let written = hooks.body_bytes_written();
    assert!(written < offered / 10, "{written} bytes were taken");
}

// 15. A customer's name cannot end an email header early.

#[test]
fn a_line_break_in_a_name_stays_inside_the_subject() {
    let fx = Fixture::new(0);
    add(
        &fx,
        &[(
            "C15",
            "Evil Corp\r\nBcc: victim@other.example",
            "en-US",
            "ap@evil.example",
        )],
        &[("I-15001", "C15", 3, 10_000)],
    );
    let templates = own_templates(&fx);
    let file = templates.join("reminder.en.txt");
    let text_ = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text_.replacen("Subject: ", "Subject: {{ customer.name }}: ", 1),
    )
    .unwrap();
    let smtp = SmtpServer::start(0, Duration::ZERO);
    let out = fx.run(&["send"], &smtp_env(smtp.url()));
    assert!(out.status.success(), "{}", text(&out));
    let email = (smtp.emails().into_iter())
        .find(|e| e.to[0] == "ap@evil.example")
        .expect("C15's email");
    assert!(email.header("Bcc").is_none(), "{}", email.data);
    assert!(
        email.subject().contains("Evil Corp") && email.subject().contains("victim@other.example"),
        "{}",
        email.data
    );
    assert_eq!(email.to, ["ap@evil.example"]);
}

// 16. Every trigger is planned whole when the policy is checked.

#[test]
fn a_trigger_that_cannot_run_is_reported_at_its_line_before_sending() {
    let fx = Fixture::new(0);
    let line = |needle: &str| {
        (std::fs::read_to_string(&fx.policy).unwrap().lines())
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    // A trailing comment is fine.
    fx.edit_policy(|p| {
        p.replace(
            "\"days_past_due >= 1\"",
            "\"days_past_due >= 1 -- overdue\"",
        )
    });
    let out = fx.run(&["preview"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    for (trigger, says) in [
        ("days_past_due + 1", "not true or false"),
        (
            "invoice_id IN (SELECT invoice_id FROM disputes)",
            "InSubquery",
        ),
        ("CAST(customer_name AS INT) > 0", "Cannot cast"),
    ] {
        fx.edit_policy(|p| {
            let old = p
                .lines()
                .find(|l| l.contains("overdue\"") || l.contains("FAULTY"))
                .unwrap()
                .to_string();
            p.replace(&old, &format!("trigger = \"{trigger} -- FAULTY\""))
        });
        let at = line("FAULTY");
        for command in ["preview", "send"] {
            let out = fx.run(&[command], &[]);
            assert!(!out.status.success(), "{trigger}: {}", text(&out));
            let expected = format!("outreach.toml:{at}: rule 'standard': trigger:");
            assert!(text(&out).contains(&expected), "{trigger}: {}", text(&out));
            assert!(text(&out).contains(says), "{trigger}: {}", text(&out));
        }
    }
}

// 17. The log reads the ledger whatever state the policy's templates are in.

#[test]
fn the_log_reads_the_ledger_when_a_template_is_missing() {
    let fx = Fixture::new(0);
    let templates = own_templates(&fx);
    assert!(fx.run(&["send"], &[]).status.success());
    std::fs::remove_file(templates.join("reminder.en.txt")).unwrap();
    let out = fx.run(&["log"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("I-1001"), "{}", text(&out));
    assert!(!fx.run(&["preview"], &[]).status.success());
}

// 18. Cash received on no invoice that covers what is due holds the reminders.

#[test]
fn unapplied_cash_that_covers_what_is_due_holds_the_customer() {
    let fx = Fixture::new(0);
    add(
        &fx,
        &[
            ("C16", "Paid Ahead Inc", "en-US", "ap@ahead.example"),
            ("C17", "Paid Some Inc", "en-US", "ap@some.example"),
        ],
        &[
            ("I-16001", "C16", 10, 34_754),
            ("I-17001", "C17", 10, 10_000),
        ],
    );
    pay(
        &fx,
        "part-00002",
        &[("P-16", "C16", None, 34_754), ("P-17", "C17", None, 5_000)],
    );
    let out = fx.run(&["send"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let ahead = fx.entries_of("I-16001");
    assert!(
        !ahead.is_empty()
            && ahead
                .iter()
                .all(|e| e["status"] == "skipped" && e["reason"] == "unapplied cash"),
        "{ahead:?}"
    );
    let some = fx.entries_of("I-17001");
    assert!(some.iter().any(|e| e["status"] == "sent"), "{some:?}");
    let out = Command::new(bin())
        .arg("--feed")
        .arg(&fx.feed)
        .arg("--state")
        .arg(&fx.state)
        .args(["--as-of", super::AS_OF, "sql"])
        .arg("SELECT unapplied_cash, customer_due_rc FROM outreach_invoices WHERE customer_id = 'C16'")
        .output()
        .unwrap();
    assert!(text(&out).contains("347.54"), "{}", text(&out));
}

// 19. A payment link carries a token no reader can forge.

/// The query parameters of the first link of `body` that starts with `prefix`.
fn link_params(body: &str, prefix: &str) -> BTreeMap<String, String> {
    let at = body.find(prefix).expect("a payment link");
    let link = body[at..].split_whitespace().next().unwrap();
    let query = link.split_once('?').unwrap().1;
    query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.replace("%2C", ","))
        })
        .collect()
}

fn hmac_hex(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The fixture's payment link with its expiry and token.
fn signed_links(fx: &Fixture) {
    fx.edit_policy(|p| {
        p.replace(
            "payment_link = \"https://pay.example.com/{{ customer_id }}\"",
            "payment_link = \"https://pay.example.com/{{ customer_id }}?invoices={{ invoice_ids | urlencode }}&expires={{ expires }}&token={{ token }}\"",
        )
    });
}

#[test]
fn a_payment_link_is_signed_for_its_customer_invoices_and_expiry() {
    let fx = Fixture::new(0);
    signed_links(&fx);
    let smtp = SmtpServer::start(0, Duration::ZERO);
    let mut env = smtp_env(smtp.url()).to_vec();
    env.push(("ARSTREAM_PAYMENT_LINK_SECRET", "s3cret-key".into()));
    let out = fx.run(&["send"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let acme = (smtp.emails().into_iter())
        .find(|e| e.to[0] == "ap@acme.example")
        .unwrap();
    let params = link_params(&acme.body(), "https://pay.example.com/C01?");
    assert_eq!(params["invoices"], "I-1001,I-1002");
    // Valid the 30 days after the message's day (2025-12-31): until 2026-01-31 00:00 UTC.
    assert_eq!(params["expires"], "1769817600");
    let signed = format!("C01\n{}\n{}", params["invoices"], params["expires"]);
    assert_eq!(params["token"], hmac_hex(b"s3cret-key", &signed));
    // Another customer's id with this token does not verify.
    assert_ne!(
        params["token"],
        hmac_hex(b"s3cret-key", &signed.replacen("C01", "C02", 1))
    );

    // Without a secret in the environment, one is made once and kept, readable by its owner.
    let fx = Fixture::new(0);
    signed_links(&fx);
    let out = fx.run(&["send"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let secret_file = fx.state.join("outreach/payment-link.secret");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    let outbox = fx.state.join("outreach/outbox/2025-12-31");
    let acme = (std::fs::read_dir(&outbox).unwrap())
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".C01."))
        .unwrap();
    let eml = super::common::servers::Email {
        from: String::new(),
        to: Vec::new(),
        data: std::fs::read_to_string(acme).unwrap(),
    };
    let params = link_params(&eml.body(), "https://pay.example.com/C01?");
    let signed = format!("C01\n{}\n{}", params["invoices"], params["expires"]);
    assert_eq!(params["token"], hmac_hex(secret.trim().as_bytes(), &signed));
}

// Replay leaves nothing on a day the send window never opens.

#[test]
fn replay_sends_nothing_on_a_day_outside_the_send_window() {
    let fx = Fixture::new(0);
    fx.edit_policy(|p| {
        p.replace(
            "[retry]",
            "[send_window]\nstart = \"00:00\"\nend = \"24:00\"\ntimezone = \"UTC\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\"]\n\n[retry]",
        )
    });
    let out = fx.run(
        &[
            "replay",
            "--from",
            "2025-12-27",
            "--to",
            super::AS_OF,
            "--format",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let contacts = found["contacts"].as_array().unwrap();
    // 2025-12-28 is a Sunday: nothing that day; the days around it send.
    let on = |day: &str| contacts.iter().filter(|c| c["day"] == day).count();
    assert_eq!(on("2025-12-28"), 0, "{contacts:?}");
    assert!(on("2025-12-27") > 0 && on("2025-12-29") > 0, "{contacts:?}");
}
