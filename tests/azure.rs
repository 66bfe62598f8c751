//! The same feed, state and outputs on Azure Blob Storage: Azurite, Microsoft's emulator,
//! installed by this test from the npm registry into the build folder (once) and started on
//! loopback. arstream reaches it as a user of the emulator would, through the environment
//! (`AZURE_STORAGE_USE_EMULATOR`, `AZURITE_BLOB_STORAGE_URL`). The check itself, shared
//! with the other stores, is `common::stores`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

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

fn start_azurite() -> (common::stores::Server, String) {
    let port = common::servers::free_port();
    let mut azurite = Command::new(azurite());
    azurite
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        // In memory; the client library's newer API versions accepted.
        .args([
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]);
    let server = common::stores::start(azurite, port, "Azurite");
    (server, format!("http://127.0.0.1:{port}"))
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

#[test]
fn feed_state_and_outputs_on_azure_blob_storage() {
    let (_server, url) = start_azurite();
    create_container(&url, "arstream-test");
    // The emulator's address reaches object_store's own client only through the
    // environment; this file's one test is the only thread reading it.
    unsafe { std::env::set_var("AZURITE_BLOB_STORAGE_URL", &url) };
    let client = object_store::azure::MicrosoftAzureBuilder::new()
        .with_use_emulator(true)
        .with_container_name("arstream-test")
        .build()
        .unwrap();
    common::stores::feed_state_and_outputs_match_disk(&common::stores::Bucket {
        url: "az://arstream-test",
        env: &[
            ("AZURE_STORAGE_USE_EMULATOR", "true"),
            ("AZURITE_BLOB_STORAGE_URL", &url),
        ],
        client: std::sync::Arc::new(client),
    });
}
