//! The same feed, state and outputs on a real S3-compatible server (moto's standalone server,
//! started on loopback by this test; `.ci/run` installs it from PyPI, and so does this test
//! when it is missing). Credentials and endpoint reach arstream through the environment.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_arstream");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Server, String) {
    let has_moto = Command::new("python3")
        .args(["-c", "import moto.server"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_moto {
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "moto[server]"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "moto[server] is needed for this test and could not be installed"
        );
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
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
    arstream(
        &endpoint,
        &[
            "generate",
            "--out",
            "s3://arstream-test/feed",
            "--customers",
            "10",
            "--months",
            "2",
        ],
    );

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
    assert!(first.contains("0 quarantined"), "{first}");

    // The state on S3 is read back by another process: the same tables, nothing applied twice.
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

    let mut kpi = s3.to_vec();
    kpi.extend(["kpi", "--format", "json"]);
    let summary: serde_json::Value = serde_json::from_str(&arstream(&endpoint, &kpi)).unwrap();
    assert_eq!(summary["as_of"], "2025-02-28");
    assert!(summary["total_ar"].as_f64().unwrap() > 0.0);
}
