//! A service runs for weeks: old checkpoints and snapshots are deleted as new ones are written,
//! the state still loads to the same tables, and a writer left behind by the deletions cannot
//! write a generation over the newer ones.

mod common;

use arstream::ingest::{IngestError, IngestOptions, catch_up, open_state};
use arstream::state::StateError;
use arstream::state::checkpoint::KEEP_GENERATIONS;
use common::{invoice_rows, invoices};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

/// The objects under `prefix` of the state folder.
async fn objects(state: &arstream::store::Location, prefix: &str) -> Vec<String> {
    let listed: Vec<_> = (state.store)
        .list(Some(&state.child(prefix)))
        .try_collect()
        .await
        .unwrap();
    listed.into_iter().map(|m| m.location.to_string()).collect()
}

#[tokio::test]
async fn old_generations_are_deleted_and_the_state_still_loads() {
    let feed = arstream::store::open("memory://gc-feed/", false).unwrap();
    let location = arstream::store::open("memory://gc-state/", true).unwrap();
    let opts = IngestOptions::default();
    let mut state = open_state(location.clone(), &feed, &opts).await.unwrap();
    // Loaded before any generation is written, and left behind.
    let mut laggard = open_state(location.clone(), &feed, &opts).await.unwrap();
    state.set_snapshot_policy(0.0, 0);
    let land = |n: usize| {
        let feed = feed.clone();
        async move {
            let batch = invoices(&[("c", n as i64, format!("I{n}"), 100 * n as i64)]);
            let bytes = arstream::parquet_io::encode(&batch.schema(), &[batch]).unwrap();
            let path = feed.child(&format!("invoices/part-{n:03}.parquet"));
            feed.store.put(&path, bytes.into()).await.unwrap();
        }
    };
    let generations = 3 * KEEP_GENERATIONS as usize;
    for n in 0..generations {
        land(n).await;
        let report = catch_up(&mut state, &feed, &opts, None).await.unwrap();
        assert_eq!(report.files_applied, 1);
    }

    // The collection ran at generation 30: the last 10 generations are left, 21 to 30.
    let checkpoints = objects(&location, "checkpoints").await;
    let mut numbers: Vec<u64> = (checkpoints.iter())
        .map(|p| {
            p.rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".json")
                .parse()
                .unwrap()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, (21..=30).collect::<Vec<u64>>(), "{checkpoints:?}");
    // A snapshot at every generation: only those the kept checkpoints load from are left,
    // one file (invoices) for each of generations 21 to 30.
    let snapshots = objects(&location, "snapshots").await;
    assert_eq!(snapshots.len(), KEEP_GENERATIONS as usize, "{snapshots:?}");
    for g in 21..=30 {
        let folder = format!("snapshots/g{g:010}-");
        assert!(
            snapshots.iter().any(|s| s.contains(&folder)),
            "{g}: {snapshots:?}"
        );
    }
    // Five generations more: 21 to 35 are there until the next collection, at 40.
    for n in generations..generations + 5 {
        land(n).await;
        catch_up(&mut state, &feed, &opts, None).await.unwrap();
    }
    assert_eq!(objects(&location, "checkpoints").await.len(), 15);

    let rows = invoice_rows(&mut state);
    assert_eq!(rows.len(), generations + 5);
    let mut reloaded = open_state(location.clone(), &feed, &opts).await.unwrap();
    assert_eq!(invoice_rows(&mut reloaded), rows);

    // The laggard's next generation was written and deleted long ago: it must not come back.
    land(generations + 5).await;
    match catch_up(&mut laggard, &feed, &opts, None).await {
        Err(IngestError::State(StateError::Concurrent { generation })) => {
            assert_eq!(generation, 1)
        }
        other => panic!("a writer left behind saved a generation: {other:?}"),
    }
}
