//! One check for every object store emulator: the generated feed plus 1,050 more files (past
//! a listing page of 1,000, one named with spaces and non-ASCII characters) landed in a bucket
//! and on disk; `run --once` with feed, state and outputs in the bucket gives the same tables
//! and KPIs as the same feed on disk, applies nothing the second time, and writes its outputs
//! into the bucket.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");
/// Files landed on top of the generated feed: past the 1,000 a listing page holds.
pub const MANY: usize = 1_050;

/// A bucket on an emulator, as arstream and the test reach it.
pub struct Bucket<'a> {
    /// The bucket's URL (`az://arstream-test`, `gs://arstream-test`).
    pub url: &'a str,
    /// The environment arstream needs to reach the emulator.
    pub env: &'a [(&'a str, &'a str)],
    /// A client for the same bucket, for landing files and looking at outputs.
    pub client: Arc<dyn ObjectStore>,
}

impl Bucket<'_> {
    /// Run arstream against this bucket's emulator.
    pub fn arstream(&self, args: &[&str]) -> String {
        arstream(self.env, args)
    }
}

/// Run arstream with `env` added to its environment; its standard output, or a panic with
/// its standard error.
pub fn arstream(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(std::env::temp_dir())
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The check described at the top of this file.
pub fn feed_state_and_outputs_match_disk(bucket: &Bucket) {
    let feed = format!("{}/feed", bucket.url);
    let state = format!("{}/state", bucket.url);
    let out = format!("{}/out", bucket.url);
    let generate = ["generate", "--customers", "10", "--months", "2", "--out"];
    let mut to_bucket = generate.to_vec();
    to_bucket.push(&feed);
    bucket.arstream(&to_bucket);
    let local = tempfile::tempdir().unwrap();
    let local_feed = local.path().join("feed");
    let mut to_local = generate.to_vec();
    to_local.push(local_feed.to_str().unwrap());
    bucket.arstream(&to_local);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut landed = vec![(
        "invoices/extra/März #1 50%?.parquet".to_string(),
        super::invoices(&[("c", 1, "EXTRA-1".into(), 12_345)]),
    )];
    for i in 0..MANY {
        let batch = super::invoices(&[("c", 1, format!("MANY-{i:04}"), 100 + i as i64)]);
        landed.push((format!("invoices/many/part-{i:04}.parquet"), batch));
    }
    rt.block_on(async {
        let puts = landed.iter().map(|(rel, batch)| {
            let bytes =
                arstream::parquet_io::encode(&batch.schema(), std::slice::from_ref(batch)).unwrap();
            let key = object_store::path::Path::parse(format!("feed/{rel}")).unwrap();
            let client = bucket.client.clone();
            async move { client.put(&key, bytes.into()).await.unwrap() }
        });
        futures::future::join_all(puts).await;
    });
    for (rel, batch) in &landed {
        super::write(&local_feed, rel, batch);
    }

    let in_bucket = ["--feed", &feed, "--state", &state, "--as-of", "2025-02-28"];
    let mut run = in_bucket.to_vec();
    run.extend(["run", "--once", "--out", &out]);
    let first = bucket.arstream(&run);
    assert!(first.contains("; 0 quarantined, 0 unreadable"), "{first}");
    let again = bucket.arstream(&run);
    assert!(again.contains("applied 0 new file(s)"), "{again}");

    // The same tables and KPIs as the same feed on disk, the extra invoices all there.
    let on_disk_state = local.path().join("state");
    let on_disk = [
        "--feed",
        local_feed.to_str().unwrap(),
        "--state",
        on_disk_state.to_str().unwrap(),
        "--as-of",
        "2025-02-28",
    ];
    for query in [
        &["kpi", "--format", "json"][..],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n, sum(amount) AS amount FROM invoices",
        ],
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM invoices_changes",
        ],
    ] {
        let mut b = in_bucket.to_vec();
        b.extend(query);
        let mut d = on_disk.to_vec();
        d.extend(query);
        assert_eq!(bucket.arstream(&b), bucket.arstream(&d), "{query:?}");
    }
    let mut count = in_bucket.to_vec();
    count.extend([
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM invoices WHERE invoice_id LIKE 'MANY-%' OR invoice_id = 'EXTRA-1'",
    ]);
    assert_eq!(bucket.arstream(&count), format!("n\n{}\n", MANY + 1));
    let written = rt.block_on(async {
        let key = object_store::path::Path::from("out/kpi_summary/2025-02-28.parquet");
        bucket.client.head(&key).await.is_ok()
    });
    assert!(written, "kpi_summary written to the bucket");
}

/// An emulator's process, stopped when the test ends.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `command` (its output discarded), and wait until it listens on `port` of loopback.
pub fn start(mut command: Command, port: u16, what: &str) -> Server {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "{what} exited on start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}
