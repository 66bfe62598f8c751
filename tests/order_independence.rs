//! The result of applying a feed does not depend on the order its files are applied in, nor
//! on how its changes are split into files: for every key the change with the highest `_seq`
//! wins, deletes included, and re-delivered changes change nothing.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use arstream::ingest::{IngestOptions, catch_up, open_state};
use common::{InvoiceChange, ingest, invoice_rows, invoices};
use object_store::ObjectStoreExt;
use proptest::prelude::*;

/// Changes for a few keys: each key gets distinct `_seq`s, a random op and amount each.
fn changes() -> impl Strategy<Value = Vec<InvoiceChange>> {
    let per_key = prop::collection::vec((0..4u8, 1..1_000_000i64), 1..6);
    prop::collection::vec(per_key, 1..8).prop_map(|keys| {
        let mut out = Vec::new();
        for (k, list) in keys.into_iter().enumerate() {
            for (i, (op, cents)) in list.into_iter().enumerate() {
                let code = ["c", "u", "d", "r"][op as usize];
                // Distinct per key; interleaved across keys.
                let seq = (i as i64) * 10 + k as i64;
                out.push((code, seq, format!("I{k}"), cents));
            }
        }
        out
    })
}

/// What the state must hold: the highest-seq change per key, unless it is a delete.
fn expected(changes: &[InvoiceChange]) -> Vec<(String, i128)> {
    let mut latest: BTreeMap<&str, &InvoiceChange> = BTreeMap::new();
    for c in changes {
        let slot = latest.entry(c.2.as_str()).or_insert(c);
        if c.1 > slot.1 {
            *slot = c;
        }
    }
    latest
        .into_values()
        .filter(|c| c.0 != "d")
        .map(|c| (c.2.clone(), c.3 as i128))
        .collect()
}

static CASE: AtomicUsize = AtomicUsize::new(0);

/// Split shuffled changes into files at `cuts`, name the files so that `order` is the order
/// they are applied in, and ingest them from an in-memory store.
fn apply_split(changes: &[InvoiceChange], cuts: &[usize], redeliver: usize) -> Vec<(String, i128)> {
    let case = CASE.fetch_add(1, Ordering::SeqCst);
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (changes.len() + 1)).collect();
    bounds.push(0);
    bounds.push(changes.len());
    bounds.sort_unstable();
    bounds.dedup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let feed_url = format!("memory://feed-{case}/");
        let state_url = format!("memory://state-{case}/");
        let feed = arstream::store::open(&feed_url, false).unwrap();
        let land = |name: String, part: RecordBatch| {
            let feed = feed.clone();
            async move {
                let bytes = arstream::parquet_io::encode(&part.schema(), &[part]).unwrap();
                feed.store
                    .put(&feed.child(&name), bytes.into())
                    .await
                    .unwrap();
            }
        };
        let windows: Vec<&[usize]> = bounds.windows(2).collect();
        let (first_wave, second_wave) = windows.split_at(windows.len() / 2);
        let opts = IngestOptions {
            checkpoint_every_files: 2,
            ..Default::default()
        };
        // First wave, settled into a snapshot.
        for (n, w) in first_wave.iter().enumerate() {
            land(
                format!("invoices/a-{n:03}.parquet"),
                invoices(&changes[w[0]..w[1]]),
            )
            .await;
        }
        let location = arstream::store::open(&state_url, true).unwrap();
        let mut state = open_state(location, &feed, &opts).await.unwrap();
        state.set_snapshot_policy(0.0, 0);
        let report = catch_up(&mut state, &feed, &opts, None).await.unwrap();
        assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
        // The first wave's current rows, read between the waves as the engine reads them.
        let first: Vec<InvoiceChange> = (first_wave.iter())
            .flat_map(|w| changes[w[0]..w[1]].iter().cloned())
            .collect();
        assert_eq!(invoice_rows(&mut state), expected(&first));
        // Second wave lands later, plus an at-least-once connector delivering one change again.
        for (n, w) in second_wave.iter().enumerate() {
            land(
                format!("invoices/b-{n:03}.parquet"),
                invoices(&changes[w[0]..w[1]]),
            )
            .await;
        }
        if !changes.is_empty() {
            let again = invoices(&changes[redeliver % changes.len()..][..1]);
            land("invoices/zz-redelivered.parquet".into(), again).await;
        }
        let report = catch_up(&mut state, &feed, &opts, None).await.unwrap();
        assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
        let rows = invoice_rows(&mut state);
        // Reloading (snapshot plus what was applied after it) gives the same tables.
        let (mut reloaded, again) = ingest(&feed_url, &state_url, &opts).await;
        assert_eq!(again.files_applied, 0, "a second catch-up applies nothing");
        assert_eq!(invoice_rows(&mut reloaded), rows);
        rows
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_split_gives_the_same_state(
        changes in changes(),
        perm_a in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        perm_b in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        cuts_a in prop::collection::vec(0usize..64, 0..5),
        cuts_b in prop::collection::vec(0usize..64, 0..5),
        redeliver in 0usize..64,
    ) {
        let want = expected(&changes);
        for (perm, cuts) in [(perm_a, &cuts_a), (perm_b, &cuts_b)] {
            let mut shuffled = changes.clone();
            shuffle(&mut shuffled, perm);
            prop_assert_eq!(apply_split(&shuffled, cuts, redeliver), want.clone());
        }
    }
}

/// A deterministic Fisher–Yates shuffle from a seed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}
