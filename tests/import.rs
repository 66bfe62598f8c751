//! IBM's late-payment histories (`../shared/datasets/`), data nobody on the project wrote,
//! imported as a feed: the KPIs as of past dates, from the ledger and from the plain views,
//! equal what the export itself says (an invoice settled after the as-of date is open on it).

use std::path::{Path, PathBuf};
use std::process::Command;

use arstream::import::late_payments::{Invoice, parse};
use chrono::NaiveDate;

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

fn export() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/ibm-late-payments/accounts-receivable.csv");
    assert!(
        path.exists(),
        "{} is missing: the project's shared folder must stand beside the repository",
        path.display()
    );
    path
}

fn arstream(dir: &Path, args: &[&str]) -> String {
    let config = dir.join("arstream.toml");
    std::fs::write(
        &config,
        "[engine]\nqueries = \"queries\"\npipelines = \"none\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .current_dir(dir)
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "arstream {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// AR, current AR and sales of the last 90 days at `day`, in cents, from the export alone.
fn expected(invoices: &[Invoice], day: NaiveDate) -> (i128, i128, i128) {
    let open = invoices
        .iter()
        .filter(|i| i.invoice_date <= day && i.settled_date > day);
    let ar: i128 = open.clone().map(|i| i.amount).sum();
    let current: i128 = open.filter(|i| i.due_date >= day).map(|i| i.amount).sum();
    let window_start = day - chrono::Days::new(90);
    let sales: i128 = (invoices.iter())
        .filter(|i| i.invoice_date > window_start && i.invoice_date <= day)
        .map(|i| i.amount)
        .sum();
    (ar, current, sales)
}

fn cents(summary: &serde_json::Value, key: &str) -> i128 {
    let value = &summary[key];
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (text
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("{key}: {value}"))
        * 100.0)
        .round() as i128
}

#[test]
fn the_kpis_of_ibms_late_payment_histories_are_what_the_export_says() {
    let export = export();
    let today = chrono::Utc::now().date_naive();
    let invoices = parse("export", &std::fs::read_to_string(&export).unwrap(), today).unwrap();
    assert_eq!(invoices.len(), 2466);

    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    let line = arstream(
        dir.path(),
        &[
            "import",
            "late-payments",
            export.to_str().unwrap(),
            "--out",
            feed.to_str().unwrap(),
        ],
    );
    assert!(line.contains("2466 invoices of 100 customers"), "{line}");
    let state = dir.path().join("state");
    let at = |extra: &[&str]| {
        let mut args = vec![
            "--feed",
            feed.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        serde_json::from_str::<serde_json::Value>(&arstream(dir.path(), &args)).unwrap()
    };
    // Every row applied, none quarantined.
    let status = at(&["status", "--format", "json"]);
    assert_eq!(
        status["files_quarantined"],
        serde_json::json!([]),
        "{status}"
    );
    assert_eq!(status["tables"]["invoices"], 2466);
    assert_eq!(status["tables"]["payments"], 2466);
    assert_eq!(status["tables"]["customers"], 100);
    let disputed = invoices.iter().filter(|i| i.disputed).count();
    assert_eq!(status["tables"]["disputes"], disputed);

    // The month ends of the history, from the ledger and from the plain views.
    for day in [
        "2012-03-31",
        "2012-09-30",
        "2013-03-31",
        "2013-06-30",
        "2013-11-30",
    ] {
        let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let (ar, current, sales) = expected(&invoices, date);
        assert!(ar > 0 && sales > 0, "{day}");
        for mode in [&[][..], &["--plain"][..]] {
            let mut args = vec!["kpi", "--as-of", day, "--format", "json"];
            args.extend_from_slice(mode);
            let kpi = at(&args);
            assert_eq!(cents(&kpi, "total_ar"), ar, "{day} {mode:?}: {kpi}");
            assert_eq!(cents(&kpi, "current_ar"), current, "{day} {mode:?}");
            assert_eq!(cents(&kpi, "past_due_ar"), ar - current, "{day} {mode:?}");
            assert_eq!(cents(&kpi, "credit_sales"), sales, "{day} {mode:?}");
            let dso = kpi["dso"].as_f64().unwrap();
            let want = ar as f64 / sales as f64 * 90.0;
            assert!(
                (dso - want).abs() < 1e-9,
                "{day} {mode:?}: dso {dso}, want {want}"
            );
        }
    }
}

/// A bad value anywhere in an export stops the import before anything is written, naming
/// each bad line (a month file with one bad row would be quarantined whole: a month of
/// invoices lost); an export saved with a BOM and quoted fields imports whole.
#[test]
fn a_bad_line_stops_the_import_before_any_file_is_written() {
    let text = std::fs::read_to_string(export()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let dir = tempfile::tempdir().unwrap();
    // A spreadsheet's save: a BOM, every field quoted, CRLF.
    let quoted: Vec<String> = (lines.iter())
        .map(|l| {
            let fields: Vec<String> = l.split(',').map(|f| format!("\"{f}\"")).collect();
            fields.join(",")
        })
        .collect();
    let saved = dir.path().join("saved.csv");
    std::fs::write(&saved, format!("\u{feff}{}\r\n", quoted.join("\r\n"))).unwrap();
    let feed = dir.path().join("feed");
    let line = arstream(
        dir.path(),
        &[
            "import",
            "late-payments",
            saved.to_str().unwrap(),
            "--out",
            feed.to_str().unwrap(),
        ],
    );
    assert!(line.contains("2466 invoices of 100 customers"), "{line}");

    // A negative amount on line 3, a settled date in 2099 on line 40.
    lines[2] = lines[2].replacen(
        &format!(",{},", lines[2].split(',').nth(6).unwrap()),
        ",-12.00,",
        1,
    );
    let settled = lines[39].split(',').nth(8).unwrap().to_string();
    lines[39] = lines[39].replacen(&settled, "1/15/2099", 1);
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let out = dir.path().join("bad-feed");
    let run = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "import",
            "late-payments",
            bad.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(stderr.contains("2 bad lines, nothing written"), "{stderr}");
    assert!(
        stderr.contains("line 3, field 'InvoiceAmount': -12.00 is not a positive amount"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 40, field 'SettledDate': 2099-01-15 is in the future"),
        "{stderr}"
    );
    let written = std::fs::read_dir(&out).map_or(0, |d| d.count());
    assert_eq!(written, 0, "files were written");
}
