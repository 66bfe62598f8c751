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

/// Write a native feed's files as Kafka Connect's S3 sink writes flattened Debezium events:
/// `__op`, `__lsn`, `__source_ts_ms` (ms), `__deleted`; a delete carries the key's image
/// before it; the first customers file is a snapshot (`r`); invoices go to an upper-case topic
/// with upper-case columns.
fn write_as_debezium(native: &Path, out: &Path) {
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
        for (row, id) in ids.iter().enumerate() {
            let key = (entity, id.clone());
            if ops.value(row) == "d" {
                images.push(before[&key].clone());
                rows.push((images.len() - 1, 0));
            } else {
                before.insert(key, batch.slice(row, 1));
                rows.push((0, row));
            }
        }
        let upper = entity == Entity::Invoices;
        let topic = if upper {
            "erp.public.INVOICES".to_string()
        } else {
            format!("erp.public.{}", entity.name())
        };
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
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
        let snapshot = entity == Entity::Customers;
        let op: StringArray = (0..batch.num_rows())
            .map(|r| Some(if snapshot { "r" } else { ops.value(r) }))
            .collect();
        let deleted: StringArray = (0..batch.num_rows())
            .map(|r| Some(if ops.value(r) == "d" { "true" } else { "false" }))
            .collect();
        let seq = batch.column_by_name("_seq").unwrap().clone();
        let ts = batch.column_by_name("_ts").unwrap();
        let ts = ts
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let millis: arrow::array::Int64Array = ts.iter().map(|t| t.map(|t| t / 1000)).collect();
        for (name, array, ty) in [
            ("__op", Arc::new(op) as ArrayRef, DataType::Utf8),
            ("__lsn", seq, DataType::Int64),
            (
                "__source_ts_ms",
                Arc::new(millis) as ArrayRef,
                DataType::Int64,
            ),
            ("__deleted", Arc::new(deleted) as ArrayRef, DataType::Utf8),
        ] {
            fields.push(Field::new(name, ty, true));
            columns.push(array);
        }
        let converted = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let file = format!("topics/{topic}/partition=0/{topic}+0+{offset:010}.parquet");
        offset += batch.num_rows();
        common::write(out, &file, &converted);
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
    write_as_debezium(&native, &debezium);

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
    write_as_debezium(&native, &debezium);
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
    let sentence = "column 'amount': the mapping's 'NET_AMOUNT' is neither a column of this \
                    file nor an SQL expression over its columns";
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
