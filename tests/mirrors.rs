//! The view rules the models apply in Rust (`src/models/as_of_views.rs`) give the shipped
//! views' rows, and a view a queries folder replaces is read instead on the as-of date.

mod common;

use std::path::Path;

use arstream::engine::Engine;
use arstream::engine::params::KpiParams;
use arstream::engine::views::ViewSet;
use arstream::ingest::IngestOptions;
use arstream::models::as_of_views::{AsOfViews, Read};
use arstream::models::facts::Customers;
use arstream::models::forecast::{self, Basis, Forecaster};
use arstream::models::history::{History, PaidDates};
use chrono::NaiveDate;

/// The generated feed's last day: everything dated by then is known by then, so the rules
/// (which read what was known each day) and the views (what the state says) see the same.
const AS_OF: &str = "2025-10-31";

async fn engine_over(feed: &Path, state: &Path, queries: Option<&Path>) -> Engine {
    let (mut state, _) = common::ingest(
        feed.to_str().unwrap(),
        state.to_str().unwrap(),
        &IngestOptions::default(),
    )
    .await;
    let engine = Engine::new().with_queries(queries, ViewSet::Plain).unwrap();
    let as_of = NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d").unwrap();
    engine
        .refresh(&mut state, &KpiParams::new(as_of))
        .await
        .unwrap();
    engine
}

#[tokio::test]
async fn each_rust_rule_gives_its_views_rows() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 80, 10, 13, 500);
    let engine = engine_over(&feed, &dir.path().join("state"), None).await;
    let history = History::read_with(&engine, PaidDates::Computed, Customers::All)
        .await
        .unwrap();
    let views = history.views_of(&engine, Read::All).await.unwrap();
    let s = history.as_of;

    // fx_closing: every currency's closing rate (the view rounds to 8 decimals).
    let (rules, view) = (history.rates_on(s), views.rates.unwrap());
    assert!(history.currencies.len() > 2, "{:?}", history.currencies);
    assert_eq!(rules.len(), view.len());
    for (c, (r, v)) in rules.iter().zip(&view).enumerate() {
        let code = &history.currencies[c];
        match (r, v) {
            (Some(r), Some(v)) => assert!((r - v).abs() < 1e-7 * r.max(1.0), "{code}: {r} {v}"),
            _ => assert_eq!(r, v, "{code}"),
        }
    }

    // open_items: the same invoices, open amounts, disputes and promised dates (the rules
    // give every invoice that exists, the view those still open).
    let (mut rules, view) = (
        forecast::open_items_on(&history, s),
        views.open_items.unwrap(),
    );
    rules.retain(|_, r| r.open.abs() >= 0.005);
    let id = |i: &u32| history.invoices[*i as usize].invoice_id.clone();
    let mut missing: Vec<String> = view
        .keys()
        .filter(|i| !rules.contains_key(i))
        .map(id)
        .collect();
    missing.extend(rules.keys().filter(|i| !view.contains_key(i)).map(id));
    assert!(missing.is_empty(), "in one and not the other: {missing:?}");
    let (mut open, mut disputed, mut promised) = (0, 0, 0);
    for (i, v) in &view {
        let r = rules[i];
        assert!((r.open - v.open).abs() < 0.005, "{}: {r:?} {v:?}", id(i));
        assert_eq!(r.in_dispute, v.in_dispute, "{}", id(i));
        assert_eq!(r.promised, v.promised, "{}", id(i));
        open += usize::from(v.open > 0.005);
        disputed += usize::from(v.in_dispute);
        promised += usize::from(v.promised.is_some());
    }
    // Enough of each to tell.
    assert!(
        open > 100 && disputed > 2 && promised > 2,
        "{open} {disputed} {promised}"
    );
}

/// `queries/<name>.sql` in `folder`, from the shipped view with `from` replaced by `to`.
fn replaced(folder: &Path, name: &str, from: &str, to: &str) {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("queries/{name}.sql")),
    )
    .unwrap();
    assert!(shipped.contains(from), "{name} has no '{from}'");
    std::fs::create_dir_all(folder).unwrap();
    std::fs::write(
        folder.join(format!("{name}.sql")),
        shipped.replace(from, to),
    )
    .unwrap();
}

#[tokio::test]
async fn a_replaced_view_is_read_instead_on_the_as_of_date() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 80, 10, 13, 500);
    let shipped = engine_over(&feed, &dir.path().join("s1"), None).await;
    // An analyst's rules: every rate at 1, and an invoice over 60 days past due counts as in
    // dispute.
    let queries = dir.path().join("queries");
    replaced(
        &queries,
        "fx_closing",
        "CAST(rate / reporting_rate AS DECIMAL(18, 8)) AS rate",
        "CAST(1 AS DECIMAL(18, 8)) AS rate",
    );
    replaced(
        &queries,
        "invoice_status",
        "d.invoice_id IS NOT NULL AS in_dispute",
        "(d.invoice_id IS NOT NULL OR b.days_past_due > 60) AS in_dispute",
    );
    let theirs = engine_over(&feed, &dir.path().join("s2"), Some(&queries)).await;
    assert!(shipped.uses_shipped_view("open_items") && shipped.uses_shipped_view("fx_closing"));
    assert!(!theirs.uses_shipped_view("open_items") && !theirs.uses_shipped_view("fx_closing"));
    // A view that reads a replaced one is not the shipped one either.
    let balances = dir.path().join("balances");
    replaced(
        &balances,
        "invoice_balances",
        "-- Every invoice",
        "-- Each invoice",
    );
    let other = engine_over(&feed, &dir.path().join("s3"), Some(&balances)).await;
    assert!(!other.uses_shipped_view("open_items"));
    assert!(other.uses_shipped_view("fx_closing"));

    let (before, after) = (
        History::read(&shipped).await.unwrap(),
        History::read(&theirs).await.unwrap(),
    );
    assert_eq!(before.views, AsOfViews::default());
    let s = after.as_of;
    assert!(after.rates_on(s).iter().all(|r| *r == Some(1.0)));
    assert!(
        before
            .rates_on(s)
            .iter()
            .any(|r| r.is_some_and(|r| r != 1.0))
    );
    // Earlier days keep the shipped rule.
    assert_eq!(after.rates_on(s - 7), before.rates_on(s - 7));

    let (was, is) = (
        Forecaster::new(&before).forecast(s).unwrap(),
        Forecaster::new(&after).forecast(s).unwrap(),
    );
    let held = |f: &forecast::Forecast, h: &History| -> Vec<String> {
        (f.invoices.iter())
            .filter(|f| matches!(f.basis, Basis::Dispute(_) | Basis::Disputed))
            .map(|f| h.invoices[f.invoice].invoice_id.clone())
            .collect()
    };
    let long_overdue: Vec<String> = (is.invoices.iter())
        .filter(|f| s - after.invoices[f.invoice].due_date > 60)
        .map(|f| after.invoices[f.invoice].invoice_id.clone())
        .collect();
    assert!(long_overdue.len() > 10, "{}", long_overdue.len());
    let now_held = held(&is, &after);
    for id in &long_overdue {
        assert!(now_held.contains(id), "{id} is over 60 days past due: held");
    }
    assert!(now_held.len() > held(&was, &before).len());
    // Open amounts at a rate of 1: each invoice's open amount as is.
    for f in &is.invoices {
        let open = after.balance_on(f.invoice, s);
        assert!((f.open - open).abs() < 0.01, "{} {open}", f.open);
    }
}

/// An analyst's `invoice_outcomes` that keeps void invoices: the models read each invoice
/// once (a void one as voided), and their paid dates from the view.
#[tokio::test]
async fn a_replaced_invoice_outcomes_with_void_invoices_reads_each_invoice_once() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 80, 10, 13, 500);
    let queries = dir.path().join("queries");
    replaced(
        &queries,
        "invoice_outcomes",
        "  AND i.status <> 'void';",
        "  AND i.status IS NOT NULL;",
    );
    let engine = engine_over(&feed, &dir.path().join("state"), Some(&queries)).await;
    let voids = engine
        .query("SELECT count(*) FROM invoices WHERE status = 'void'")
        .await
        .unwrap();
    let voids = arrow::util::display::array_value_to_string(voids[0].column(0), 0).unwrap();
    assert_ne!(voids, "0", "the feed has void invoices");
    let history = History::read(&engine).await.unwrap();
    let mut ids: Vec<&str> = (history.invoices.iter())
        .map(|i| i.invoice_id.as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "an invoice read twice");
    assert!(history.invoices.iter().any(|i| i.gone_on.is_some()));
    Forecaster::new(&history).forecast(history.as_of).unwrap();
}
