//! Exec streams, coordinator side (docs/contracts.md#guests "Getting in"): the connection of every
//! agent in session, reachable by host id ([`ExecLinks`]), and one bidirectional stream per command
//! run inside an instance ([`open`]). The stream starts with an [`ExecRequest`] frame; the agent
//! answers with [`ExecOutput`] frames ending in `Exit` or `Error`, while [`ExecInput`] frames go
//! the other way. Frames are read and written by tasks of their own (a half-read frame must never
//! be abandoned by a `select!`), so callers see two channels.
//!
//! Dropping an [`ExecChannel`] ends the command: the send side is finished and the receive
//! side stopped, which the agent takes as "the caller is gone" and kills it.

use gpuspot_common::HostId;
use gpuspot_common::codec::{self, CodecError};
use gpuspot_common::protocol::{ExecInput, ExecOutput, ExecRequest};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Largest stdin chunk per frame; bigger writes are split (the agent refuses huge frames).
pub const STDIN_CHUNK: usize = 64 * 1024;

/// The connection of each host whose agent is in session now.
#[derive(Default)]
pub struct ExecLinks {
    links: Mutex<HashMap<HostId, Link>>,
}

struct Link {
    link_id: u64,
    connection: quinn::Connection,
}

impl ExecLinks {
    /// A session started; it replaces any older one of the same host.
    pub fn register(&self, host_id: HostId, link_id: u64, connection: quinn::Connection) {
        self.lock().insert(host_id, Link { link_id, connection });
    }

    /// A session ended; a newer session of the same host is left alone.
    pub fn unregister(&self, host_id: &HostId, link_id: u64) {
        let mut links = self.lock();
        if links.get(host_id).is_some_and(|link| link.link_id == link_id) {
            links.remove(host_id);
        }
    }

    /// The live connection to `host_id`, if its agent is in session.
    pub fn connection(&self, host_id: &HostId) -> Option<quinn::Connection> {
        let links = self.lock();
        let link = links.get(host_id)?;
        link.connection.close_reason().is_none().then(|| link.connection.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HostId, Link>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.links.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One command running inside an instance, as two channels.
pub struct ExecChannel {
    /// `Data…`, then exactly one `Exit` or `Error` (a broken stream arrives as `Error`).
    pub output: mpsc::Receiver<ExecOutput>,
    pub input: mpsc::Sender<ExecInput>,
}

impl ExecChannel {
    /// Sends stdin bytes in frames of at most [`STDIN_CHUNK`]. False once the stream is gone.
    pub async fn stdin(&self, bytes: &[u8]) -> bool {
        for chunk in bytes.chunks(STDIN_CHUNK) {
            if self.input.send(ExecInput::Stdin(chunk.to_vec())).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Opens an exec stream on `connection` and sends `request`.
pub async fn open(
    connection: &quinn::Connection,
    request: &ExecRequest,
) -> Result<ExecChannel, String> {
    let (mut send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    codec::write_frame(&mut send, request).await.map_err(|e| e.to_string())?;
    let (output_tx, output) = mpsc::channel(64);
    let (input, input_rx) = mpsc::channel(32);
    tokio::spawn(read_output(recv, output_tx));
    tokio::spawn(write_input(send, input_rx));
    Ok(ExecChannel { output, input })
}

async fn read_output(mut recv: quinn::RecvStream, output: mpsc::Sender<ExecOutput>) {
    loop {
        let (item, last) = match codec::read_frame::<_, ExecOutput>(&mut recv).await {
            Ok(Some(frame)) => {
                let last = !matches!(frame, ExecOutput::Data(_));
                (frame, last)
            }
            Ok(None) => (lost("the host ended the exec stream without an exit status"), true),
            Err(CodecError::Io(e)) => (lost(&format!("the link to the host failed: {e}")), true),
            Err(e) => {
                tracing::warn!(error = %e, "malformed exec frame from an agent; dropping the stream");
                (lost(&format!("malformed answer from the host: {e}")), true)
            }
        };
        // A caller that stopped listening drops `recv` here: the agent sees the stream stop.
        if output.send(item).await.is_err() || last {
            return;
        }
    }
}

fn lost(reason: &str) -> ExecOutput {
    ExecOutput::Error { reason: reason.to_owned() }
}

async fn write_input(mut send: quinn::SendStream, mut input: mpsc::Receiver<ExecInput>) {
    while let Some(frame) = input.recv().await {
        if codec::write_frame(&mut send, &frame).await.is_err() {
            return;
        }
    }
    // The caller is done: finishing the stream tells the agent to end the command.
    let _ = send.shutdown().await;
}
