use super::*;
use gpuspot_common::snapshot::{pack, sha256_file, unpack};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, DuplexStream, ReadHalf, WriteHalf};

type Halves = (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>);

/// A pair of in-memory streams: the agent's (send, recv) and the coordinator's halves.
fn pipe() -> (WriteHalf<DuplexStream>, ReadHalf<DuplexStream>, Halves) {
    let (agent, coordinator) = tokio::io::duplex(64 * 1024);
    let (recv, send) = tokio::io::split(agent);
    (send, recv, tokio::io::split(coordinator))
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn reference(data: &[u8]) -> SnapshotRef {
    SnapshotRef { id: "s-00000000000000aa".into(), sha256: sha(data), size: data.len() as u64 }
}

/// Plays the coordinator's store for one upload: keeps the bytes and answers `Stored`.
async fn store_upload((mut recv, mut send): Halves) -> Vec<u8> {
    let request: SnapshotStreamRequest = codec::read_frame(&mut recv).await.unwrap().unwrap();
    let SnapshotStreamRequest::Upload { sha256, size, .. } = request else { panic!("{request:?}") };
    let mut body = Vec::new();
    recv.read_to_end(&mut body).await.unwrap();
    assert_eq!((sha(&body), body.len() as u64), (sha256.clone(), size));
    let stored = SnapshotRef { id: "s-00000000000000aa".into(), sha256, size };
    codec::write_frame(&mut send, &SnapshotStreamReply::Stored(stored)).await.unwrap();
    send.shutdown().await.unwrap();
    body
}

/// Plays the coordinator's store for one download: offers `offered`, then sends `body`.
async fn serve_download((mut recv, mut send): Halves, offered: SnapshotStreamReply, body: Vec<u8>) {
    let request: SnapshotStreamRequest = codec::read_frame(&mut recv).await.unwrap().unwrap();
    assert!(matches!(request, SnapshotStreamRequest::Download { .. }));
    codec::write_frame(&mut send, &offered).await.unwrap();
    let _ = send.write_all(&body).await;
    let _ = send.shutdown().await;
}

async fn fetch(
    offered: SnapshotStreamReply,
    body: Vec<u8>,
    expected: &SnapshotRef,
    dest: &Path,
) -> Result<(), String> {
    let (send, recv, coordinator) = pipe();
    let server = tokio::spawn(serve_download(coordinator, offered, body));
    let result = download_over(send, recv, expected, dest).await;
    server.await.unwrap();
    result
}

#[tokio::test]
async fn a_packed_dir_goes_up_and_comes_back_down() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, packed) = (tmp.path().join("data"), tmp.path().join("snapshot.tar.zst"));
    std::fs::create_dir_all(data.join("ckpt")).unwrap();
    std::fs::write(data.join("ckpt/step"), b"1200").unwrap();
    let (sha256, size) = pack(&data, &packed, 1 << 30).unwrap();

    let (send, recv, coordinator) = pipe();
    let server = tokio::spawn(store_upload(coordinator));
    let file = tokio::fs::File::open(&packed).await.unwrap();
    let id = InstanceId::from("i-1");
    let stored = upload_over(send, recv, &id, file, &sha256, size).await.unwrap();
    let body = server.await.unwrap();
    assert_eq!((stored.sha256.as_str(), stored.size), (sha256.as_str(), size));

    let fetched = tmp.path().join("restore.tar.zst");
    fetch(SnapshotStreamReply::Sending(stored.clone()), body, &stored, &fetched).await.unwrap();
    assert_eq!(sha256_file(&fetched).unwrap(), sha256);
    unpack(&fetched, &tmp.path().join("restored"), &stored).unwrap();
    assert_eq!(std::fs::read(tmp.path().join("restored/ckpt/step")).unwrap(), b"1200");
}

#[tokio::test]
async fn a_refusal_mid_upload_reports_the_coordinators_reason() {
    let (send, recv, (mut their_recv, mut their_send)) = pipe();
    let server = tokio::spawn(async move {
        let _: Option<SnapshotStreamRequest> = codec::read_frame(&mut their_recv).await.unwrap();
        let reply = SnapshotStreamReply::Rejected { reason: "over the store's limit".into() };
        codec::write_frame(&mut their_send, &reply).await.unwrap();
        their_send.shutdown().await.unwrap();
        // Dropping both halves stops the upload's writes mid-way.
    });
    let data = vec![3u8; 1_000_000];
    let id = InstanceId::from("i-1");
    let err =
        upload_over(send, recv, &id, &data[..], &sha(&data), data.len() as u64).await.unwrap_err();
    server.await.unwrap();
    assert!(err.contains("over the store's limit"), "{err}");
}

#[tokio::test]
async fn a_corrupt_or_short_or_different_download_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("restore.tar.zst");
    let data = b"packed snapshot bytes".to_vec();
    let expected = reference(&data);

    let mut corrupt = data.clone();
    corrupt[0] ^= 1;
    let err = fetch(SnapshotStreamReply::Sending(expected.clone()), corrupt, &expected, &dest)
        .await
        .unwrap_err();
    assert!(err.contains("does not match"), "{err}");

    let short = data[..5].to_vec();
    let err = fetch(SnapshotStreamReply::Sending(expected.clone()), short, &expected, &dest)
        .await
        .unwrap_err();
    assert!(err.contains("download failed"), "{err}");

    let other = reference(b"another snapshot");
    let err = fetch(SnapshotStreamReply::Sending(other), data.clone(), &expected, &dest)
        .await
        .unwrap_err();
    assert!(err.contains("holds"), "{err}");

    let rejected = SnapshotStreamReply::Rejected { reason: "unknown snapshot".into() };
    let err = fetch(rejected, Vec::new(), &expected, &dest).await.unwrap_err();
    assert!(err.contains("unknown snapshot"), "{err}");

    fetch(SnapshotStreamReply::Sending(expected.clone()), data.clone(), &expected, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
}
