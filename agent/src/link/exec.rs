//! Exec streams, agent side (docs/contracts.md#guests "Getting in"): while a session is open, the
//! coordinator opens one bidirectional stream per command to run inside an instance. The
//! stream starts with an [`ExecRequest`]; the agent runs it through the runtime
//! ([`WorkloadRuntime::exec`]) and pumps frames both ways: [`ExecOutput`] out (`Data…`,
//! then `Exit` or `Error`), [`ExecInput`] in.
//!
//! Bounds: at most [`MAX_PER_INSTANCE`] execs per instance at once, frames of at most
//! [`MAX_FRAME`] bytes, the request's `timeout_ms` (the command is killed and the answer
//! says `timed_out`). The stream ending or failing on the coordinator's side kills the
//! command; a malformed frame closes only its own stream, with a logged reason.

use crate::runtime::{ExecSession, ExecSpec, WorkloadRuntime};
use gpuspot_common::InstanceId;
use gpuspot_common::codec::{self, CodecError};
use gpuspot_common::protocol::{ExecInput, ExecOutput, ExecRequest};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Concurrent execs per instance.
pub const MAX_PER_INSTANCE: usize = 8;
/// Largest frame read on an exec stream (request or input).
pub const MAX_FRAME: usize = 256 * 1024;
/// Largest output chunk per frame.
const OUTPUT_CHUNK: usize = 64 * 1024;
/// The longest a command may be given (interactive sessions).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After the exit, how long output still buffered (or held open by a child left behind) is
/// waited for.
const DRAIN: Duration = Duration::from_millis(500);

/// Stops accepting exec streams when dropped (the session ended).
pub struct ExecAcceptor(tokio::task::JoinHandle<()>);

impl Drop for ExecAcceptor {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts the coordinator's exec streams on `connection`, each served in its own task.
pub fn spawn_acceptor(
    connection: quinn::Connection,
    runtime: Arc<dyn WorkloadRuntime>,
) -> ExecAcceptor {
    let slots = Slots::default();
    ExecAcceptor(tokio::spawn(async move {
        while let Ok((send, recv)) = connection.accept_bi().await {
            let (runtime, slots) = (runtime.clone(), slots.clone());
            tokio::spawn(async move {
                match serve(send, recv, runtime, slots).await {
                    Ok(()) => {}
                    Err(Closed::Gone(reason)) => tracing::info!(%reason, "exec stream closed"),
                    Err(Closed::Bad(reason)) => {
                        tracing::warn!(%reason, "bad exec stream from the coordinator; closed it")
                    }
                }
            });
        }
    }))
}

/// Why a stream ended without its last frame.
#[derive(Debug, PartialEq)]
pub enum Closed {
    /// The coordinator went (finished, reset or stopped reading): the command was killed.
    Gone(String),
    /// It sent something malformed: the stream (and its command) was closed.
    Bad(String),
}

/// Counts the execs running per instance.
#[derive(Clone, Default)]
pub struct Slots(Arc<Mutex<HashMap<InstanceId, usize>>>);

/// One taken slot; given back on drop.
struct Slot {
    slots: Slots,
    id: InstanceId,
}

impl Slots {
    fn take(&self, id: &InstanceId) -> Option<Slot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(id.clone()).or_default();
        if *count >= MAX_PER_INSTANCE {
            return None;
        }
        *count += 1;
        Some(Slot { slots: self.clone(), id: id.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.id);
            }
        }
    }
}

/// Reads one frame of at most [`MAX_FRAME`] bytes; `Ok(None)` at a clean end.
async fn read_small<R: AsyncRead + Unpin, T: DeserializeOwned>(
    recv: &mut R,
) -> Result<Option<T>, CodecError> {
    let mut len = [0u8; 4];
    match recv.read(&mut len[..1]).await? {
        0 => return Ok(None),
        _ => recv.read_exact(&mut len[1..]).await.map_err(|_| CodecError::Truncated)?,
    };
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(CodecError::Oversize(len));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(|_| CodecError::Truncated)?;
    codec::decode_body(&body).map(Some)
}

/// Serves one exec stream from its request to its last frame.
pub async fn serve<W, R>(
    mut send: W,
    mut recv: R,
    runtime: Arc<dyn WorkloadRuntime>,
    slots: Slots,
) -> Result<(), Closed>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin + Send + 'static,
{
    let request = tokio::time::timeout(REQUEST_TIMEOUT, read_small::<_, ExecRequest>(&mut recv));
    let request = match request.await {
        Ok(Ok(Some(request))) => request,
        Ok(Ok(None)) => return Err(Closed::Gone("stream closed before its request".into())),
        Ok(Err(e)) => return Err(Closed::Bad(format!("bad exec request: {e}"))),
        Err(_) => return Err(Closed::Bad("no exec request on the stream".into())),
    };
    let id = request.instance_id.clone();
    let outcome = start(&request, runtime, &slots).await;
    let end = match outcome {
        Ok((session, _slot)) => {
            let deadline = Instant::now() + timeout_of(&request);
            pump(&mut send, spawn_input(recv), session, deadline).await?
        }
        Err(reason) => ExecOutput::Error { reason },
    };
    // The program only: arguments may carry secrets.
    let program = request.command.first().map(String::as_str).unwrap_or_default();
    tracing::info!(instance = %id, program, end = ?end, "exec ended");
    write(&mut send, &end).await?;
    send.shutdown().await.map_err(|e| Closed::Gone(e.to_string()))
}

fn timeout_of(request: &ExecRequest) -> Duration {
    Duration::from_millis(request.timeout_ms).min(MAX_TIMEOUT)
}

/// Checks the request and starts the command; why not, as the answer's reason.
async fn start(
    request: &ExecRequest,
    runtime: Arc<dyn WorkloadRuntime>,
    slots: &Slots,
) -> Result<(ExecSession, Slot), String> {
    let id = &request.instance_id;
    if request.command.first().is_none_or(|program| program.is_empty()) {
        return Err("the command is empty".into());
    }
    if request.timeout_ms == 0 {
        return Err("the timeout must be at least 1 ms".into());
    }
    let slot = slots.take(id).ok_or_else(|| {
        format!("instance {id} already runs {MAX_PER_INSTANCE} commands; wait for one to end")
    })?;
    let spec = ExecSpec {
        command: request.command.clone(),
        tty: request.tty,
        size: request.size,
        stdin: request.stdin,
    };
    let id = id.clone();
    // The runtime may spawn processes or talk to the container engine: not on a worker.
    let started = tokio::task::spawn_blocking(move || runtime.exec(&id, spec)).await;
    match started {
        Ok(Ok(session)) => Ok((session, slot)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("exec failed: {e}")),
    }
}

/// The coordinator's input frames, read by a task of their own (a half-read frame must
/// never be dropped by a `select!`). The channel closes after the stream's end or a bad
/// frame (which is its last item).
fn spawn_input<R: AsyncRead + Unpin + Send + 'static>(
    mut recv: R,
) -> mpsc::Receiver<Result<ExecInput, Closed>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let item = match read_small::<_, ExecInput>(&mut recv).await {
                Ok(Some(input)) => Ok(input),
                Ok(None) => return,
                Err(CodecError::Io(e)) => Err(Closed::Gone(format!("exec stream: {e}"))),
                Err(e) => Err(Closed::Bad(format!("malformed exec input: {e}"))),
            };
            let bad = item.is_err();
            if tx.send(item).await.is_err() || bad {
                return;
            }
        }
    });
    rx
}

/// Relays until the command ends, times out or the coordinator goes; the last frame to
/// send. Dropping `session` (on every early return) kills the command.
async fn pump<W: AsyncWrite + Unpin>(
    send: &mut W,
    mut input: mpsc::Receiver<Result<ExecInput, Closed>>,
    mut session: ExecSession,
    deadline: Instant,
) -> Result<ExecOutput, Closed> {
    let mut output_open = true;
    let timed_out = ExecOutput::Exit { code: None, timed_out: true };
    loop {
        tokio::select! {
            chunk = session.output.recv(), if output_open => match chunk {
                Some(data) => write_data(send, &data).await?,
                None => output_open = false,
            },
            item = input.recv() => match item {
                Some(Ok(frame)) => {
                    let sent = tokio::time::timeout_at(deadline, session.input.send(frame)).await;
                    if sent.is_err() {
                        return Ok(timed_out);
                    }
                }
                Some(Err(reason)) => return Err(reason),
                // The coordinator finished or dropped its side: nobody is listening.
                None => return Err(Closed::Gone("the coordinator ended the exec stream".into())),
            },
            exit = &mut session.exit => {
                drain(send, &mut session, output_open, deadline).await?;
                return Ok(match exit {
                    Ok(Ok(code)) => ExecOutput::Exit { code, timed_out: false },
                    Ok(Err(reason)) => ExecOutput::Error { reason },
                    Err(_) => ExecOutput::Error { reason: "the command was lost".into() },
                });
            },
            _ = tokio::time::sleep_until(deadline) => return Ok(timed_out),
        }
    }
}

/// Sends what output is left after the exit, for at most [`DRAIN`].
async fn drain<W: AsyncWrite + Unpin>(
    send: &mut W,
    session: &mut ExecSession,
    open: bool,
    deadline: Instant,
) -> Result<(), Closed> {
    let until = (Instant::now() + DRAIN).min(deadline);
    if !open {
        return Ok(());
    }
    while let Ok(Some(data)) = tokio::time::timeout_at(until, session.output.recv()).await {
        write_data(send, &data).await?;
    }
    Ok(())
}

async fn write_data<W: AsyncWrite + Unpin>(send: &mut W, data: &[u8]) -> Result<(), Closed> {
    for chunk in data.chunks(OUTPUT_CHUNK) {
        write(send, &ExecOutput::Data(chunk.to_vec())).await?;
    }
    Ok(())
}

async fn write<W: AsyncWrite + Unpin>(send: &mut W, frame: &ExecOutput) -> Result<(), Closed> {
    let written = codec::write_frame(send, frame).await;
    written.map_err(|e| Closed::Gone(format!("cannot write to the coordinator: {e}")))
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
