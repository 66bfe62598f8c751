//! The same feed, state and outputs on Azure Blob Storage: Azurite, Microsoft's emulator,
//! installed by this test from the npm registry into the build folder (once) and started on
//! loopback. arstream reaches it as a user of the emulator would, through the environment
//! (`AZURE_STORAGE_USE_EMULATOR`, `AZURITE_BLOB_STORAGE_URL`). The feed holds a name with
//! spaces and non-ASCII characters and more than 1,000 files (listing pages).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;

const BIN: &str = env!("CARGO_BIN_EXE_arstream");
/// Files landed on top of the generated feed: past the 1,000 a listing page holds.
const MANY: usize = 1_050;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Azurite's blob server, installed from npm under the build folder when missing.
fn azurite() -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node");
    let bin = folder.join("node_modules/.bin/azurite-blob");
    if !bin.exists() {
        std::fs::create_dir_all(&folder).unwrap();
        let installed = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "azurite@3",
            ])
            .current_dir(&folder)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed && bin.exists(),
            "Azurite could not be installed from npm"
        );
    }
    bin
}

fn start_azurite() -> (Server, String) {
    let port = common::servers::free_port();
    let mut child = Command::new(azurite())
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        // In memory; the client library's newer API versions accepted.
        .args([
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Azurite");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "Azurite did not start");
        assert!(
            child.try_wait().unwrap().is_none(),
            "Azurite exited on start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Server(child), format!("http://127.0.0.1:{port}"))
}

/// Make a container, with Azure's own client library (from PyPI).
fn create_container(url: &str, name: &str) {
    let python = common::python_with("azure-storage-blob", "azure.storage.blob");
    let script = "import sys\n\
        from azure.storage.blob import BlobServiceClient\n\
        key = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='\n\
        cs = f'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint={sys.argv[1]}/devstoreaccount1;'\n\
        BlobServiceClient.from_connection_string(cs).create_container(sys.argv[2])\n";
    let made = Command::new(python)
        .args(["-c", script, url, name])
        .status()
        .unwrap();
    assert!(made.success(), "could not create container {name}");
}

fn arstream(url: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(std::env::temp_dir())
        .env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env("AZURITE_BLOB_STORAGE_URL", url)
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
fn feed_state_and_outputs_on_azure_blob_storage() {
    let (_server, url) = start_azurite();
    create_container(&url, "arstream-test");
    let generate = ["generate", "--customers", "10", "--months", "2", "--out"];
    let mut to_azure = generate.to_vec();
    to_azure.push("az://arstream-test/feed");
    arstream(&url, &to_azure);
    let local = tempfile::tempdir().unwrap();
    let local_feed = local.path().join("feed");
    let mut to_local = generate.to_vec();
    to_local.push(local_feed.to_str().unwrap());
    arstream(&url, &to_local);

    // More files, one named with spaces and non-ASCII characters, landed in both feeds.
    // (The emulator's address reaches object_store's client only through the environment;
    // this file's one test is the only thread reading it.)
    unsafe { std::env::set_var("AZURITE_BLOB_STORAGE_URL", &url) };
    let container: std::sync::Arc<dyn object_store::ObjectStore> = std::sync::Arc::new(
        object_store::azure::MicrosoftAzureBuilder::new()
            .with_use_emulator(true)
            .with_container_name("arstream-test")
            .build()
            .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut landed = vec![(
        "invoices/extra/März #1 50%?.parquet".to_string(),
        common::invoices(&[("c", 1, "EXTRA-1".into(), 12_345)]),
    )];
    for i in 0..MANY {
        let batch = common::invoices(&[("c", 1, format!("MANY-{i:04}"), 100 + i as i64)]);
        landed.push((format!("invoices/many/part-{i:04}.parquet"), batch));
    }
    rt.block_on(async {
        let puts = landed.iter().map(|(rel, batch)| {
            let bytes =
                arstream::parquet_io::encode(&batch.schema(), std::slice::from_ref(batch)).unwrap();
            let key = object_store::path::Path::parse(format!("feed/{rel}")).unwrap();
            let container = container.clone();
            async move { container.put(&key, bytes.into()).await.unwrap() }
        });
        futures::future::join_all(puts).await;
    });
    for (rel, batch) in &landed {
        common::write(&local_feed, rel, batch);
    }

    let azure = [
        "--feed",
        "az://arstream-test/feed",
        "--state",
        "az://arstream-test/state",
        "--as-of",
        "2025-02-28",
    ];
    let mut run = azure.to_vec();
    run.extend(["run", "--once", "--out", "az://arstream-test/out"]);
    let first = arstream(&url, &run);
    assert!(first.contains("; 0 quarantined, 0 unreadable"), "{first}");
    let again = arstream(&url, &run);
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
        let mut a = azure.to_vec();
        a.extend(query);
        let mut d = on_disk.to_vec();
        d.extend(query);
        assert_eq!(arstream(&url, &a), arstream(&url, &d), "{query:?}");
    }
    let mut count = azure.to_vec();
    count.extend([
        "sql",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM invoices WHERE invoice_id LIKE 'MANY-%' OR invoice_id = 'EXTRA-1'",
    ]);
    assert_eq!(arstream(&url, &count), format!("n\n{}\n", MANY + 1));
    // The outputs are there, in the container.
    let outputs = rt.block_on(async {
        let key = object_store::path::Path::from("out/kpi_summary/2025-02-28.parquet");
        container.head(&key).await.is_ok()
    });
    assert!(outputs, "kpi_summary written to the container");
}
