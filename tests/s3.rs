//! The same feed, state and outputs on a real S3-compatible server (moto's standalone server,
//! started on loopback by this test; `.ci/run` installs it from PyPI, and so does this test
//! when it is missing). Credentials and endpoint reach arstream through the environment. The
//! feed holds a name with spaces and non-ASCII characters and more than 1,000 files.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");
/// Files landed on top of the generated feed: past the 1,000 keys a listing page holds.
const MANY: usize = 1_050;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Server, String) {
    let python = common::python_with("moto[server]", "moto.server");
    // Each server its own port (the OS may give two tests the same free one).
    let port = common::servers::free_port();
    let mut child = Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto's server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto's server did not start");
        assert!(
            child.try_wait().unwrap().is_none(),
            "moto's server exited on start (port {port})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Server(child), endpoint)
}

fn arstream(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(std::env::temp_dir())
        .env("AWS_ENDPOINT", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
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

#[test]
fn feed_state_and_outputs_on_an_s3_compatible_server() {
    let (_server, endpoint) = start_moto();
    // Make the bucket and land a small generated feed in it, through S3's API.
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/arstream-test', method='PUT'))",
            &endpoint,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "could not create the bucket");
    let generate = ["generate", "--customers", "10", "--months", "2", "--out"];
    let mut to_s3 = generate.to_vec();
    to_s3.push("s3://arstream-test/feed");
    arstream(&endpoint, &to_s3);
    // The same feed in a local folder, for the numbers S3 must give.
    let local = tempfile::tempdir().unwrap();
    let local_feed = local.path().join("feed");
    let mut to_local = generate.to_vec();
    to_local.push(local_feed.to_str().unwrap());
    arstream(&endpoint, &to_local);
    // One more file, whose name must round-trip through S3's keys.
    let extra = "invoices/extra/März #1 50%?.parquet";
    let batch = common::invoices(&[("c", 1, "EXTRA-1".into(), 12_345)]);
    let bytes =
        arstream::parquet_io::encode(&batch.schema(), std::slice::from_ref(&batch)).unwrap();
    common::write(&local_feed, extra, &batch);
    let client = s3_client(&endpoint, "arstream-test");
    let key = object_store::path::Path::parse(format!("feed/{extra}")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(object_store::ObjectStoreExt::put(
        client.as_ref(),
        &key,
        bytes.into(),
    ))
    .unwrap();
    // More files than one listing page holds (1,000), in both feeds.
    let many: Vec<(String, arrow::array::RecordBatch)> = (0..MANY)
        .map(|i| {
            let batch = common::invoices(&[("c", 1, format!("MANY-{i:04}"), 100 + i as i64)]);
            (format!("invoices/many/part-{i:04}.parquet"), batch)
        })
        .collect();
    rt.block_on(async {
        let puts =
            many.iter().map(|(rel, batch)| {
                let bytes =
                    arstream::parquet_io::encode(&batch.schema(), std::slice::from_ref(batch))
                        .unwrap();
                let key = object_store::path::Path::parse(format!("feed/{rel}")).unwrap();
                let client = client.clone();
                async move {
                    object_store::ObjectStoreExt::put(client.as_ref(), &key, bytes.into()).await
                }
            });
        for put in futures::future::join_all(puts).await {
            put.unwrap();
        }
    });
    for (rel, batch) in &many {
        common::write(&local_feed, rel, batch);
    }

    let s3 = [
        "--feed",
        "s3://arstream-test/feed",
        "--state",
        "s3://arstream-test/state",
        "--as-of",
        "2025-02-28",
    ];
    let mut run = s3.to_vec();
    run.extend(["run", "--once", "--out", "s3://arstream-test/out"]);
    let first = arstream(&endpoint, &run);
    assert!(first.contains("; 0 quarantined, 0 unreadable"), "{first}");

    // The state on S3 is read back by another process (replaying the extra file by its
    // name): the same tables, nothing applied twice.
    let mut sql = s3.to_vec();
    sql.extend([
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM invoices_changes",
    ]);
    let changes = arstream(&endpoint, &sql);
    let again = arstream(&endpoint, &run);
    assert!(again.contains("applied 0 new file(s)"), "{again}");
    assert_eq!(arstream(&endpoint, &sql), changes);
    let local_state = local.path().join("state");
    let on_disk = [
        "--feed",
        local_feed.to_str().unwrap(),
        "--state",
        local_state.to_str().unwrap(),
        "--as-of",
        "2025-02-28",
    ];
    let mut local_sql = on_disk.to_vec();
    local_sql.extend_from_slice(&sql[s3.len()..]);
    assert_eq!(
        changes,
        arstream(&endpoint, &local_sql),
        "change rows on S3 and on disk"
    );

    // The KPI summary on S3 is the one of the same feed on disk, to the last digit.
    let mut kpi = s3.to_vec();
    kpi.extend(["kpi", "--format", "json"]);
    let summary: serde_json::Value = serde_json::from_str(&arstream(&endpoint, &kpi)).unwrap();
    let mut local_kpi = on_disk.to_vec();
    local_kpi.extend(["kpi", "--format", "json"]);
    let want: serde_json::Value = serde_json::from_str(&arstream(&endpoint, &local_kpi)).unwrap();
    assert_eq!(summary["as_of"], "2025-02-28");
    assert_eq!(summary, want);
    let mut many_sql = s3.to_vec();
    many_sql.extend([
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM invoices WHERE invoice_id LIKE 'MANY-%'",
    ]);
    assert_eq!(arstream(&endpoint, &many_sql), format!("n\n{MANY}\n"));
}

/// A client of bucket `name` on the server (signed requests).
fn s3_client(endpoint: &str, name: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
    std::sync::Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(name)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .build()
            .unwrap(),
    )
}

/// The bucket `name` on the server, through object_store's S3 client (signed requests).
fn bucket(endpoint: &str, name: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/' + sys.argv[2], method='PUT'), timeout=30)",
            endpoint,
            name,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "could not create the bucket");
    s3_client(endpoint, name)
}

/// Every file below `dir`, with its path relative to `root`.
fn files_below(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_below(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            out.push((path.display().to_string(), rel));
        }
    }
}

/// The sibling of `watch.rs`'s kill test on S3: `arstream run` (the service) with feed, state
/// and outputs on the S3-compatible server, killed with SIGKILL at random moments while months
/// of files land, then restarted; the KPI summary equals that of a run never interrupted, in
/// one object for the one as-of date.
#[test]
fn service_killed_at_random_moments_on_s3_ends_like_an_uninterrupted_run() {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let (_server, endpoint) = start_moto();
    let store = bucket(&endpoint, "arstream-kill");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let put = |files: &[(String, String)]| {
        rt.block_on(async {
            for (path, rel) in files {
                let bytes = bytes::Bytes::from(std::fs::read(path).unwrap());
                let key = object_store::path::Path::from(format!("feed/{rel}"));
                store.put(&key, bytes.into()).await.unwrap();
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let staging_s = staging.to_str().unwrap().to_string();
    let generate = [
        "generate",
        "--out",
        &staging_s,
        "--customers",
        "20",
        "--months",
        "3",
        "--seed",
        "7",
    ];
    arstream(&endpoint, &generate);
    let reference_out = dir.path().join("reference-out");
    let reference_state = dir.path().join("reference-state");
    arstream(
        &endpoint,
        &[
            "--feed",
            &staging_s,
            "--state",
            reference_state.to_str().unwrap(),
            "--as-of",
            "2025-03-31",
            "run",
            "--once",
            "--out",
            reference_out.to_str().unwrap(),
        ],
    );

    let mut all = Vec::new();
    files_below(&staging, &staging, &mut all);
    let s3 = [
        "--feed",
        "s3://arstream-kill/feed",
        "--state",
        "s3://arstream-kill/state",
        "--as-of",
        "2025-03-31",
    ];
    let mut rng = common::Xorshift::from_env_or_clock();
    for round in 0..6 {
        let month = format!("month=2025-0{}", 1 + round / 2);
        let landing: Vec<_> = all
            .iter()
            .filter(|(_, rel)| rel.contains(&month))
            .cloned()
            .collect();
        put(&landing);
        let mut child = Command::new(BIN)
            .current_dir(std::env::temp_dir())
            .env("AWS_ENDPOINT", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .args(s3)
            .args([
                "run",
                "--interval",
                "0.05",
                "--out",
                "s3://arstream-kill/out",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200 + rng.next() % 1500));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // Everything has landed (the same files again change nothing); one refresh finishes.
    put(&all);
    let mut once = s3.to_vec();
    once.extend(["run", "--once", "--out", "s3://arstream-kill/out"]);
    arstream(&endpoint, &once);

    let (objects, got) = rt.block_on(async {
        let prefix = object_store::path::Path::from("out/kpi_summary");
        let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        let key = object_store::path::Path::from("out/kpi_summary/2025-03-31.parquet");
        let got = store.get(&key).await.unwrap().bytes().await.unwrap();
        (listed.len(), got)
    });
    assert_eq!(objects, 1, "one kpi_summary object for the one as-of date");
    let got = arstream::feed::validate::decode_parquet("s3 output", got).unwrap();
    let want_path = reference_out.join("kpi_summary/2025-03-31.parquet");
    let want = bytes::Bytes::from(std::fs::read(&want_path).unwrap());
    let want = arstream::feed::validate::decode_parquet("reference", want).unwrap();
    assert_eq!(
        got, want,
        "the KPI summary of the killed runs equals the uninterrupted one"
    );
}
