//! The same feed, state and outputs on a real S3-compatible server (moto's standalone server,
//! started on loopback by this test; `.ci/run` installs it from PyPI, and so does this test
//! when it is missing). Credentials and endpoint reach arstream through the environment. The
//! check of feed, state and outputs, shared with the other stores, is `common::stores`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

/// The environment arstream reaches the server with.
fn s3_env(endpoint: &str) -> [(&'static str, &str); 5] {
    [
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ]
}

fn start_moto() -> (common::stores::Server, String) {
    let python = common::python_with("moto[server]", "moto.server");
    // Each server its own port (the OS may give two tests the same free one).
    let port = common::servers::free_port();
    let mut moto = Command::new(&python);
    moto.args([
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ]);
    let server = common::stores::start(moto, port, "moto's server");
    (server, format!("http://127.0.0.1:{port}"))
}

fn arstream(endpoint: &str, args: &[&str]) -> String {
    common::stores::arstream(&s3_env(endpoint), args)
}

#[test]
fn feed_state_and_outputs_on_an_s3_compatible_server() {
    let (_server, endpoint) = start_moto();
    common::stores::feed_state_and_outputs_match_disk(&common::stores::Bucket {
        url: "s3://arstream-test",
        env: &s3_env(&endpoint),
        client: bucket(&endpoint, "arstream-test"),
    });
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

/// `arstream publish` to the S3-compatible server: Delta tables that Python's `deltalake`
/// reads from the bucket with the rows arstream has, a second publish committing nothing.
#[test]
fn the_state_published_as_delta_tables_on_s3_is_read_by_deltalake() {
    let (_server, endpoint) = start_moto();
    bucket(&endpoint, "arstream-publish");
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed");
    common::generated_feed(&feed, 10, 2, 4, 100_000);
    let local = ["--feed", feed.to_str().unwrap(), "--state"];
    let state = dir.path().join("state");
    let with_state = |args: &[&str]| {
        let mut all = local.to_vec();
        all.push(state.to_str().unwrap());
        all.extend_from_slice(args);
        arstream(&endpoint, &all)
    };
    let to = "s3://arstream-publish/published";
    let first = with_state(&["publish", "--to", to]);
    assert!(first.contains("18 table(s) committed"), "{first}");
    let again = with_state(&["publish", "--to", to]);
    assert!(again.contains("0 table(s) committed"), "{again}");
    let counted = with_state(&[
        "--offline",
        "sql",
        "--format",
        "csv",
        "SELECT (SELECT count(*) FROM invoices) AS invoices, (SELECT count(*) FROM payments_changes) AS payment_changes",
    ]);
    let expected = counted.lines().nth(1).unwrap().to_string();

    common::python_with("moto[server]", "moto.server");
    let python = common::python_with("deltalake==1.6.6 pyarrow", "deltalake, pyarrow");
    // `os._exit`: deltalake's threads sometimes abort the interpreter's own exit (`terminate
    // called without an active exception`) once the rows are printed.
    let read = "import os, sys, deltalake\n\
        o = {'AWS_ENDPOINT_URL': sys.argv[1], 'AWS_ALLOW_HTTP': 'true', 'AWS_ACCESS_KEY_ID': 'test', 'AWS_SECRET_ACCESS_KEY': 'test', 'AWS_REGION': 'us-east-1'}\n\
        n = [deltalake.DeltaTable(f'{sys.argv[2]}/{t}', storage_options=o).to_pyarrow_table().num_rows for t in ('invoices', 'payments_changes')]\n\
        print(f'{n[0]},{n[1]}', flush=True)\n\
        os._exit(0)";
    let out = common::succeeded(Command::new(python).args(["-c", read, &endpoint, to]));
    let got = String::from_utf8(out.stdout).unwrap();
    assert_eq!(got.trim(), expected, "deltalake reads what arstream has");
}
