//! Commands run inside a running container (docs/contracts.md#guests "Getting in"): the engine's
//! exec, attached, with a TTY and its size when asked, stdin when asked. Cancelling (or dropping
//! the session) kills the command; its exit code comes from the engine.

use super::images::engine_message;
use super::{Inner, spec};
use crate::runtime::{ExecSession, ExecSpec, RuntimeError};
use bollard::Docker;
use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures::StreamExt;
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::ExecInput;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Output chunks buffered towards a slow reader before the command is held back.
const OUTPUT_BUFFER: usize = 64;
/// How long the engine may take to record an exit after the output closed.
const EXIT_RECORDED: Duration = Duration::from_secs(5);

type Exit = Result<Option<i32>, String>;

/// Starts `spec` in `id`'s container; the session's ends are served by a task.
pub(super) fn start(
    inner: &Inner,
    id: &InstanceId,
    spec: ExecSpec,
) -> Result<ExecSession, RuntimeError> {
    if spec.command.is_empty() {
        return Err(RuntimeError::EmptyCommand(id.clone()));
    }
    if !inner.workloads().contains_key(id) {
        return Err(RuntimeError::NotRunning(id.clone()));
    }
    let (output_tx, output) = mpsc::channel(OUTPUT_BUFFER);
    let (input, input_rx) = mpsc::channel(OUTPUT_BUFFER);
    let (exit_tx, exit) = oneshot::channel();
    let (cancel, cancel_rx) = oneshot::channel();
    let ends = Ends { output: output_tx, input: input_rx, cancel: cancel_rx };
    let docker = inner.engine.docker.clone();
    let name = spec::container_name(id);
    inner.tokio.spawn(async move {
        let _ = exit_tx.send(session(&docker, &name, spec, ends).await);
    });
    Ok(ExecSession { output, input, exit, cancel })
}

/// The task's side of an [`ExecSession`].
struct Ends {
    output: mpsc::Sender<Vec<u8>>,
    input: mpsc::Receiver<ExecInput>,
    cancel: oneshot::Receiver<()>,
}

async fn session(docker: &Docker, name: &str, spec: ExecSpec, mut ends: Ends) -> Exit {
    let config = ExecConfig {
        cmd: Some(spec.command.clone()),
        attach_stdin: Some(spec.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(spec.tty),
        // [rows, columns] from the start where the engine takes it (API 1.42); the resize
        // after the start sets it everywhere else.
        console_size: spec
            .size
            .filter(|_| spec.tty)
            .map(|(cols, rows)| vec![rows.into(), cols.into()]),
        ..Default::default()
    };
    let exec = docker.create_exec(name, config).await.map_err(|e| failed(name, &e))?.id;
    let options = StartExecOptions { detach: false, tty: spec.tty, output_capacity: None };
    let started = docker.start_exec(&exec, Some(options)).await.map_err(|e| failed(name, &e))?;
    let StartExecResults::Attached { mut output, mut input } = started else {
        return Err(format!("the engine detached the command in {name}"));
    };
    if let (true, Some((cols, rows))) = (spec.tty, spec.size) {
        resize(docker, &exec, cols, rows).await;
    }
    let mut stdin_open = spec.stdin;
    if !stdin_open {
        let _ = input.shutdown().await;
    }
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(chunk)) => {
                    if ends.output.send(chunk.into_bytes().to_vec()).await.is_err() {
                        return kill(docker, &exec).await; // nobody reads: the session is gone
                    }
                }
                Some(Err(error)) => return Err(failed(name, &error)),
                None => break,
            },
            frame = ends.input.recv(), if stdin_open => {
                stdin_open = feed(docker, &exec, &mut input, frame).await;
            }
            _ = &mut ends.cancel => return kill(docker, &exec).await,
        }
    }
    exit_code(docker, &exec).await
}

/// One frame from the session; whether stdin stays open.
async fn feed(
    docker: &Docker,
    exec: &str,
    input: &mut Pin<Box<dyn AsyncWrite + Send>>,
    frame: Option<ExecInput>,
) -> bool {
    match frame {
        Some(ExecInput::Stdin(data)) => input.write_all(&data).await.is_ok(),
        Some(ExecInput::Resize { cols, rows }) => {
            resize(docker, exec, cols, rows).await;
            true
        }
        Some(ExecInput::Eof) | None => {
            let _ = input.shutdown().await;
            false
        }
    }
}

async fn resize(docker: &Docker, exec: &str, cols: u16, rows: u16) {
    let options = ResizeExecOptions { width: cols, height: rows };
    if let Err(error) = docker.resize_exec(exec, options).await {
        tracing::debug!(exec, error = %engine_message(&error), "cannot resize the terminal");
    }
}

/// The exit code, once the engine has recorded it.
async fn exit_code(docker: &Docker, exec: &str) -> Exit {
    let deadline = tokio::time::Instant::now() + EXIT_RECORDED;
    loop {
        let info = docker.inspect_exec(exec).await.map_err(|e| engine_message(&e))?;
        if info.running != Some(true) {
            return Ok(info.exit_code.and_then(|c| i32::try_from(c).ok()));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("the command's output ended but the engine still shows it running".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGKILL to the command's process (the engine has no call for it); ended by a signal.
async fn kill(docker: &Docker, exec: &str) -> Exit {
    let pid = docker.inspect_exec(exec).await.ok().and_then(|i| i.pid);
    if let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()).filter(|p| *p > 0) {
        // SAFETY: kill takes no pointers; a pid that is gone only yields ESRCH.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    Ok(None)
}

fn failed(name: &str, error: &bollard::errors::Error) -> String {
    format!("cannot run the command in {name}: {}", engine_message(error))
}
