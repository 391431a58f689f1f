use super::*;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, DuplexStream};

fn streams(dir: &Path, max_bytes: u64) -> SnapshotStreams {
    SnapshotStreams { files: SnapshotFiles::new(dir.join("snapshots")), max_bytes }
}

/// Runs `serve` on one end of an in-memory stream; returns the client's end.
fn connect(
    streams: &SnapshotStreams,
) -> (DuplexStream, tokio::task::JoinHandle<Result<(), String>>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let streams = streams.clone();
    let task = tokio::spawn(async move {
        let (recv, send) = tokio::io::split(server);
        streams.serve(send, recv).await
    });
    (client, task)
}

async fn upload(
    streams: &SnapshotStreams,
    declared: &str,
    size: u64,
    body: &[u8],
) -> SnapshotStreamReply {
    let (client, task) = connect(streams);
    let (mut recv, mut send) = tokio::io::split(client);
    let request = SnapshotStreamRequest::Upload {
        instance_id: InstanceId::from("i-1"),
        sha256: declared.to_owned(),
        size,
    };
    codec::write_frame(&mut send, &request).await.unwrap();
    // The server may refuse before reading everything: a failed write is fine here.
    let _ = send.write_all(body).await;
    let _ = send.shutdown().await;
    let reply = codec::read_frame(&mut recv).await.unwrap().unwrap();
    let _ = task.await.unwrap();
    reply
}

async fn download(streams: &SnapshotStreams, id: &str) -> (SnapshotStreamReply, Vec<u8>) {
    let (client, task) = connect(streams);
    let (mut recv, mut send) = tokio::io::split(client);
    codec::write_frame(&mut send, &SnapshotStreamRequest::Download { snapshot_id: id.into() })
        .await
        .unwrap();
    send.shutdown().await.unwrap();
    let reply = codec::read_frame(&mut recv).await.unwrap().unwrap();
    let mut body = Vec::new();
    recv.read_to_end(&mut body).await.unwrap();
    task.await.unwrap().unwrap();
    (reply, body)
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn leftovers(streams: &SnapshotStreams) -> usize {
    std::fs::read_dir(streams.files.dir()).map_or(0, |d| d.count())
}

#[tokio::test]
async fn an_upload_is_stored_and_downloads_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let streams = streams(tmp.path(), 1 << 30);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let reply = upload(&streams, &sha(&data), data.len() as u64, &data).await;
    let SnapshotStreamReply::Stored(stored) = reply else { panic!("{reply:?}") };
    assert!(valid_id(&stored.id));
    assert_eq!((stored.sha256.as_str(), stored.size), (sha(&data).as_str(), data.len() as u64));
    assert_eq!(streams.files.list().unwrap()[0].0, stored);

    let (reply, body) = download(&streams, &stored.id).await;
    assert_eq!(reply, SnapshotStreamReply::Sending(stored));
    assert_eq!(body, data);
}

#[tokio::test]
async fn a_checksum_mismatch_is_rejected_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let streams = streams(tmp.path(), 1 << 30);
    let reply = upload(&streams, &sha(b"other"), 5, b"hello").await;
    assert!(
        matches!(&reply, SnapshotStreamReply::Rejected { reason } if reason.contains("sha256")),
        "{reply:?}"
    );
    assert_eq!(leftovers(&streams), 0);
}

#[tokio::test]
async fn short_long_and_oversize_uploads_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let streams = streams(tmp.path(), 1000);
    let reply = upload(&streams, &sha(b"hello"), 10, b"hello").await;
    assert!(
        matches!(&reply, SnapshotStreamReply::Rejected { reason } if reason.contains("incomplete")),
        "{reply:?}"
    );
    let reply = upload(&streams, &sha(b"hello"), 4, b"hello").await;
    assert!(
        matches!(&reply, SnapshotStreamReply::Rejected { reason } if reason.contains("longer")),
        "{reply:?}"
    );
    let big = vec![1u8; 200_000];
    let reply = upload(&streams, &sha(&big), big.len() as u64, &big).await;
    assert!(
        matches!(&reply, SnapshotStreamReply::Rejected { reason } if reason.contains("limit of 1000")),
        "{reply:?}"
    );
    let reply = upload(&streams, "not-a-sha", 5, b"hello").await;
    assert!(matches!(reply, SnapshotStreamReply::Rejected { .. }));
    assert_eq!(leftovers(&streams), 0);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let streams = streams(tmp.path(), 1000);
    for id in ["s-0123456789abcdef", "../../etc/passwd", "s-0123456789abcdef.sha256"] {
        let (reply, body) = download(&streams, id).await;
        assert!(matches!(reply, SnapshotStreamReply::Rejected { .. }), "{id}: {reply:?}");
        assert!(body.is_empty());
    }
}
