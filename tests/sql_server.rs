//! `arstream serve` with real clients on loopback: psql (Debian's, on the machine) and
//! psycopg 3 (from PyPI, into the build folder's venv): totals equal `arstream kpi`'s, the
//! catalog commands list the tables and views, prepared statements with parameters, typed
//! values, a wrong password refused, writes and COPY refused with nothing written, a file
//! landed while it serves visible to the next query, the time limit, a cancel, a query past
//! its memory, 20 clients at once; and the refusals of an unsafe start.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

/// A running `arstream serve` and the lines it prints.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl Served {
    /// Serve `feed` into `state` on a free loopback port, once its first snapshot is served.
    fn start(feed: &Path, state: &Path, password: Option<&str>, extra: &[&str]) -> Served {
        let mut command = Command::new(BIN);
        command
            .current_dir(std::env::temp_dir())
            .args(["--feed", feed.to_str().unwrap(), "--state"])
            .arg(state)
            .args(["--as-of", "2025-03-31", "serve", "--listen", "127.0.0.1:0"])
            .args(["--interval", "0.2"])
            .args(extra)
            .env_remove("ARSTREAM_SERVE_PASSWORD")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(password) = password {
            command.env("ARSTREAM_SERVE_PASSWORD", password);
        }
        let mut child = command.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut served = Served {
            child,
            lines,
            port: 0,
        };
        let listening = served.line_with("SQL server on ");
        let addr = listening.split_whitespace().nth(3).unwrap();
        served.port = addr.rsplit(':').next().unwrap().parse().unwrap();
        served.line_with("sql serving sequence=1");
        served
    }

    /// The next line that contains `text`, within a minute.
    fn line_with(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with '{text}'"));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// psql's unaligned output of `command`, and whether it succeeded.
    fn psql(&self, command: &str, password: Option<&str>) -> (bool, String) {
        let mut psql = Command::new("psql");
        psql.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "arstream", "-d", "arstream", "-X", "-A", "-t"])
            .args([
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                "VERBOSITY=verbose",
                "-c",
                command,
            ])
            .env_remove("PGPASSWORD");
        if let Some(password) = password {
            psql.env("PGPASSWORD", password);
        }
        let out = psql
            .output()
            .expect("psql (Debian's postgresql-client) on the PATH");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text.trim().to_string())
    }

    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("serve did not stop within 30 s of SIGTERM");
    }
}

/// A generated feed of `months` months under `dir/feed` (the first month only when `first`).
fn feed(dir: &Path) -> (PathBuf, PathBuf) {
    let staging = dir.join("staging");
    common::generated_feed(&staging, 30, 3, 11, 100_000);
    let feed = dir.join("feed");
    copy_months(&staging, &feed, &["month=2025-01", "month=2025-02"]);
    (staging, feed)
}

fn copy_months(from: &Path, to: &Path, months: &[&str]) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).unwrap();
        if months.iter().any(|m| rel.to_string_lossy().contains(m)) {
            let target = to.join(rel);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            // Written aside, then renamed in: as connectors land files.
            let aside = to.parent().unwrap().join(".landing");
            std::fs::copy(&entry, &aside).unwrap();
            std::fs::rename(&aside, &target).unwrap();
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The JSON lines a client program printed, one check each; the program must succeed.
fn checks(mut program: Command) -> Vec<serde_json::Value> {
    let out = program.output().expect("the client program starts");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout.lines())
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Those of `checks` named `name` (one at least).
fn named<'a>(checks: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    let found: Vec<_> = checks.iter().filter(|c| c["check"] == name).collect();
    assert!(!found.is_empty(), "no check '{name}' in {checks:#?}");
    found
}

fn clients_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// `arstream kpi`'s total AR of the state as checkpointed.
fn kpi_total(feed: &Path, state: &Path) -> f64 {
    let kpi = offline(feed, state, &["kpi", "--format", "json"]);
    let kpi: serde_json::Value = serde_json::from_str(&kpi).unwrap();
    let row = if kpi.is_array() { &kpi[0] } else { &kpi };
    row["total_ar"]
        .to_string()
        .trim_matches('"')
        .parse()
        .unwrap()
}

/// What `arstream --offline … COMMAND` prints on the served state.
fn offline(feed: &Path, state: &Path, command: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(std::env::temp_dir())
        .args(["--offline", "--feed", feed.to_str().unwrap(), "--state"])
        .arg(state)
        .args(["--as-of", "2025-03-31"])
        .args(command)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn psql_reads_the_snapshots_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (staging, feed) = feed(dir.path());
    let state = dir.path().join("state");
    // Each query's operators may hold 64 MiB.
    let served = Served::start(&feed, &state, None, &["--query-memory", "64"]);

    let (ok, total) = served.psql("SELECT total_ar FROM kpi_summary", None);
    assert!(ok, "{total}");
    let (ok, tables) = served.psql("\\dt", None);
    assert!(
        ok && tables.contains("|invoices_changes|table|"),
        "{tables}"
    );
    let (ok, views) = served.psql("\\dv", None);
    assert!(ok && views.contains("|kpi_summary|view|"), "{views}");
    assert!(views.contains("|invoices|view|"), "{views}");
    let (ok, columns) = served.psql("\\d kpi_summary", None);
    assert!(ok && columns.contains("total_ar|numeric"), "{columns}");
    let (ok, top) = served.psql(
        "SELECT customer_id FROM worklist ORDER BY rank LIMIT 3",
        None,
    );
    assert!(ok && top.lines().count() == 3, "{top}");
    let worked = "SELECT count(*) AS customers, sum(open_amount_rc) AS open FROM worklist";
    let (ok, worklist) = served.psql(worked, None);
    assert!(ok, "{worklist}");

    // Writes, COPY and the engine's settings are refused, and nothing is written.
    let out_file = dir.path().join("copied.csv");
    for (statement, code) in [
        (
            "INSERT INTO invoices (invoice_id) VALUES ('X')".to_string(),
            "25006",
        ),
        ("DROP VIEW aging".to_string(), "25006"),
        (
            format!("COPY invoices TO '{}'", out_file.display()),
            "25006",
        ),
        (
            "SET datafusion.execution.batch_size = 1".to_string(),
            "42501",
        ),
    ] {
        let (ok, said) = served.psql(&statement, None);
        assert!(!ok, "{statement} was not refused: {said}");
        assert!(said.contains(code), "{statement}: {said}");
    }
    assert!(!out_file.exists(), "COPY wrote a file");
    let (_, still) = served.psql("SELECT count(*) FROM aging", None);
    assert!(still.parse::<u64>().is_ok(), "{still}");

    // What DBeaver, Metabase, Grafana, pgAdmin and drivers send at start, all answered.
    let startup = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &served.port.to_string()])
        .args([
            "-U",
            "arstream",
            "-d",
            "arstream",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .arg("-f")
        .arg(clients_folder().join("bi_startup.sql"))
        .output()
        .unwrap();
    assert!(
        startup.status.success(),
        "{}",
        String::from_utf8_lossy(&startup.stderr)
    );

    // Excel and Power BI reach PostgreSQL through psqlODBC, which prepares each statement
    // through the protocol and frees it with SQL DEALLOCATE: a transaction of reads commits.
    let odbc = dir.path().join("odbc");
    std::fs::create_dir_all(&odbc).unwrap();
    std::fs::write(
        odbc.join("odbcinst.ini"),
        "[PostgreSQL Unicode]\nDriver=/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so\n",
    )
    .unwrap();
    std::fs::write(
        odbc.join("odbc.ini"),
        format!(
            "[arstream]\nDriver=PostgreSQL Unicode\nServername=127.0.0.1\nPort={}\nDatabase=arstream\nUsername=arstream\nSSLmode=disable\n",
            served.port
        ),
    )
    .unwrap();
    let mut isql = Command::new("isql")
        .args(["-v", "-b", "arstream"])
        .env("ODBCSYSINI", &odbc)
        .env("ODBCINI", odbc.join("odbc.ini"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("isql (the CI installs unixodbc and odbc-postgresql from Debian)");
    use std::io::Write as _;
    (isql.stdin.take().unwrap())
        .write_all(
            b"BEGIN\nSELECT total_ar FROM kpi_summary\nSELECT count(*) FROM worklist\nCOMMIT\n",
        )
        .unwrap();
    let out = isql.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.contains(&total), "{said}");
    assert!(
        !said.contains("aborted") && !said.contains("ERROR"),
        "{said}"
    );

    // A query past its memory fails with a sentence, and the server goes on.
    let (ok, said) = served.psql(
        "SELECT count(*) FROM generate_series(1, 20000000) a JOIN generate_series(1, 20000000) b ON a.value = b.value",
        None,
    );
    assert!(!ok && said.contains("Resources exhausted"), "{said}");
    let (ok, after) = served.psql("SELECT total_ar FROM kpi_summary", None);
    assert!(ok && after == total, "{after}");

    // A month landed while it serves is in the next query after its refresh.
    copy_months(&staging, &feed, &["month=2025-03"]);
    served.line_with("sql serving sequence=2");
    let (ok, later) = served.psql("SELECT total_ar FROM kpi_summary", None);
    assert!(ok, "{later}");
    assert_ne!(later, total, "the landed month is not visible");
    // The worklist (whose rows each snapshot keeps for its readers) moved with it, to what
    // `arstream sql` says on the same state.
    let (ok, worklist_later) = served.psql(worked, None);
    assert!(
        ok && worklist_later != worklist,
        "{worklist} / {worklist_later}"
    );
    served.stop();
    let said = offline(&feed, &state, &["sql", "--format", "csv", worked]);
    assert_eq!(
        said.lines().nth(1),
        Some(worklist_later.replace('|', ",").as_str())
    );
    let later: f64 = later.parse().unwrap();
    assert_eq!(later, kpi_total(&feed, &state), "serve and kpi disagree");
}

#[test]
fn psycopg_signs_in_prepares_cancels_and_many_clients_query_at_once() {
    let python = common::python_with("psycopg[binary]", "psycopg");
    let dir = tempfile::tempdir().unwrap();
    let (_, feed) = feed(dir.path());
    let state = dir.path().join("state");
    let password = "pencil-of-arstream";
    let served = Served::start(&feed, &state, Some(password), &[]);
    // psql without the password is refused too.
    let (ok, said) = served.psql("SELECT 1", Some("wrong"));
    assert!(!ok && said.to_lowercase().contains("password"), "{said}");

    let mut script = Command::new(python);
    script.arg(clients_folder().join("psycopg_check.py")).args([
        "127.0.0.1",
        &served.port.to_string(),
        "arstream",
        password,
    ]);
    let psycopg = checks(script);
    let stdout = format!("{psycopg:#?}");
    let check = |name: &str| named(&psycopg, name);
    assert_eq!(check("wrong_password")[0]["refused"], true, "{stdout}");
    let totals = check("totals")[0];
    assert_eq!(totals["total_ar_type"], "Decimal", "{stdout}");
    assert_eq!(totals["as_of"], "2025-03-31", "{stdout}");
    assert_eq!(totals["as_of_type"], "date", "{stdout}");
    let prepared = check("prepared")[0];
    assert_eq!(prepared["rows"], 3, "{stdout}");
    assert_eq!(
        prepared["types"],
        serde_json::json!(["Decimal", "date", "str"]),
        "{stdout}"
    );
    for write in check("write") {
        assert_eq!(write["refused"], true, "{write}");
        assert_eq!(write["sqlstate"], "25006", "{write}");
    }
    let timeout = check("timeout")[0];
    assert_eq!(timeout["sqlstate"], "57014", "{stdout}");
    assert!(timeout["seconds"].as_f64().unwrap() < 5.0, "{stdout}");
    let cancel = check("cancel")[0];
    assert_eq!(cancel["sqlstate"], "57014", "{stdout}");
    assert!(cancel["seconds"].as_f64().unwrap() < 5.0, "{stdout}");
    assert_eq!(check("after_cancel")[0]["one"], 1, "{stdout}");
    let many = check("many")[0];
    assert_eq!(many["clients"], 20, "{stdout}");
    assert_eq!(many["distinct"], 1, "{stdout}");
    assert!(many["slowest"].as_f64().unwrap() < 8.0, "{stdout}");
    // PgJDBC (Debian's libpostgresql-jdbc-java) with the machine's Java: what DBeaver and
    // Metabase connect with. Every check holds, int and double parameters for money included.
    let jar = "/usr/share/java/postgresql.jar";
    assert!(
        Path::new(jar).exists(),
        "{jar} missing: install Debian's libpostgresql-jdbc-java (.ci/run does)"
    );
    let mut java = Command::new("java");
    java.args(["-cp", jar])
        .arg(clients_folder().join("JdbcCheck.java"))
        .args(["127.0.0.1", &served.port.to_string(), "arstream", password]);
    let jdbc = checks(java);
    for check in &jdbc {
        let refused = check["check"] == "wrong_password";
        assert!(
            check["ok"] == true || (refused && check["refused"] == true),
            "JDBC: {check}"
        );
    }
    for name in [
        "get_tables",
        "totals",
        "prepared",
        "prepared_int",
        "prepared_double",
        "write",
    ] {
        named(&jdbc, name);
    }
    assert_eq!(named(&jdbc, "totals")[0]["total_ar_scale"], 2, "{jdbc:?}");

    // SQLAlchemy 2 and pandas, from PyPI: a stock engine connects (its version and savepoint
    // probes), read_sql with and without parameters, to_sql refused.
    let python = common::python_with("psycopg[binary] sqlalchemy pandas", "sqlalchemy, pandas");
    let mut pandas = Command::new(python);
    pandas.arg(clients_folder().join("pandas_check.py")).args([
        "127.0.0.1",
        &served.port.to_string(),
        "arstream",
        password,
    ]);
    let notebook = checks(pandas);
    for name in [
        "connect_stock",
        "read_sql_kpi",
        "read_sql_params_decimal",
        "read_sql_params_int",
        "read_sql_params_float",
        "to_sql",
    ] {
        let check = named(&notebook, name)[0];
        assert_eq!(check["ok"], true, "pandas {name}: {check}");
    }
    served.stop();
    assert!(!Path::new("/tmp/arstream-copy-out.csv").exists());
    let total: f64 = totals["total_ar"].as_str().unwrap().parse().unwrap();
    assert_eq!(total, kpi_total(&feed, &state), "{stdout}");
}

#[test]
fn an_unsafe_start_is_refused_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |args: &[&str], password: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .current_dir(std::env::temp_dir())
            .args(["--feed", dir.path().join("feed").to_str().unwrap()])
            .args(["--state", dir.path().join("state").to_str().unwrap()])
            .arg("serve")
            .args(args)
            .env_remove("ARSTREAM_SERVE_PASSWORD");
        if let Some(password) = password {
            command.env("ARSTREAM_SERVE_PASSWORD", password);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, said) = serve(&["--listen", "0.0.0.0:0"], None);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("without a password"), "{said}");
    let (code, said) = serve(&["--listen", "0.0.0.0:0"], Some("secret"));
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("without TLS"), "{said}");
    // A certificate that cannot be used stops the command: never plaintext instead.
    let cert = dir.path().join("server.crt");
    std::fs::write(&cert, "not a certificate").unwrap();
    let (code, said) = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            cert.to_str().unwrap(),
        ],
        Some("secret"),
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("TLS") && said.contains("server.crt"),
        "{said}"
    );
}

#[test]
fn with_tls_set_up_every_connection_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, feed) = feed(dir.path());
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl on the PATH");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let password = "tls-and-a-password";
    let served = Served::start(
        &feed,
        &dir.path().join("state"),
        Some(password),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let psql = |mode: &str| {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=arstream dbname=arstream sslmode={mode} sslrootcert={}",
            served.port,
            cert.display()
        );
        let out = Command::new("psql")
            .args([conninfo.as_str(), "-X", "-A", "-t", "-c"])
            .arg("SELECT ssl FROM (SELECT 1 AS ssl)")
            .env("PGPASSWORD", password)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // The certificate checked against its own root, host name and all.
    let (ok, said) = psql("verify-full");
    assert!(ok, "{said}");
    // Plaintext is refused with a sentence.
    let (ok, said) = psql("disable");
    assert!(!ok && said.contains("TLS connections only"), "{said}");
    served.stop();
}
