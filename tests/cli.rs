//! The command line as a new user meets it: help for every command, and one clear line (never
//! a panic) for a missing feed, an SQL typo or a state folder that cannot be used.

mod common;

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

fn run(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Failed, with exactly one line on stderr that starts with `error:` and no panic.
fn assert_one_line_error(o: &Output, must_contain: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(must_contain),
        "{err} should mention {must_contain}"
    );
}

/// Generate a feed of 5 customers over 2 months into `feed`.
fn small_feed(cwd: &std::path::Path, feed: &std::path::Path) {
    let out = feed.to_str().unwrap();
    let o = run(
        &[
            "generate",
            "--out",
            out,
            "--customers",
            "5",
            "--months",
            "2",
        ],
        cwd,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        &["--help"][..],
        &["run", "--help"],
        &["sql", "--help"],
        &["status", "--help"],
        &["generate", "--help"],
        &["kpi", "--help"],
        &["pipeline", "--help"],
        &["pipeline", "validate", "--help"],
        &["dashboard", "--help"],
    ] {
        let o = run(cmd, dir.path());
        assert!(o.status.success(), "{cmd:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Usage: arstream"), "{cmd:?}: {text}");
    }
    // A command's own options come first; the options every command takes are one group,
    // and those of the KPIs and models another, after them.
    for cmd in [
        &["generate", "--help"][..],
        &["model", "report", "--help"],
        &["outreach", "preview", "--help"],
        &["import", "late-payments", "--help"],
    ] {
        let o = run(cmd, dir.path());
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let at = |heading: &str| {
            text.find(heading)
                .unwrap_or_else(|| panic!("{cmd:?}: {heading}"))
        };
        let (own, global, kpi) = (
            at("\nOptions:"),
            at("\nGlobal options:"),
            at("\nKPI and model options (commands that read the state):"),
        );
        assert!(own < global && global < kpi, "{cmd:?}: {text}");
        assert!(text[own..global].contains("--help"), "{cmd:?}");
        assert!(!text[own..global].contains("--as-of"), "{cmd:?}");
        assert!(text[global..kpi].contains("--state") && text[kpi..].contains("--as-of"));
    }
    // Every option of model report says what it is.
    let o = run(&["model", "report", "--help"], dir.path());
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    for option in text.lines().filter(|l| l.trim_start().starts_with("--")) {
        let i = text.find(option).unwrap() + option.len();
        let next = text[i..].lines().nth(1).unwrap_or("");
        assert!(!next.trim().is_empty(), "{option} has no description");
    }
}

#[test]
fn user_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let feed = p.join("feed");
    small_feed(p, &feed);
    let state = p.join("state");
    let base = [
        "--feed",
        feed.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ];

    let sql = |q: &str| {
        let mut a = base.to_vec();
        a.extend(["sql", q]);
        run(&a, p)
    };
    let ok = sql("SELECT count(*) AS n FROM invoices");
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_one_line_error(&sql("SELECT * FROM invoicez"), "did you mean 'invoices'?");
    assert_one_line_error(
        &sql("SELECT * FROM kpi_sumary"),
        "did you mean 'kpi_summary'?",
    );
    assert_one_line_error(&sql("SELECT amountt FROM invoices"), "amountt");
    assert_one_line_error(&sql("SELEC 1"), "SELEC");

    let status_of = |feed: &std::path::Path, state: &std::path::Path| {
        let (feed, state) = (feed.to_str().unwrap(), state.to_str().unwrap());
        run(&["--feed", feed, "--state", state, "status"], p)
    };
    assert_one_line_error(&status_of(&p.join("no-such-feed"), &state), "no-such-feed");

    // A state "folder" that is a file cannot be used.
    let file = p.join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    assert_one_line_error(&status_of(&feed, &file), "not-a-folder");

    let bad_config = p.join("bad.toml");
    std::fs::write(&bad_config, "[feed]\nurl = 3\n").unwrap();
    assert_one_line_error(
        &run(&["--config", bad_config.to_str().unwrap(), "status"], p),
        "bad.toml",
    );
}

#[test]
fn status_json_has_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let feed = p.join("feed");
    small_feed(p, &feed);
    let good_files = parquet_files(&feed).len();
    std::fs::write(feed.join("invoices/broken.parquet"), b"PAR1 nope").unwrap();
    let o = run(
        &[
            "--feed",
            feed.to_str().unwrap(),
            "--state",
            p.join("s").to_str().unwrap(),
            "status",
            "--format",
            "json",
        ],
        p,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files_applied"], good_files, "{v}");
    let q = &v["files_quarantined"][0];
    assert_eq!(q["path"], "invoices/broken.parquet");
    assert_eq!(q["code"], "not_parquet");
    assert!(
        q["reason"]
            .as_str()
            .unwrap()
            .starts_with("invoices/broken.parquet")
    );
    assert!(v["tables"]["invoices"].as_u64().unwrap() > 0);
    assert!(v["tables"]["customers"].as_u64().unwrap() == 5);
}

/// A pipeline file anywhere, named by its path, with its output folder on the command line;
/// without one anywhere, the run says its steps have nowhere to go.
#[test]
fn a_pipeline_file_is_run_by_its_path_with_the_output_folder_given() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("arstream.toml"), "").unwrap();
    let feed = p.join("feed");
    small_feed(p, &feed);
    std::fs::write(
        p.join("mine.toml"),
        "name = \"mine\"\nas_of = \"feed\"\n\n[schedule]\nevery = \"30s\"\n\n[[steps]]\nview = \"kpi_summary\"\n",
    )
    .unwrap();
    let (feed, state) = (
        feed.display().to_string(),
        p.join("s").display().to_string(),
    );
    let base = ["--feed", feed.as_str(), "--state", state.as_str()];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let go = |args: Vec<String>| run(&args.iter().map(String::as_str).collect::<Vec<_>>(), p);
    let o = go(with(&["run", "--once", "--pipeline", "./mine.toml"]));
    assert_one_line_error(&o, "mine.toml: its steps have nowhere to go");
    let o = go(with(&[
        "run",
        "--once",
        "--pipeline",
        "./mine.toml",
        "--out",
        "o1",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = go(with(&["pipeline", "run", "./mine.toml", "--out", "o2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    for out in ["o1", "o2"] {
        let files = std::fs::read_dir(p.join(out).join("kpi_summary"))
            .unwrap()
            .count();
        assert_eq!(files, 1, "{out}");
    }
}

/// A file whose every change is older than (or the same as) what the state holds for its key
/// changes nothing: the log says so with the file, and `status` lists it (a converter whose
/// `_seq` did not grow had its updates dropped with no other trace than a count).
#[test]
fn a_file_that_changes_nothing_is_named_in_the_log_and_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let feed = p.join("feed");
    small_feed(p, &feed);
    let state = p.join("s");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "--feed".to_string(),
            feed.display().to_string(),
            "--state".into(),
            state.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let status = |p: &std::path::Path| -> serde_json::Value {
        let a = args(&["status", "--format", "json"]);
        let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), p);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(status(p)["files_changing_nothing"], serde_json::json!([]));
    // The same customers again, under another name: a redelivery, every change already
    // there (no warning: nothing is wrong).
    let first = common_first_file(&feed.join("customers"));
    std::fs::copy(&first, feed.join("customers/again.parquet")).unwrap();
    // The customers renamed, updates numbered by a converter whose _seq is behind the
    // state's: a warning, since those changes are lost. (Snapshot reads overtaken by later
    // changes would not warn: that is how a load and its streamed changes overlap.)
    let batch = common::read_parquet(&first);
    let n = batch.num_rows();
    let older = common::with_column(
        &common::with_column(
            &common::with_column(
                &batch,
                "_seq",
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![0i64; n])),
            ),
            "name",
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["Renamed"; n])),
        ),
        "_op",
        std::sync::Arc::new(arrow::array::StringArray::from(vec!["u"; n])),
    );
    common::write(&feed, "customers/renamed.parquet", &older);
    let a = args(&["status"]);
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), p);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(
        log.contains(
            "customers/renamed.parquet: none of its 5 changes is newer than what the state holds"
        ),
        "{log}"
    );
    assert!(!log.contains("again.parquet"), "{log}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("files that changed nothing  2"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        status(p)["files_changing_nothing"],
        serde_json::json!(["customers/again.parquet", "customers/renamed.parquet"])
    );
}

/// The first Parquet file under `folder`, in name order.
fn common_first_file(folder: &std::path::Path) -> std::path::PathBuf {
    parquet_files(folder).remove(0)
}

/// The Parquet files under `folder`, in name order.
fn parquet_files(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Pipelines as an orchestrator meets them: `validate` names the file and line of a mistake and
/// exits with 2; `run NAME` does one refresh that writes the pipeline's outputs and exits 0;
/// `list` shows both.
#[test]
fn pipelines_validate_with_file_and_line_and_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(p.join("arstream.toml"), "").unwrap();
    std::fs::create_dir(p.join("pipelines")).unwrap();
    let good = std::fs::read_to_string(repo.join("pipelines/standard.toml"))
        .unwrap()
        .replace("name = \"standard\"", "name = \"daily\"")
        .replace(
            "../sample-data/feed",
            &repo.join("sample-data/feed").display().to_string(),
        )
        .replace(
            "every = \"1s\"",
            "cron = \"0 6 * * *\"\ntimezone = \"Europe/Paris\"",
        );
    std::fs::write(p.join("pipelines/daily.toml"), &good).unwrap();
    let bad = good
        .replace("name = \"daily\"", "name = \"typo\"")
        .replace("view = \"aging\"", "view = \"agin\"");
    std::fs::write(p.join("pipelines/typo.toml"), bad).unwrap();

    let o = run(&["pipeline", "validate"], p);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let line = good.lines().position(|l| l == "view = \"aging\"").unwrap() + 1;
    let want = format!("typo.toml:{line}: unknown view 'agin' (did you mean 'aging'?)");
    assert!(
        stderr(&o).contains(&want),
        "{} should contain {want}",
        stderr(&o)
    );

    let o = run(&["pipeline", "list"], p);
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(listed.contains("cron '0 6 * * *' Europe/Paris"), "{listed}");
    assert!(
        listed.contains("typo") && listed.contains("INVALID"),
        "{listed}"
    );

    let o = run(&["pipeline", "run", "daily"], p);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = p.join(".arstream/out");
    assert!(out.join("kpi_summary/2025-12-31.parquet").exists());
    assert!(out.join("open_items/latest.parquet").exists());
    // It says what it wrote, and where; as JSON when asked.
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        said.contains("outputs written under file://")
            && said.contains("kpi_summary/2025-12-31.parquet"),
        "{said}"
    );
    let o = run(&["--log-format", "json", "pipeline", "run", "daily"], p);
    assert!(o.status.success(), "{}", stderr(&o));
    let event: serde_json::Value = (String::from_utf8_lossy(&o.stdout).lines())
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON line");
    assert_eq!(event["event"], "outputs", "{event}");
    assert!(
        (event["written"].as_array().unwrap().iter()).any(|w| w == "open_items/latest.parquet"),
        "{event}"
    );

    let o = run(&["pipeline", "run", "nope"], p);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no pipeline 'nope'"), "{}", stderr(&o));
}

/// What `pipeline validate` checks beyond the file's fields, so that a pipeline it passes
/// does not fail at its first run: each step's SQL plans, the output and state folders lie
/// outside the feed; a cron schedule shows its next three runs.
#[test]
fn pipeline_validate_plans_the_steps_and_refuses_folders_inside_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        p.join("arstream.toml"),
        format!(
            "[engine]\nqueries = \"{}\"\n",
            repo.join("queries").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(p.join("pipelines/feed")).unwrap();
    std::fs::write(
        p.join("pipelines/top.sql"),
        "SELECT nonsense FROM kpi_summary",
    )
    .unwrap();
    let text = "name = \"daily\"\nfeed = \"feed\"\nout = \"feed/out\"\nstate = \".state\"\n\n\
                [schedule]\ncron = \"0 6 * * 1-5\"\ntimezone = \"Europe/Paris\"\n\n\
                [[steps]]\nview = \"kpi_summary\"\n\n[[steps]]\nname = \"top\"\nsql = \"top.sql\"\n";
    std::fs::write(p.join("pipelines/daily.toml"), text).unwrap();
    let o = run(&["pipeline", "validate"], p);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(
        said.contains("daily.toml:3: the output folder") && said.contains("is inside the feed"),
        "{said}"
    );
    assert!(
        said.contains("daily.toml:13: step 'top' does not plan")
            && said.contains("No field named nonsense"),
        "{said}"
    );
    // Fixed: valid, with the next runs of its cron schedule (weekdays at 06:00 in Paris).
    std::fs::write(
        p.join("pipelines/top.sql"),
        "SELECT total_ar FROM kpi_summary",
    )
    .unwrap();
    std::fs::write(
        p.join("pipelines/daily.toml"),
        text.replace("out = \"feed/out\"", "out = \"out\""),
    )
    .unwrap();
    let o = run(&["pipeline", "validate"], p);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    let next = said
        .lines()
        .find(|l| l.contains("next runs:"))
        .expect("the next runs");
    assert_eq!(next.matches("06:00 CE").count(), 3, "{next}");
    // Six fields (seconds first: hourly) and a poll every millisecond are refused.
    for (from, to, want) in [
        (
            "cron = \"0 6 * * 1-5\"",
            "cron = \"0 6 * * * *\"",
            "has 6 fields",
        ),
        (
            "cron = \"0 6 * * 1-5\"\ntimezone = \"Europe/Paris\"",
            "every = \"1ms\"",
            "shorter than 1s",
        ),
    ] {
        std::fs::write(p.join("pipelines/daily.toml"), text.replace(from, to)).unwrap();
        let o = run(&["pipeline", "validate"], p);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("daily.toml:7:") && stderr(&o).contains(want),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn a_bad_dashboard_layout_is_one_error_with_file_and_line_and_no_terminal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    small_feed(dir.path(), &feed);
    let layout = dir.path().join("mine.toml");
    std::fs::write(
        &layout,
        "name = \"mine\"\n[[tabs]]\nname = \"A\"\n[[tabs.rows]]\npanels = [{ panel = \"pie\" }]\n",
    )
    .unwrap();
    let feed = feed.to_str().unwrap();
    let o = run(
        &[
            "--feed",
            feed,
            "dashboard",
            "--layout",
            layout.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_one_line_error(&o, "mine.toml:5: unknown panel 'pie'");
    assert_eq!(o.status.code(), Some(2));
    // A good layout, but no terminal (the test's stdout is a pipe).
    let o = run(
        &["--feed", feed, "dashboard", "--layout", "controller"],
        dir.path(),
    );
    assert!(
        stderr(&o).contains("no dashboard layout 'controller'"),
        "{}",
        stderr(&o)
    );
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/controller.toml");
    let o = run(
        &["--feed", feed, "dashboard", "--layout", shipped],
        dir.path(),
    );
    assert_one_line_error(&o, "needs a terminal");
    assert_eq!(o.status.code(), Some(2));
}

/// Rates are fractions in data (JSON, CSV) and percents in the table, each the same figure.
#[test]
fn every_rate_is_a_fraction_in_data_and_a_percent_in_the_table() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let feed = repo.join("sample-data/feed");
    let kpi = |format: &str| {
        let o = run(
            &[
                "--feed",
                feed.to_str().unwrap(),
                "--state",
                dir.path().join("s").to_str().unwrap(),
                "--as-of",
                "2025-12-31",
                "kpi",
                "--format",
                format,
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&kpi("json")).unwrap();
    let summary = if json["kpi"].is_object() {
        &json["kpi"]
    } else {
        &json
    };
    let table = kpi("table");
    let csv = kpi("csv");
    let (header, row) = csv.split_once('\n').unwrap();
    let columns: Vec<&str> = header.split(',').collect();
    let values: Vec<&str> = row.lines().next().unwrap().split(',').collect();
    for (key, label) in [
        ("cei", "CEI"),
        ("bad_debt_ratio", "Bad-debt ratio"),
        ("ptp_kept_rate", "Promises kept"),
    ] {
        let value = summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {summary}"));
        assert!((0.0..=1.0).contains(&value), "{key} = {value}");
        let at = columns.iter().position(|c| *c == key).expect(key);
        let in_csv: f64 = values[at].parse().unwrap();
        assert!(
            (in_csv - value).abs() < 1e-9,
            "{key}: csv {in_csv}, json {value}"
        );
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap();
        let shown = format!("{:.2} %", 100.0 * value);
        assert!(line.contains(&shown), "{line} should show {shown}");
    }
}
