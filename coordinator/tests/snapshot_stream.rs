//! Snapshot streams over real QUIC with mutual TLS: the agent's `upload`/`download` against
//! the coordinator's stream acceptor and store, on one connection.

use gpuspot_agent::snapshots::{download, upload};
use gpuspot_common::pki::{self, CertificateAuthority, HostCredentials};
use gpuspot_common::snapshot::{pack, unpack};
use gpuspot_common::{HostId, InstanceId, transport};
use gpuspot_coordinator::quic::snapshots::{SnapshotStreams, spawn_acceptor};
use gpuspot_coordinator::snapshots::SnapshotFiles;
use std::path::Path;
use std::time::Duration;

const IDLE: Duration = Duration::from_secs(10);
const MAX_BYTES: u64 = 1024 * 1024;

/// A coordinator endpoint serving only snapshot streams, and an agent connection to it.
async fn connect(dir: &Path) -> (quinn::Endpoint, quinn::Connection, quinn::Endpoint) {
    pki::install_crypto_provider();
    let ca = CertificateAuthority::load_or_create(&dir.join("ca")).unwrap();
    let server = transport::server_endpoint(
        "127.0.0.1:0".parse().unwrap(),
        ca.server_config().unwrap(),
        IDLE,
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let streams =
        SnapshotStreams { files: SnapshotFiles::new(dir.join("store")), max_bytes: MAX_BYTES };
    let accepting = server.clone();
    tokio::spawn(async move {
        let connection = accepting.accept().await.unwrap().await.unwrap();
        spawn_acceptor(connection, streams, HostId::from("h-test"));
    });
    let (key_pem, csr_pem) = pki::new_host_key_and_csr("host-a").unwrap();
    let host_id = HostId::random();
    let cert_pem = ca.sign_host_csr(&csr_pem, &host_id).unwrap();
    let ca_pem = ca.cert_pem().to_owned();
    let credentials = HostCredentials { host_id, key_pem, cert_pem, ca_pem };
    let client = transport::client_endpoint(addr).unwrap();
    let tls = credentials.client_config().unwrap();
    let connection = transport::connect(&client, addr, tls, IDLE).await.unwrap();
    (server, connection, client)
}

fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn a_data_dir_travels_to_the_store_and_back_over_quic() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, connection, _client) = connect(tmp.path()).await;
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("checkpoints")).unwrap();
    std::fs::write(data.join("checkpoints/model.pt"), noise(300_000)).unwrap();
    std::fs::write(data.join("step"), b"4200").unwrap();
    let packed = tmp.path().join("snapshot.tar.zst");
    let (sha256, size) = pack(&data, &packed, MAX_BYTES).unwrap();

    let id = InstanceId::from("i-1");
    let stored = upload(&connection, &id, &packed, &sha256, size).await.unwrap();
    assert_eq!((stored.sha256.as_str(), stored.size), (sha256.as_str(), size));
    assert!(tmp.path().join("store").join(format!("{}.tar.zst", stored.id)).exists());

    let fetched = tmp.path().join("restore.tar.zst");
    download(&connection, &stored, &fetched).await.unwrap();
    unpack(&fetched, &tmp.path().join("restored"), &stored).unwrap();
    let restored = tmp.path().join("restored");
    assert_eq!(std::fs::read(restored.join("step")).unwrap(), b"4200");
    assert_eq!(std::fs::read(restored.join("checkpoints/model.pt")).unwrap(), noise(300_000));
}

#[tokio::test]
async fn refusals_come_back_as_errors_and_a_dead_link_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, connection, _client) = connect(tmp.path()).await;
    let big = tmp.path().join("big.tar.zst");
    let bytes = noise(3 * MAX_BYTES as usize);
    std::fs::write(&big, &bytes).unwrap();
    let sha256 = gpuspot_common::snapshot::sha256_file(&big).unwrap();
    let id = InstanceId::from("i-2");
    let err = upload(&connection, &id, &big, &sha256, bytes.len() as u64).await.unwrap_err();
    assert!(err.contains("limit"), "{err}");

    let small = tmp.path().join("small.tar.zst");
    std::fs::write(&small, b"tiny").unwrap();
    let err = upload(&connection, &id, &small, &"00".repeat(32), 4).await.unwrap_err();
    assert!(err.contains("sha256"), "{err}");

    let mut missing = gpuspot_common::protocol::SnapshotRef {
        id: "s-0123456789abcdef".into(),
        sha256: sha256.clone(),
        size: 4,
    };
    let err = download(&connection, &missing, &tmp.path().join("x")).await.unwrap_err();
    assert!(err.contains("unknown snapshot"), "{err}");
    missing.id = "../../ca/ca.key".into();
    let err = download(&connection, &missing, &tmp.path().join("x")).await.unwrap_err();
    assert!(err.contains("not a snapshot id"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path().join("store")).unwrap().count(), 0);

    assert!(connection.close_reason().is_none());
    connection.close(0u32.into(), b"bye");
    assert!(upload(&connection, &id, &small, &sha256, 4).await.is_err());
    assert!(connection.close_reason().is_some(), "what the agent reads as a lost link");
}
