//! Snapshot streams: after its hello, an agent opens one more bidirectional stream per
//! snapshot transfer on the same connection. The first frame is a [`SnapshotStreamRequest`].
//! An upload's bytes are written to a part file, hashed on the way, checked against the
//! declared size, sha256 and the store's limit, and only then committed; a download is
//! answered with the snapshot's [`SnapshotRef`] followed by exactly its bytes.

use crate::snapshots::{SnapshotFiles, new_id, valid_id};
use gpuspot_common::codec;
use gpuspot_common::protocol::{SnapshotRef, SnapshotStreamReply, SnapshotStreamRequest};
use gpuspot_common::snapshot::transfer::{at_end, copy_exact};
use gpuspot_common::{HostId, InstanceId};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause in a transfer before it is abandoned.
const IDLE: Duration = Duration::from_secs(60);

/// Where snapshot streams are stored and how large one may be.
#[derive(Clone, Debug)]
pub struct SnapshotStreams {
    pub files: SnapshotFiles,
    pub max_bytes: u64,
}

/// Accepts the snapshot streams of one agent connection until it closes; each runs in its
/// own task. Abort the handle when the session ends.
pub fn spawn_acceptor(
    connection: quinn::Connection,
    streams: SnapshotStreams,
    host_id: HostId,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((send, recv)) = connection.accept_bi().await {
            let (streams, host_id) = (streams.clone(), host_id.clone());
            tokio::spawn(async move {
                if let Err(reason) = streams.serve(send, recv).await {
                    tracing::warn!(%host_id, %reason, "snapshot stream failed");
                }
            });
        }
    })
}

impl SnapshotStreams {
    /// Serves one stream: reads its request and runs the upload or download it asks for.
    pub async fn serve<W, R>(&self, mut send: W, mut recv: R) -> Result<(), String>
    where
        W: AsyncWrite + Unpin,
        R: AsyncRead + Unpin,
    {
        let request = tokio::time::timeout(REQUEST_TIMEOUT, codec::read_frame(&mut recv)).await;
        let reply = match request {
            Ok(Ok(Some(SnapshotStreamRequest::Upload { instance_id, sha256, size }))) => {
                self.upload(&mut recv, &instance_id, &sha256, size).await
            }
            Ok(Ok(Some(SnapshotStreamRequest::Download { snapshot_id }))) => {
                return self.download(&mut send, &snapshot_id).await;
            }
            Ok(Ok(None)) => return Err("stream closed before its request".into()),
            Ok(Err(e)) => rejected(format!("bad request: {e}")),
            Err(_) => return Err("no request on the stream".into()),
        };
        codec::write_frame(&mut send, &reply).await.map_err(|e| e.to_string())?;
        send.shutdown().await.map_err(|e| e.to_string())
    }

    async fn upload<R: AsyncRead + Unpin>(
        &self,
        recv: &mut R,
        instance_id: &InstanceId,
        sha256: &str,
        size: u64,
    ) -> SnapshotStreamReply {
        if size > self.max_bytes {
            return rejected(format!(
                "a snapshot of {size} bytes exceeds the store's limit of {} bytes",
                self.max_bytes
            ));
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return rejected(format!("{sha256:?} is not a sha256"));
        }
        let id = new_id();
        let part = match self.files.part_path(&id) {
            Ok(part) => part,
            Err(e) => return rejected(e.to_string()),
        };
        let result = self.receive(recv, &part, &id, sha256, size).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        match result {
            Ok(snapshot) => {
                tracing::info!(instance = %instance_id, snapshot = %snapshot.id, size, "snapshot stored");
                SnapshotStreamReply::Stored(snapshot)
            }
            Err(reason) => {
                tracing::warn!(instance = %instance_id, %reason, "snapshot upload rejected");
                rejected(reason)
            }
        }
    }

    /// Writes the upload to `part`, verifies it and commits it as snapshot `id`.
    async fn receive<R: AsyncRead + Unpin>(
        &self,
        recv: &mut R,
        part: &Path,
        id: &str,
        sha256: &str,
        size: u64,
    ) -> Result<SnapshotRef, String> {
        let mut file = tokio::fs::File::create(part).await.map_err(|e| e.to_string())?;
        let actual = copy_exact(recv, &mut file, size, IDLE)
            .await
            .map_err(|e| format!("upload incomplete: {e}"))?;
        if !at_end(recv, IDLE).await.map_err(|e| e.to_string())? {
            return Err(format!("the upload is longer than the declared {size} bytes"));
        }
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(format!("the upload's sha256 is {actual}, not the declared {sha256}"));
        }
        file.sync_all().await.map_err(|e| e.to_string())?;
        drop(file);
        let (files, id_owned, sha) = (self.files.clone(), id.to_owned(), actual.clone());
        tokio::task::spawn_blocking(move || files.commit(&id_owned, &sha))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(SnapshotRef { id: id.to_owned(), sha256: actual, size })
    }

    async fn download<W: AsyncWrite + Unpin>(&self, send: &mut W, id: &str) -> Result<(), String> {
        let found = match valid_id(id) {
            true => self.lookup(id).await,
            false => Err(format!("{id:?} is not a snapshot id")),
        };
        let (snapshot, mut file) = match found {
            Ok(found) => found,
            Err(reason) => {
                let reply = rejected(reason);
                codec::write_frame(send, &reply).await.map_err(|e| e.to_string())?;
                return send.shutdown().await.map_err(|e| e.to_string());
            }
        };
        let reply = SnapshotStreamReply::Sending(snapshot.clone());
        codec::write_frame(send, &reply).await.map_err(|e| e.to_string())?;
        copy_exact(&mut file, send, snapshot.size, IDLE).await.map_err(|e| e.to_string())?;
        send.shutdown().await.map_err(|e| e.to_string())
    }

    /// The stored snapshot and its file opened for reading.
    async fn lookup(&self, id: &str) -> Result<(SnapshotRef, tokio::fs::File), String> {
        let (files, id_owned) = (self.files.clone(), id.to_owned());
        let snapshot = tokio::task::spawn_blocking(move || files.get(&id_owned))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("unknown snapshot {id}"))?;
        let path = self.files.path(id).map_err(|e| e.to_string())?;
        let file = tokio::fs::File::open(&path).await.map_err(|e| e.to_string())?;
        Ok((snapshot, file))
    }
}

fn rejected(reason: String) -> SnapshotStreamReply {
    SnapshotStreamReply::Rejected { reason }
}

#[cfg(test)]
#[path = "snapshots_tests.rs"]
mod tests;
