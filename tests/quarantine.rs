//! Every violation kind of the change-feed contract is quarantined with its code, a reason
//! that names the file (and row and column where one is to blame), and nothing of the file is
//! applied; the good files beside it go through.

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arstream::feed::ViolationCode;
use arstream::ingest::IngestOptions;
use common::{ingest, invoice_rows, invoices, with_column, without_column, write};

/// Catch up the state folder `state` with the feed folder `feed`, default options.
async fn ingest_dir(
    feed: &std::path::Path,
    state: &std::path::Path,
) -> (arstream::state::State, arstream::ingest::CatchUpReport) {
    let (feed, state) = (feed.to_str().unwrap(), state.to_str().unwrap());
    ingest(feed, state, &IngestOptions::default()).await
}

fn good(id: &str, seq: i64) -> arrow::array::RecordBatch {
    invoices(&[("c", seq, id.to_string(), 10_000)])
}

fn text(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

#[tokio::test]
async fn each_violation_is_quarantined_and_the_rest_applied() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    let two =
        |a: &str, b: &str| invoices(&[("c", 1, a.to_string(), 100), ("c", 2, b.to_string(), 200)]);

    // Good files, one before and one after every bad one in path order.
    write(&feed, "invoices/a-good.parquet", &good("G1", 1));
    write(&feed, "invoices/z-good.parquet", &good("G2", 2));

    let mut expect: Vec<(&str, ViolationCode, Option<usize>, Option<&str>)> = Vec::new();

    std::fs::write(
        feed.join("invoices/not-parquet.parquet"),
        b"id,amount\nI1,100\n",
    )
    .unwrap();
    expect.push((
        "invoices/not-parquet.parquet",
        ViolationCode::NotParquet,
        None,
        None,
    ));

    let whole = arstream::parquet_io::encode(&good("T1", 1).schema(), &[good("T1", 1)]).unwrap();
    std::fs::write(
        feed.join("invoices/truncated.parquet"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    expect.push((
        "invoices/truncated.parquet",
        ViolationCode::NotParquet,
        None,
        None,
    ));

    write(&feed, "widgets/w.parquet", &good("W1", 1));
    expect.push((
        "widgets/w.parquet",
        ViolationCode::UnknownEntity,
        None,
        None,
    ));

    write(
        &feed,
        "invoices/missing.parquet",
        &without_column(&two("M1", "M2"), "amount"),
    );
    expect.push((
        "invoices/missing.parquet",
        ViolationCode::MissingColumn,
        None,
        Some("amount"),
    ));

    write(
        &feed,
        "invoices/missing-seq.parquet",
        &without_column(&two("S1", "S2"), "_seq"),
    );
    expect.push((
        "invoices/missing-seq.parquet",
        ViolationCode::MissingColumn,
        None,
        Some("_seq"),
    ));

    let lossy: ArrayRef = Arc::new(Float64Array::from(vec![100.0, 1.005]));
    write(
        &feed,
        "invoices/lossy.parquet",
        &with_column(&two("L1", "L2"), "amount", lossy),
    );
    expect.push((
        "invoices/lossy.parquet",
        ViolationCode::WrongType,
        Some(2),
        Some("amount"),
    ));

    let words = text(&[Some("2026-01-01"), Some("next tuesday")]);
    write(
        &feed,
        "invoices/bad-date.parquet",
        &with_column(&two("B1", "B2"), "due_date", words),
    );
    expect.push((
        "invoices/bad-date.parquet",
        ViolationCode::WrongType,
        Some(2),
        Some("due_date"),
    ));

    write(
        &feed,
        "invoices/null-key.parquet",
        &with_column(&two("N1", "N2"), "invoice_id", text(&[Some("N1"), None])),
    );
    expect.push((
        "invoices/null-key.parquet",
        ViolationCode::NullKey,
        Some(2),
        Some("invoice_id"),
    ));

    let seqs: ArrayRef = Arc::new(Int64Array::from(vec![None, Some(2)]));
    write(
        &feed,
        "invoices/null-seq.parquet",
        &with_column(&two("Q1", "Q2"), "_seq", seqs),
    );
    expect.push((
        "invoices/null-seq.parquet",
        ViolationCode::NullChangeField,
        Some(1),
        Some("_seq"),
    ));

    write(
        &feed,
        "invoices/bad-op.parquet",
        &with_column(&two("O1", "O2"), "_op", text(&[Some("c"), Some("x")])),
    );
    expect.push((
        "invoices/bad-op.parquet",
        ViolationCode::UnknownOp,
        Some(2),
        Some("_op"),
    ));

    write(
        &feed,
        "invoices/bad-ccy.parquet",
        &with_column(
            &two("C1", "C2"),
            "currency",
            text(&[Some("usd"), Some("USD")]),
        ),
    );
    expect.push((
        "invoices/bad-ccy.parquet",
        ViolationCode::BadCurrency,
        Some(1),
        Some("currency"),
    ));

    write(
        &feed,
        "invoices/negative.parquet",
        &invoices(&[("c", 1, "X1".into(), 100), ("c", 2, "X2".into(), -500)]),
    );
    expect.push((
        "invoices/negative.parquet",
        ViolationCode::NegativeAmount,
        Some(2),
        Some("amount"),
    ));

    // Same key, same _seq, different images: within one file, and against an applied file.
    write(
        &feed,
        "invoices/conflict-inside.parquet",
        &invoices(&[("c", 5, "K1".into(), 100), ("u", 5, "K1".into(), 999)]),
    );
    expect.push((
        "invoices/conflict-inside.parquet",
        ViolationCode::ConflictingImage,
        Some(2),
        Some("invoice_id"),
    ));
    write(
        &feed,
        "invoices/conflict-with-state.parquet",
        &invoices(&[("c", 3, "K9".into(), 5), ("c", 1, "G1".into(), 777)]),
    );
    expect.push((
        "invoices/conflict-with-state.parquet",
        ViolationCode::ConflictingImage,
        Some(2),
        Some("invoice_id"),
    ));

    let state = dir.path().join("state");
    let (mut st, report) = ingest_dir(&feed, &state).await;

    assert_eq!(
        report.files_applied, 2,
        "only the two good files apply: {:?}",
        report.quarantined
    );
    assert_eq!(report.quarantined.len(), expect.len());
    for (file, code, row, column) in &expect {
        let v = report
            .quarantined
            .iter()
            .find(|v| v.file == *file)
            .unwrap_or_else(|| panic!("{file} was not quarantined"));
        assert_eq!(v.code, *code, "{file}: {}", v.reason());
        assert_eq!(v.row, *row, "{file}: {}", v.reason());
        assert_eq!(v.column.as_deref(), *column, "{file}: {}", v.reason());
        assert!(
            v.reason().starts_with(file),
            "the reason names the file: {}",
            v.reason()
        );
        // The bad file is kept in quarantine with its reason beside it.
        assert!(
            state.join("quarantine").join(file).exists(),
            "{file} copied to quarantine"
        );
        assert!(
            state
                .join("quarantine")
                .join(format!("{file}.reason.json"))
                .exists()
        );
    }
    // Nothing of a bad file was applied, the good files were.
    assert_eq!(
        invoice_rows(&mut st),
        vec![("G1".into(), 10_000), ("G2".into(), 10_000)]
    );
    assert_eq!(st.checkpoint().quarantined.len(), expect.len());

    // Quarantined files are not tried again; a corrected file under a new name goes through.
    write(
        &feed,
        "invoices/negative-fixed.parquet",
        &invoices(&[("c", 1, "X1".into(), 100), ("c", 2, "X2".into(), 500)]),
    );
    let (mut st, again) = ingest_dir(&feed, &state).await;
    assert_eq!((again.files_applied, again.quarantined.len()), (1, 0));
    assert_eq!(invoice_rows(&mut st).len(), 4);
}

#[tokio::test]
async fn deletes_need_only_the_key_and_extra_columns_stay() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    let with_extra = with_column(&good("E1", 1), "po_number", text(&[Some("PO-77")]));
    write(&feed, "invoices/a.parquet", &with_extra);
    write(&feed, "invoices/b.parquet", &good("E2", 2));
    let delete_only = invoices(&[("d", 9, "E2".into(), 0)]);
    let keep: Vec<usize> = ["_op", "_seq", "_ts", "invoice_id"]
        .iter()
        .map(|c| delete_only.schema().index_of(c).unwrap())
        .collect();
    write(
        &feed,
        "invoices/c-deletes.parquet",
        &delete_only.project(&keep).unwrap(),
    );
    let state = dir.path().join("state");
    let (mut st, report) = ingest_dir(&feed, &state).await;
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    assert_eq!(invoice_rows(&mut st), vec![("E1".into(), 10_000)]);
    let schema = st.table(arstream::feed::Entity::Invoices).table_schema();
    assert!(
        schema.index_of("po_number").is_ok(),
        "extra column kept: {schema:?}"
    );
    // With its value, queryable.
    let engine = arstream::engine::Engine::new()
        .with_queries(None, arstream::engine::views::ViewSet::Plain)
        .unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    engine
        .refresh(&mut st, &arstream::engine::params::KpiParams::new(as_of))
        .await
        .unwrap();
    let rows = engine
        .query("SELECT invoice_id || ' ' || po_number FROM invoices")
        .await
        .unwrap();
    let kept = arrow::util::display::array_value_to_string(rows[0].column(0), 0).unwrap();
    assert_eq!(kept, "E1 PO-77");
}

/// A file of images without several required columns names them all at once; optional
/// columns may be left out: their rows hold null or their default (an invoice's status,
/// `posted`; its due date, the invoice date).
#[tokio::test]
async fn missing_required_columns_are_named_at_once_and_optional_ones_may_be_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    let both = without_column(&without_column(&good("M1", 1), "amount"), "customer_id");
    write(&feed, "invoices/missing-two.parquet", &both);
    write(
        &feed,
        "invoices/no-status.parquet",
        &without_column(&good("S1", 1), "status"),
    );
    write(
        &feed,
        "invoices/no-due-date.parquet",
        &without_column(&good("D1", 2), "due_date"),
    );
    let (mut state, report) = ingest_dir(&feed, &dir.path().join("state")).await;
    assert_eq!(report.quarantined.len(), 1, "{:?}", report.quarantined);
    let q = &report.quarantined[0];
    assert_eq!(q.code, ViolationCode::MissingColumn);
    assert_eq!(
        q.reason(),
        "invoices/missing-two.parquet: required columns 'customer_id', 'amount' are missing (rows other than deletes carry the full image)"
    );
    // Left without a status: posted, and counted as an open invoice.
    assert_eq!(
        invoice_rows(&mut state),
        [("D1".to_string(), 10_000), ("S1".to_string(), 10_000)]
    );
    let engine = arstream::engine::Engine::new()
        .with_queries(None, arstream::engine::views::ViewSet::Plain)
        .unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    engine
        .refresh(&mut state, &arstream::engine::params::KpiParams::new(as_of))
        .await
        .unwrap();
    let rows = engine
        .query(
            "SELECT invoice_id, status, CAST(due_date = invoice_date AS VARCHAR) \
             FROM invoices ORDER BY invoice_id",
        )
        .await
        .unwrap();
    let batch = &rows[0];
    let cells: Vec<String> = (0..batch.num_rows())
        .flat_map(|r| {
            (0..3).map(move |c| {
                arrow::util::display::array_value_to_string(batch.column(c), r).unwrap()
            })
        })
        .collect();
    // S1 carries its own due date (not its invoice date); D1 had none: due on receipt.
    assert_eq!(cells, ["D1", "posted", "true", "S1", "posted", "false"]);
}
