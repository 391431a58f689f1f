//! Commands run inside a process guest (docs/contracts.md#guests "Getting in"): as its uid/gid, in
//! its namespaces (same `/proc`, `/tmp`, IPC) and cgroups when it has them, in its data dir, with
//! its environment; stdout and stderr merged, through a pipe or, for interactive sessions, a
//! pseudo-terminal (the command's controlling terminal, resized on request). Dropping the session's
//! `cancel` kills the command's process group. The output closes once the command has exited and
//! what it wrote is read; then the exit code is sent.

use super::sandbox::Joiner;
use super::spawn::{Identity, enter_guest, enter_joined};
use crate::runtime::record::ProcRef;
use crate::runtime::uids::GuestIds;
use crate::runtime::{ExecSession, ExecSpec, RuntimeError};
use gpuspot_common::protocol::ExecInput;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::io::unix::AsyncFd;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

const CHUNK: usize = 16 * 1024;

/// Where the command's input goes.
enum Input {
    None,
    Pipe(ChildStdin),
    Tty(Arc<AsyncFd<OwnedFd>>),
}

/// What a command run inside the instance needs.
#[derive(Debug)]
pub(super) struct ExecTarget {
    pub(super) ids: Option<GuestIds>,
    pub(super) cgroup_dirs: Vec<PathBuf>,
    /// The init of the guest's namespaces, which commands join; `None`: not namespaced.
    pub(super) init: Option<ProcRef>,
    pub(super) data_dir: PathBuf,
    pub(super) env: Vec<(String, String)>,
}

pub(super) fn start(target: &ExecTarget, spec: ExecSpec) -> Result<ExecSession, RuntimeError> {
    if spec.command.is_empty() {
        return Err(RuntimeError::Exec("the command is empty".into()));
    }
    // Opened per command: the workload's own descriptors belong to its supervisor.
    let cgroups = crate::runtime::cgroup::open_procs(&target.cgroup_dirs)
        .map_err(|e| RuntimeError::Exec(format!("cannot enter the guest's cgroups: {e}")))?;
    let cgroup_procs = crate::runtime::cgroup::procs_fds(cgroups.iter().map(File::as_raw_fd));
    let identity = Identity { ids: target.ids, cgroup_procs };
    let (joiner, guest_pid) = match target.init {
        Some(init) => {
            let cannot = |e| RuntimeError::Exec(format!("cannot enter the guest: {e}"));
            let (joiner, pid) = Joiner::open(init, &target.data_dir).map_err(cannot)?;
            (Some(joiner), Some(pid))
        }
        None => (None, None),
    };
    let mut command = Command::new(&spec.command[0]);
    command
        .args(&spec.command[1..])
        .current_dir(&target.data_dir)
        .env_clear()
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true);
    let spawn_error =
        |e: std::io::Error| RuntimeError::Spawn { program: spec.command[0].clone(), source: e };
    let (child, output, input) = if spec.tty {
        spawn_tty(command, identity, joiner, target, spec.size).map_err(spawn_error)?
    } else {
        spawn_piped(command, identity, joiner, spec.stdin).map_err(spawn_error)?
    };
    drop(cgroups);
    // In a guest's namespaces the command leads its own group, below a relaying process.
    let pgid = match guest_pid {
        Some(pid) => pid.read().unwrap_or(0),
        None => child.id().and_then(|pid| i32::try_from(pid).ok()).unwrap_or(0),
    };
    let (output_tx, output_rx) = mpsc::channel(16);
    let (input_tx, input_rx) = mpsc::channel(16);
    let (exit_tx, exit_rx) = oneshot::channel();
    let (cancel_tx, cancel_rx) = oneshot::channel();
    tokio::spawn(forward_input(input_rx, input, spec.stdin));
    tokio::spawn(run(child, pgid, output, output_tx, exit_tx, cancel_rx));
    Ok(ExecSession { output: output_rx, input: input_tx, exit: exit_rx, cancel: cancel_tx })
}

/// Between fork and exec: into the guest, through its namespaces when it has them.
fn enter(identity: Identity, tty: Option<RawFd>, joiner: Option<&Joiner>) -> std::io::Result<()> {
    match joiner {
        Some(joiner) => enter_joined(identity, tty, joiner),
        None => enter_guest(identity, tty),
    }
}

fn spawn_piped(
    mut command: Command,
    identity: Identity,
    joiner: Option<Joiner>,
    stdin: bool,
) -> std::io::Result<(Child, Arc<AsyncFd<OwnedFd>>, Input)> {
    let (reader, writer) = std::io::pipe()?;
    command
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(writer.try_clone()?)
        .stderr(writer);
    // SAFETY: enter makes async-signal-safe calls only.
    unsafe {
        command.pre_exec(move || enter(identity, None, joiner.as_ref()));
    }
    let mut child = command.spawn()?;
    drop(command); // our copies of the pipe's write end: EOF once the command's are gone
    let input = child.stdin.take().map_or(Input::None, Input::Pipe);
    Ok((child, async_fd(OwnedFd::from(reader))?, input))
}

fn spawn_tty(
    mut command: Command,
    identity: Identity,
    joiner: Option<Joiner>,
    target: &ExecTarget,
    size: Option<(u16, u16)>,
) -> std::io::Result<(Child, Arc<AsyncFd<OwnedFd>>, Input)> {
    let (master, slave) = open_pty(size)?;
    if let Some(ids) = target.ids {
        // The guest's terminal is its own, as login(1) would make it.
        // SAFETY: fchown on a descriptor we own.
        unsafe { libc::fchown(slave.as_raw_fd(), ids.uid, ids.gid) };
    }
    let slave = File::from(slave);
    command.stdin(slave.try_clone()?).stdout(slave.try_clone()?).stderr(slave);
    // SAFETY: enter makes async-signal-safe calls only; fd 0 is the terminal by then.
    unsafe {
        command.pre_exec(move || enter(identity, Some(0), joiner.as_ref()));
    }
    let child = command.spawn()?;
    drop(command);
    let master = async_fd(master)?;
    Ok((child, master.clone(), Input::Tty(master)))
}

fn open_pty(size: Option<(u16, u16)>) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (-1, -1);
    let (cols, rows) = size.unwrap_or((80, 24));
    let winsize = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: valid out-pointers and a valid winsize; no name buffer, default termios.
    let opened = unsafe {
        libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &winsize)
    };
    if opened == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openpty returned two fresh descriptors owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((master, slave))
}

fn async_fd(fd: OwnedFd) -> std::io::Result<Arc<AsyncFd<OwnedFd>>> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    // SAFETY: the OwnedFd keeps the descriptor open and unchanged while registered.
    Ok(Arc::new(unsafe { AsyncFd::register(fd) }?))
}

/// Follows the command: output out, a kill on cancel, then the exit code.
async fn run(
    mut child: Child,
    pgid: i32,
    output: Arc<AsyncFd<OwnedFd>>,
    output_tx: mpsc::Sender<Vec<u8>>,
    exit_tx: oneshot::Sender<Result<Option<i32>, String>>,
    mut cancel: oneshot::Receiver<()>,
) {
    let (mut open, mut cancelled) = (true, false);
    let status = loop {
        tokio::select! {
            _ = &mut cancel, if !cancelled => {
                cancelled = true;
                crate::runtime::group::signal_group(pgid, libc::SIGKILL);
            }
            status = child.wait() => break status,
            chunk = read_some(&output), if open => match chunk {
                Some(data) => drop(output_tx.send(data).await),
                None => open = false,
            },
        }
    };
    // What the command wrote before it exited; a background child holding the output open
    // does not keep the session waiting.
    while open && let Some(data) = read_now(output.get_ref().as_raw_fd()) {
        let _ = output_tx.send(data).await;
    }
    drop(output_tx);
    let _ = exit_tx.send(status.map(|s| s.code()).map_err(|e| e.to_string()));
}

/// The next output chunk; `None` at the end (EOF, or EIO once a terminal's last user left).
async fn read_some(fd: &AsyncFd<OwnedFd>) -> Option<Vec<u8>> {
    loop {
        let mut guard = fd.readable().await.ok()?;
        match guard.try_io(|inner| read_fd(inner.as_raw_fd())) {
            Ok(Ok(Some(data))) => return Some(data),
            Ok(Ok(None)) => return None,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(_)) => return None,
            Err(_would_block) => continue,
        }
    }
}

/// A chunk that is readable now, without waiting.
fn read_now(fd: RawFd) -> Option<Vec<u8>> {
    read_fd(fd).ok().flatten()
}

fn read_fd(fd: RawFd) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; CHUNK];
    // SAFETY: buf is valid for CHUNK bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), CHUNK) };
    match n {
        0 => Ok(None),
        n if n > 0 => {
            buf.truncate(n as usize);
            Ok(Some(buf))
        }
        _ => match std::io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EIO) => Ok(None),
            e => Err(e),
        },
    }
}

/// Input frames to the command; stdin closes on `Eof` or when the sender is dropped.
async fn forward_input(mut rx: mpsc::Receiver<ExecInput>, mut input: Input, stdin: bool) {
    while let Some(frame) = rx.recv().await {
        match (frame, &mut input) {
            (ExecInput::Resize { cols, rows }, Input::Tty(master)) => resize(master, cols, rows),
            (ExecInput::Stdin(data), Input::Pipe(pipe)) => {
                // The command stopped reading: later input goes nowhere.
                let stopped_reading = pipe.write_all(&data).await.is_err();
                if stopped_reading {
                    input = Input::None;
                }
            }
            (ExecInput::Stdin(data), Input::Tty(master)) if stdin => {
                write_all(master, &data).await;
            }
            // End of input on a terminal is its EOF character, as a user's Ctrl-D.
            (ExecInput::Eof, Input::Tty(master)) if stdin => write_all(master, b"\x04").await,
            (ExecInput::Eof, _) => input = Input::None,
            _ => {}
        }
    }
}

fn resize(master: &AsyncFd<OwnedFd>, cols: u16, rows: u16) {
    let winsize = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a valid winsize.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) {
    while !data.is_empty() {
        let Ok(mut guard) = fd.writable().await else { return };
        let written = guard.try_io(|inner| {
            // SAFETY: data is valid for its length.
            let n = unsafe { libc::write(inner.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
        });
        match written {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(_)) => return,
            Err(_would_block) => {}
        }
    }
}
