//! The same changes in another pipeline's layout give exactly the KPIs, tables and change
//! tables of the contract's own: the worked example of `docs/kpis.md`, with an update, a
//! delete, a stale change in a later file and snapshot reads, written as Debezium events
//! (Kafka Connect's S3 sink layout, a topic and its columns in upper case, deletes carrying
//! their before image); a mapping file of SQL expressions over the source's columns gives the
//! same KPIs, and one naming a column a file lacks quarantines that file with one sentence
//! naming it and the column.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::array_value_to_string;
use arstream::feed::contract::Entity;
use arstream::generate::render::BatchBuilder;
use arstream::generate::simulate::Op;
use common::worked_example::write_worked_example;

/// Changes beyond the worked example's creates: an update of I4, a new invoice I6 deleted
/// again, and in a later file a stale image of I4 (an older `_seq`) that must change nothing.
fn write_more_changes(feed: &Path) {
    let ts = 1_767_312_000_000_000;
    let invoice = |b: &mut BatchBuilder, op: Op, seq: i64, id: &str, amount: i64| {
        b.row(op, seq, ts + seq * 1000);
        if op != Op::Delete {
            b.text(Some(id))
                .text(Some("C2"))
                .date(Some(20_517))
                .date(Some(20_547))
                .decimal(amount as i128 * 100)
                .text(Some("USD"))
                .text(Some("posted"));
        } else {
            b.text(Some(id));
        }
    };
    let mut b = BatchBuilder::new(Entity::Invoices);
    invoice(&mut b, Op::Update, 101, "I4", 4100);
    invoice(&mut b, Op::Create, 102, "I6", 700);
    invoice(&mut b, Op::Delete, 103, "I6", 0);
    common::write(feed, "invoices/part-1.parquet", &b.finish());
    let mut b = BatchBuilder::new(Entity::Invoices);
    invoice(&mut b, Op::Update, 50, "I4", 9999);
    common::write(feed, "invoices/part-2.parquet", &b.finish());
}

/// The key of each row, as text.
fn keys(entity: Entity, batch: &RecordBatch) -> Vec<String> {
    (0..batch.num_rows())
        .map(|row| {
            (entity.key().iter())
                .map(|k| array_value_to_string(batch.column_by_name(k).unwrap(), row).unwrap())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// The pipelines a native feed is rewritten as.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Kafka Connect's S3 sink of flattened Debezium events: `__op`, `__lsn`,
    /// `__source_ts_ms` (ms), `__deleted`; the customers are snapshot reads (`r`).
    Debezium,
    /// AWS DMS: each entity's first file, all creates, as its full load (`LOAD00000001`, no
    /// `Op`, no sequence); later files as change files with `Op` (`I`/`U`/`D`) first,
    /// `ar_timestamp` text and the 35-digit `ar_change_seq`, in `YYYY/MM/DD` and `YYYYMMDD`
    /// date folders by turns.
    Dms,
    /// SAP replication flows: each entity's first file, all creates, as its initial load
    /// (`<TABLE>/initial/part-00000.parquet`, `L`, `_SUCCESS` beside it but for the
    /// disputes); later files in `<TABLE>/delta/2026-01-02/` with `I`/`U`/`D`, each update
    /// preceded by a `B` row (its before image), and every delta file delivered twice;
    /// `__sequence_number` empty (an ABAP source), `__timestamp` a timestamp.
    Sap,
}

/// Write a native feed's files in `layout`. A delete carries the key's image before it; the
/// invoices' table (or topic) and columns are in upper case.
fn write_as(layout: Layout, native: &Path, out: &Path) {
    let mut offset = 0;
    let mut before: HashMap<(Entity, String), RecordBatch> = HashMap::new();
    for path in common::walk(native) {
        let relative = path
            .strip_prefix(native)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let entity = Entity::from_name(relative.split('/').next().unwrap()).unwrap();
        let batch = common::read_parquet(&path);
        let ops = batch
            .column_by_name("_op")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let ids = keys(entity, &batch);
        // Each row's image: its own, or for a delete the key's last image before it.
        let mut images: Vec<RecordBatch> = vec![batch.clone()];
        let mut rows: Vec<(usize, usize)> = Vec::new();
        // SAP's before-image rows: (the update's row, the image before it).
        let mut updated: Vec<(usize, RecordBatch)> = Vec::new();
        for (row, id) in ids.iter().enumerate() {
            let key = (entity, id.clone());
            if ops.value(row) == "d" {
                images.push(before[&key].clone());
                rows.push((images.len() - 1, 0));
            } else {
                if let (Some(prior), "u") = (before.get(&key), ops.value(row)) {
                    updated.push((row, prior.clone()));
                }
                before.insert(key, batch.slice(row, 1));
                rows.push((0, row));
            }
        }
        // The row of the native file each written row stands for, and SAP's extra B rows.
        let mut source_rows: Vec<usize> = (0..batch.num_rows()).collect();
        let mut before_rows = 0;
        if layout == Layout::Sap {
            for (row, prior) in &updated {
                images.push(prior.clone());
                rows.push((images.len() - 1, 0));
                source_rows.push(*row);
                before_rows += 1;
            }
        }
        let upper = entity == Entity::Invoices;
        let table = if upper {
            entity.name().to_uppercase()
        } else {
            entity.name().to_string()
        };
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let full_load = layout == Layout::Dms
            && relative.ends_with("part-0.parquet")
            && ops.iter().all(|op| op == Some("c"));
        let seq = batch.column_by_name("_seq").unwrap().clone();
        let ts = batch.column_by_name("_ts").unwrap();
        let ts = ts
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let mut technical: Vec<(&str, ArrayRef)> = Vec::new();
        let file = match layout {
            Layout::Debezium => {
                let snapshot = entity == Entity::Customers;
                let op: StringArray = (0..batch.num_rows())
                    .map(|r| Some(if snapshot { "r" } else { ops.value(r) }))
                    .collect();
                let deleted: StringArray = (0..batch.num_rows())
                    .map(|r| Some(if ops.value(r) == "d" { "true" } else { "false" }))
                    .collect();
                let millis: arrow::array::Int64Array =
                    ts.iter().map(|t| t.map(|t| t / 1000)).collect();
                technical.push(("__op", Arc::new(op)));
                technical.push(("__lsn", seq));
                technical.push(("__source_ts_ms", Arc::new(millis)));
                technical.push(("__deleted", Arc::new(deleted)));
                let topic = format!("erp.public.{table}");
                format!("topics/{topic}/partition=0/{topic}+0+{offset:010}.parquet")
            }
            Layout::Sap => {
                let initial =
                    relative.ends_with("part-0.parquet") && ops.iter().all(|op| op == Some("c"));
                let n = source_rows.len();
                let op: StringArray = (0..n)
                    .map(|i| {
                        Some(if i >= n - before_rows {
                            "B"
                        } else if initial {
                            "L"
                        } else {
                            match ops.value(i) {
                                "d" => "D",
                                "u" => "U",
                                _ => "I",
                            }
                        })
                    })
                    .collect();
                let empty: StringArray = (0..n).map(|_| Some("")).collect();
                let times: TimestampMicrosecondArray = (source_rows.iter())
                    .map(|&r| Some(ts.value(r)))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC");
                technical.push(("__operation_type", Arc::new(op)));
                technical.push(("__sequence_number", Arc::new(empty)));
                technical.push(("__timestamp", Arc::new(times)));
                if initial {
                    let folder = out.join(&table).join("initial");
                    std::fs::create_dir_all(&folder).unwrap();
                    if entity != Entity::Disputes {
                        std::fs::write(folder.join("_SUCCESS"), b"").unwrap();
                    }
                    format!("{table}/initial/part-00000.parquet")
                } else {
                    format!("{table}/delta/2026-01-02/part-{offset:05}.parquet")
                }
            }
            Layout::Dms => {
                let time = |r: usize| {
                    chrono::DateTime::from_timestamp_micros(ts.value(r))
                        .unwrap()
                        .naive_utc()
                };
                let text: StringArray = (0..batch.num_rows())
                    .map(|r| Some(time(r).format("%Y-%m-%d %H:%M:%S%.6f").to_string()))
                    .collect();
                let seqs = seq.as_primitive::<arrow::datatypes::Int64Type>();
                let change_seq: StringArray = (0..batch.num_rows())
                    .map(|r| {
                        let hundredths = time(r).format("%Y%m%d%H%M%S%.3f").to_string();
                        let hundredths = hundredths.replace('.', "");
                        Some(format!("{}{:019}", &hundredths[..16], seqs.value(r)))
                    })
                    .collect();
                let op: StringArray = (0..batch.num_rows())
                    .map(|r| {
                        Some(match ops.value(r) {
                            "d" => "D",
                            "u" => "U",
                            _ => "I",
                        })
                    })
                    .collect();
                if full_load {
                    technical.push(("ar_timestamp", Arc::new(text)));
                    format!("dbo/{table}/LOAD00000001.parquet")
                } else {
                    // `Op` goes first, as DMS writes it.
                    fields.push(Field::new("Op", DataType::Utf8, true));
                    columns.push(Arc::new(op));
                    technical.push(("ar_timestamp", Arc::new(text)));
                    technical.push(("ar_change_seq", Arc::new(change_seq)));
                    let folder = if offset % 2 == 0 {
                        "2026/01/02"
                    } else {
                        "20260103"
                    };
                    format!("dbo/{table}/{folder}/20260102-{offset:09}.parquet")
                }
            }
        };
        for (i, field) in batch.schema().fields().iter().enumerate() {
            if field.name().starts_with('_') {
                continue;
            }
            let arrays: Vec<&dyn Array> = images.iter().map(|b| b.column(i).as_ref()).collect();
            let name = if upper {
                field.name().to_uppercase()
            } else {
                field.name().clone()
            };
            fields.push(Field::new(name, field.data_type().clone(), true));
            columns.push(interleave(&arrays, &rows).unwrap());
        }
        for (name, array) in technical {
            fields.push(Field::new(name, array.data_type().clone(), true));
            columns.push(array);
        }
        let converted = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        offset += batch.num_rows();
        common::write(out, &file, &converted);
        if layout == Layout::Sap && file.contains("/delta/") {
            // At least once: the same changes delivered again in another file.
            common::write(out, &file.replace(".parquet", "-again.parquet"), &converted);
        }
    }
}

fn arstream(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_arstream"))
        .args(["--as-of", "2026-03-31", "--currency", "USD"])
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_debezium_feed_gives_exactly_what_the_same_changes_give_in_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("native");
    let debezium = dir.path().join("debezium");
    write_worked_example(&native);
    write_more_changes(&native);
    write_as(Layout::Debezium, &native, &debezium);

    let queries = [
        vec!["kpi", "--format", "json"],
        vec![
            "sql",
            "--format",
            "csv",
            "SELECT * FROM invoices ORDER BY invoice_id",
        ],
        vec![
            "sql",
            "--format",
            "csv",
            "SELECT * FROM customers ORDER BY customer_id",
        ],
        vec![
            "sql",
            "--format",
            "csv",
            "SELECT * FROM aging ORDER BY customer_id, bucket",
        ],
        vec![
            "sql",
            "--format",
            "csv",
            "SELECT invoice_id, _op, _seq, CASE WHEN _op <> 'd' THEN amount END AS amount \
             FROM invoices_changes ORDER BY _seq",
        ],
    ];
    let run = |feed: &Path, state: &str, format: &[&str], query: &[&str]| {
        let mut args = vec!["--feed", feed.to_str().unwrap()];
        let state = dir.path().join(state);
        args.extend(["--state", state.to_str().unwrap()]);
        args.extend(format);
        args.extend(query);
        ok(arstream(&args))
    };
    for query in &queries {
        let want = run(&native, "native-state", &[], query);
        let got = run(
            &debezium,
            "debezium-state",
            &["--feed-format", "debezium"],
            query,
        );
        assert_eq!(got, want, "{query:?}");
    }
    // The update applied, the stale image ignored, the deleted invoice gone.
    let invoices = run(&native, "native-state", &[], &queries[1]);
    assert!(
        invoices.contains("I4,C2,2026-03-05,2026-04-04,4100.00"),
        "{invoices}"
    );
    assert!(!invoices.contains("I6"), "{invoices}");
    // Every change row read back through the translation, the stale one included; a delete
    // keeps the before image Debezium wrote with it.
    let changes = run(
        &debezium,
        "debezium-state",
        &["--feed-format", "debezium"],
        &queries[4],
    );
    assert_eq!(changes.lines().count(), 1 + 5 + 4, "{changes}");
    assert!(changes.ends_with("I6,d,103,\n"), "{changes}");
    let before = run(
        &debezium,
        "debezium-state",
        &["--feed-format", "debezium"],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT amount FROM invoices_changes WHERE _op = 'd'",
        ],
    );
    assert_eq!(before, "amount\n700.00\n");
}

#[test]
fn a_mapping_of_sql_expressions_reads_and_one_naming_a_missing_column_quarantines() {
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("native");
    let debezium = dir.path().join("debezium");
    write_worked_example(&native);
    write_as(Layout::Debezium, &native, &debezium);
    let map = dir.path().join("map.toml");
    std::fs::write(
        &map,
        "[tables.INVOICES]\nentity = \"invoices\"\ncolumns = { amount = \"NET_AMOUNT\" }\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = arstream(&[
        "--feed",
        debezium.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--feed-format",
        "debezium",
        "--feed-map",
        map.to_str().unwrap(),
        "status",
        "--format",
        "json",
    ]);
    let status: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    let text = status.to_string();
    let sentence = "column 'amount': the mapping's 'NET_AMOUNT' is not a column of this file \
                    (its columns: INVOICE_ID, CUSTOMER_ID, INVOICE_DATE, DUE_DATE, AMOUNT, \
                    CURRENCY, STATUS, __op, __lsn, __source_ts_ms, __deleted)";
    assert!(
        text.contains("topics/erp.public.INVOICES/partition=0/erp.public.INVOICES+0+")
            && text.contains(sentence),
        "{text}"
    );
    // A mapping of SQL expressions over the source's columns: the same KPIs as the contract.
    std::fs::write(
        &map,
        "[tables.INVOICES]\nentity = \"invoices\"\n[tables.INVOICES.columns]\n\
         amount = \"AMOUNT * 2 - AMOUNT\"\n\
         status = \"CASE WHEN STATUS = 'void' THEN 'void' ELSE 'posted' END\"\n",
    )
    .unwrap();
    let kpi = |feed: &Path, state: &str, extra: &[&str]| {
        let state = dir.path().join(state);
        let mut args = vec![
            "--feed",
            feed.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        args.extend(extra);
        args.extend(["kpi", "--format", "json"]);
        ok(arstream(&args))
    };
    let mapped = [
        "--feed-format",
        "debezium",
        "--feed-map",
        map.to_str().unwrap(),
    ];
    assert_eq!(
        kpi(&debezium, "mapped-state", &mapped),
        kpi(&native, "native-state", &[])
    );
    // A mapping naming an entity that does not exist stops the command with one sentence.
    std::fs::write(&map, "[tables.INVOICES]\nentity = \"invoice\"\n").unwrap();
    let out = arstream(&[
        "--feed",
        debezium.to_str().unwrap(),
        "--state",
        dir.path().join("state2").to_str().unwrap(),
        "--feed-format",
        "debezium",
        "--feed-map",
        map.to_str().unwrap(),
        "status",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("map.toml': table 'INVOICES' maps to 'invoice', which is not an entity"),
        "{stderr}"
    );
}

#[test]
fn a_dms_feed_gives_exactly_what_the_same_changes_give_in_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("native");
    let dms = dir.path().join("dms");
    write_worked_example(&native);
    write_more_changes(&native);
    write_as(Layout::Dms, &native, &dms);
    assert!(dms.join("dbo/INVOICES/LOAD00000001.parquet").exists());
    assert!(
        dms.join("dbo/INVOICES/2026/01/02").is_dir() && dms.join("dbo/INVOICES/20260103").is_dir()
    );

    let run = |feed: &Path, state: &str, format: &[&str], query: &[&str]| {
        let state = dir.path().join(state);
        let mut args = vec![
            "--feed",
            feed.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        args.extend(format);
        args.extend(query);
        ok(arstream(&args))
    };
    for query in [
        &["kpi", "--format", "json"][..],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT * FROM invoices ORDER BY invoice_id",
        ],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT * FROM customers ORDER BY customer_id",
        ],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT * FROM aging ORDER BY customer_id, bucket",
        ],
    ] {
        let want = run(&native, "native-state", &[], query);
        let got = run(&dms, "dms-state", &["--feed-format", "dms"], query);
        assert_eq!(got, want, "{query:?}");
    }
    // The full load read as snapshot rows before every change; the changes' sequences whole.
    let changes = run(
        &dms,
        "dms-state",
        &["--feed-format", "dms"],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT _op, CAST(_seq AS VARCHAR) AS seq FROM invoices_changes \
             WHERE invoice_id = 'I4' ORDER BY _seq",
        ],
    );
    assert_eq!(
        changes,
        "_op,seq\nr,0\nu,20260102000000050000000000000000050\nu,20260102000000100000000000000000101\n"
    );
}

#[test]
fn a_sap_feed_is_read_once_its_initial_load_is_complete_and_gives_the_native_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("native");
    let sap = dir.path().join("sap");
    write_worked_example(&native);
    write_more_changes(&native);
    write_as(Layout::Sap, &native, &sap);
    let run = |feed: &Path, state: &str, format: &[&str], query: &[&str]| {
        let state = dir.path().join(state);
        let mut args = vec![
            "--feed",
            feed.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        args.extend(format);
        args.extend(query);
        ok(arstream(&args))
    };
    let sap_format = ["--feed-format", "sap"];
    // The disputes' initial load has no `_SUCCESS` yet: not read.
    let disputes = [
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM disputes",
    ];
    assert_eq!(run(&sap, "sap-state", &sap_format, &disputes), "n\n0\n");
    std::fs::write(sap.join("disputes/initial/_SUCCESS"), b"").unwrap();
    for query in [
        &["kpi", "--format", "json"][..],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT * FROM invoices ORDER BY invoice_id",
        ],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT * FROM disputes ORDER BY dispute_id",
        ],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT * FROM aging ORDER BY customer_id, bucket",
        ],
    ] {
        let want = run(&native, "native-state", &[], query);
        let got = run(&sap, "sap-state", &sap_format, query);
        assert_eq!(got, want, "{query:?}");
    }
    // The before images were skipped, and every change delivered twice applied once: I4's
    // update, I6's insert and delete, and the stale I4 image (older by its time) ignored.
    let changes = run(
        &sap,
        "sap-state",
        &sap_format,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT invoice_id, _op, count(*) AS n FROM invoices_changes \
             GROUP BY invoice_id, _op ORDER BY invoice_id, _op",
        ],
    );
    assert_eq!(
        changes,
        "invoice_id,_op,n\nI1,r,1\nI2,r,1\nI3,r,1\nI4,r,1\nI4,u,4\nI5,r,1\nI6,c,2\nI6,d,2\n"
    );
}

/// An invoice's id as the shipped SAP mapping makes it: company code, document number, fiscal
/// year and line.
fn sap_document(id: &str) -> String {
    format!("1000-{id}-2026-001")
}

/// A string column of a batch with each value mapped.
fn map_text(batch: &RecordBatch, name: &str, f: impl Fn(&str) -> String) -> RecordBatch {
    let Some(column) = batch.column_by_name(name) else {
        return batch.clone();
    };
    let mapped: StringArray = column
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(&f))
        .collect();
    common::with_column(batch, name, Arc::new(mapped))
}

#[test]
fn an_erp_layout_read_through_the_shipped_mapping_gives_the_native_kpis() {
    // SAP FI-AR open items (BSID) and customers (KNA1) as a replication flow writes them,
    // with the rest of the feed in tables named like the entities; docs/mappings/sap.toml.
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("native");
    let sap = dir.path().join("sap");
    write_worked_example(&native);
    write_as(Layout::Sap, &native, &sap);
    std::fs::write(sap.join("disputes/initial/_SUCCESS"), b"").unwrap();
    // The invoices and customers in SAP's own tables instead.
    let sap_dates = |d: i32| {
        (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(d as i64))
            .format("%Y%m%d")
            .to_string()
    };
    let invoices = common::read_parquet(&sap.join("INVOICES/initial/part-00000.parquet"));
    std::fs::remove_dir_all(sap.join("INVOICES")).unwrap();
    let text = |name: &str| {
        invoices
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .clone()
    };
    let dates = |name: &str| {
        (invoices.column_by_name(name).unwrap())
            .as_primitive::<arrow::datatypes::Date32Type>()
            .clone()
    };
    let (issued, due) = (dates("INVOICE_DATE"), dates("DUE_DATE"));
    let n = invoices.num_rows();
    let strings = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new((0..n).map(|i| Some(f(i))).collect::<StringArray>())
    };
    let mut bsid: Vec<(&str, ArrayRef)> = vec![
        ("BUKRS", strings(&|_| "1000".into())),
        ("BELNR", strings(&|i| text("INVOICE_ID").value(i).into())),
        ("GJAHR", strings(&|_| "2026".into())),
        ("BUZEI", strings(&|_| "001".into())),
        ("KUNNR", strings(&|i| text("CUSTOMER_ID").value(i).into())),
        ("BLDAT", strings(&|i| sap_dates(issued.value(i)))),
        ("ZFBDT", strings(&|i| sap_dates(issued.value(i)))),
        (
            "ZBD1T",
            strings(&|i| (due.value(i) - issued.value(i)).to_string()),
        ),
        ("WRBTR", invoices.column_by_name("AMOUNT").unwrap().clone()),
        ("WAERS", strings(&|i| text("CURRENCY").value(i).into())),
    ];
    for name in ["__operation_type", "__sequence_number", "__timestamp"] {
        bsid.push((name, invoices.column_by_name(name).unwrap().clone()));
    }
    let bsid = RecordBatch::try_from_iter(bsid).unwrap();
    common::write(&sap, "BSID/initial/part-00000.parquet", &bsid);
    std::fs::write(sap.join("BSID/initial/_SUCCESS"), b"").unwrap();
    let customers = common::read_parquet(&sap.join("customers/initial/part-00000.parquet"));
    std::fs::remove_dir_all(sap.join("customers")).unwrap();
    let column = |name: &str| customers.column_by_name(name).unwrap().clone();
    let kna1 = RecordBatch::try_from_iter([
        ("KUNNR", column("customer_id")),
        ("NAME1", column("name")),
        ("LAND1", column("country")),
        (
            "SPRAS",
            Arc::new(StringArray::from(vec!["E"; customers.num_rows()])) as ArrayRef,
        ),
        ("__operation_type", column("__operation_type")),
        ("__sequence_number", column("__sequence_number")),
        ("__timestamp", column("__timestamp")),
    ])
    .unwrap();
    common::write(&sap, "KNA1/initial/part-00000.parquet", &kna1);
    std::fs::write(sap.join("KNA1/initial/_SUCCESS"), b"").unwrap();
    // The other tables name invoices by SAP's document key.
    for table in ["payments", "adjustments", "disputes", "promises"] {
        let path = sap.join(table).join("initial/part-00000.parquet");
        let batch = map_text(&common::read_parquet(&path), "invoice_id", sap_document);
        common::write(&sap, &format!("{table}/initial/part-00000.parquet"), &batch);
    }

    let mapping = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mappings/sap.toml");
    let kpi = |feed: &Path, state: &str, extra: &[&str]| {
        let state = dir.path().join(state);
        let mut args = vec![
            "--feed",
            feed.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        args.extend(extra);
        args.extend(["kpi", "--format", "json"]);
        ok(arstream(&args))
    };
    let read_as_sap = [
        "--feed-format",
        "sap",
        "--feed-map",
        mapping.to_str().unwrap(),
    ];
    assert_eq!(
        kpi(&sap, "sap-state", &read_as_sap),
        kpi(&native, "native-state", &[])
    );
    let state = dir.path().join("sap-state");
    let ids = ok(arstream(&[
        "--feed",
        sap.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--feed-format",
        "sap",
        "--feed-map",
        mapping.to_str().unwrap(),
        "sql",
        "--format",
        "csv",
        "SELECT invoice_id, invoice_date, due_date FROM invoices ORDER BY invoice_id LIMIT 1",
    ]));
    assert_eq!(
        ids,
        "invoice_id,invoice_date,due_date\n1000-I1-2026-001,2025-12-15,2026-01-14\n"
    );
}
