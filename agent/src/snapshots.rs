//! Snapshot transfers with the coordinator's store (docs/contracts.md#snapshots): each upload or
//! download opens its own bidirectional stream on the session's connection, sends a
//! [`SnapshotStreamRequest`] frame and then the raw bytes (or reads the reply and then the bytes).
//! Every step has a timeout. [`tasks`] runs restores and saves off the session loop.

pub mod tasks;
#[cfg(test)]
mod tests;

pub use tasks::{RestoreJob, SaveJob, SnapshotTasks, TaskOutcome};

use gpuspot_common::InstanceId;
use gpuspot_common::codec;
use gpuspot_common::protocol::{SnapshotRef, SnapshotStreamReply, SnapshotStreamRequest};
use gpuspot_common::snapshot::transfer::copy_exact;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the coordinator may take to answer once it has all it needs.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest pause while bytes flow.
const IDLE: Duration = Duration::from_secs(60);
/// After a failed upload write: how long to wait for the coordinator's reason.
const REASON_TIMEOUT: Duration = Duration::from_secs(5);

/// Uploads a packed snapshot; returns the coordinator's reference to it once stored.
pub async fn upload(
    connection: &quinn::Connection,
    instance_id: &InstanceId,
    packed_file: &Path,
    sha256: &str,
    size: u64,
) -> Result<SnapshotRef, String> {
    let file = tokio::fs::File::open(packed_file)
        .await
        .map_err(|e| format!("cannot open {}: {e}", packed_file.display()))?;
    let (send, recv) = open(connection).await?;
    upload_over(send, recv, instance_id, file, sha256, size).await
}

/// Downloads snapshot `snapshot` into `dest_file`; its size and sha256 must match.
pub async fn download(
    connection: &quinn::Connection,
    snapshot: &SnapshotRef,
    dest_file: &Path,
) -> Result<(), String> {
    let (send, recv) = open(connection).await?;
    download_over(send, recv, snapshot, dest_file).await
}

async fn open(
    connection: &quinn::Connection,
) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
    match tokio::time::timeout(OPEN_TIMEOUT, connection.open_bi()).await {
        Ok(Ok(streams)) => Ok(streams),
        Ok(Err(e)) => Err(format!("cannot open a snapshot stream: {e}")),
        Err(_) => Err("timed out opening a snapshot stream".into()),
    }
}

/// [`upload`] over any pair of streams.
pub async fn upload_over<W, R, F>(
    mut send: W,
    mut recv: R,
    instance_id: &InstanceId,
    mut file: F,
    sha256: &str,
    size: u64,
) -> Result<SnapshotRef, String>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
    F: AsyncRead + Unpin,
{
    let request = SnapshotStreamRequest::Upload {
        instance_id: instance_id.clone(),
        sha256: sha256.to_owned(),
        size,
    };
    let sent = async {
        codec::write_frame(&mut send, &request).await.map_err(|e| e.to_string())?;
        copy_exact(&mut file, &mut send, size, IDLE).await.map_err(|e| e.to_string())?;
        send.shutdown().await.map_err(|e| e.to_string())
    }
    .await;
    let wait = if sent.is_ok() { REPLY_TIMEOUT } else { REASON_TIMEOUT };
    let reply = read_reply(&mut recv, wait).await;
    match (sent, reply) {
        (_, Ok(SnapshotStreamReply::Rejected { reason })) => {
            Err(format!("the coordinator refused the snapshot: {reason}"))
        }
        (Err(e), _) => Err(format!("snapshot upload failed: {e}")),
        (Ok(()), Ok(SnapshotStreamReply::Stored(stored))) => {
            if stored.size != size || !stored.sha256.eq_ignore_ascii_case(sha256) {
                return Err(format!("the coordinator stored something else: {stored:?}"));
            }
            Ok(stored)
        }
        (Ok(()), Ok(other)) => Err(format!("unexpected answer to an upload: {other:?}")),
        (Ok(()), Err(e)) => Err(e),
    }
}

/// [`download`] over any pair of streams.
pub async fn download_over<W, R>(
    mut send: W,
    mut recv: R,
    snapshot: &SnapshotRef,
    dest_file: &Path,
) -> Result<(), String>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    let request = SnapshotStreamRequest::Download { snapshot_id: snapshot.id.clone() };
    codec::write_frame(&mut send, &request).await.map_err(|e| e.to_string())?;
    send.shutdown().await.map_err(|e| e.to_string())?;
    let offered = match read_reply(&mut recv, REPLY_TIMEOUT).await? {
        SnapshotStreamReply::Sending(offered) => offered,
        SnapshotStreamReply::Rejected { reason } => {
            return Err(format!("the coordinator cannot send it: {reason}"));
        }
        other => return Err(format!("unexpected answer to a download: {other:?}")),
    };
    if offered.size != snapshot.size || !offered.sha256.eq_ignore_ascii_case(&snapshot.sha256) {
        return Err(format!("the coordinator holds {offered:?}, not {snapshot:?}"));
    }
    let mut file = tokio::fs::File::create(dest_file)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dest_file.display()))?;
    let sha256 = copy_exact(&mut recv, &mut file, snapshot.size, IDLE)
        .await
        .map_err(|e| format!("snapshot download failed: {e}"))?;
    if !sha256.eq_ignore_ascii_case(&snapshot.sha256) {
        return Err(format!("downloaded sha256 {sha256} does not match {}", snapshot.sha256));
    }
    file.sync_all().await.map_err(|e| format!("{}: {e}", dest_file.display()))
}

async fn read_reply<R: AsyncRead + Unpin>(
    recv: &mut R,
    wait: Duration,
) -> Result<SnapshotStreamReply, String> {
    match tokio::time::timeout(wait, codec::read_frame(recv)).await {
        Ok(Ok(Some(reply))) => Ok(reply),
        Ok(Ok(None)) => Err("the coordinator closed the snapshot stream without answering".into()),
        Ok(Err(e)) => Err(format!("bad answer on the snapshot stream: {e}")),
        Err(_) => Err(format!("no answer on the snapshot stream within {wait:?}")),
    }
}
