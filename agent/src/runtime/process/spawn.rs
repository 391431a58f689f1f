//! Forking a process guest. The agent's child is a *watcher*: it leaves the agent's
//! session, forks the workload, closes every descriptor but the instance's `exit-status`
//! file, waits for the workload and writes its wait status there with write(2). It stays
//! root, so the guest cannot signal it, and it does not die with the agent, so a restarted
//! agent learns a real exit code even for a workload that ended while it was down (it
//! watches the watcher's pid through a pidfd, then reads the file). The workload, before
//! exec: its own session and process group, its cgroup, no supplementary groups, its
//! gid and uid, no new privileges, umask 022.
//!
//! Neither the watcher nor the init keeps the agent's memory: each execs the agent binary
//! afresh in a helper mode (see [`super::helper`]) that does only its waiting, so an idle guest
//! costs a few hundred KiB beside itself, not a copy of the agent's touched pages.
//!
//! Everything between fork and exec makes async-signal-safe calls only (the agent is
//! multi-threaded). std's spawn sees the exec succeed once both the workload's exec and
//! the watcher's close have shut its error pipe; a failing exec is still reported.
//!
//! An isolated guest gets its own namespaces (see [`super::sandbox`]): the watcher's child
//! is then the namespace's init, which forks the workload; the pid the agent signals is
//! the init's (it forwards), and killing it ends everything in the namespace.

use super::forked::{close_all_but, write_number};
use super::sandbox::{Joiner, Sandbox};
use crate::runtime::cgroup::ProcsFds;
use crate::runtime::uids::GuestIds;
use crate::runtime::{RuntimeError, WorkloadSpec};
use std::fs::File;
use std::os::fd::RawFd;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Agent variables a guest inherits: enough to find binaries, speak its locale, load CUDA.
const PASSED_THROUGH: [&str; 3] = ["PATH", "LANG", "LD_LIBRARY_PATH"];

/// Who the guest is and what it may join, for the code between fork and exec.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    pub ids: Option<GuestIds>,
    /// The instance cgroups' `cgroup.procs`, held open by the agent.
    pub cgroup_procs: ProcsFds,
}

/// Spawns the watcher and, under it, the workload (in its own namespaces, under their
/// init, with a `sandbox`). `status` receives the pid to signal (the workload's, or its
/// init's) at once (read it with [`crate::runtime::record::read_status`]) and the workload's wait
/// status at the end.
pub fn spawn_watched(
    spec: &WorkloadSpec,
    env: &[(String, String)],
    identity: Identity,
    sandbox: Option<Sandbox>,
    output: &File,
    status: &File,
) -> Result<Child, RuntimeError> {
    let spawn_error = |source| RuntimeError::Spawn { program: spec.command[0].clone(), source };
    let stdout = output.try_clone().map_err(spawn_error)?;
    let stderr = output.try_clone().map_err(spawn_error)?;
    let mut command = Command::new(&spec.command[0]);
    command
        .args(&spec.command[1..])
        .current_dir(&spec.data_dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(false);
    let status_fd = std::os::fd::AsRawFd::as_raw_fd(status);
    // SAFETY: the closure only makes async-signal-safe calls (see the module docs).
    unsafe {
        command.pre_exec(move || fork_watched(identity, sandbox.as_ref(), status_fd));
    }
    command.spawn().map_err(spawn_error)
}

/// In the agent's child: returns only in the workload (which std then execs).
fn fork_watched(
    identity: Identity,
    sandbox: Option<&Sandbox>,
    status_fd: RawFd,
) -> std::io::Result<()> {
    // SAFETY: async-signal-safe calls only; the watcher never returns from `watch`.
    unsafe {
        if libc::setsid() == -1 {
            return Err(std::io::Error::last_os_error());
        }
        // The next child is pid 1 of a new PID namespace.
        if sandbox.is_some() && libc::unshare(libc::CLONE_NEWPID) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        match libc::fork() {
            -1 => Err(std::io::Error::last_os_error()),
            0 => match sandbox {
                None => enter_guest(identity, None),
                Some(sandbox) => start_init(sandbox, identity, status_fd),
            },
            child => watch(child, status_fd, sandbox.is_some()),
        }
    }
}

/// In the guest's pid 1: its namespaces, then the workload under [`sandbox::init`].
fn start_init(sandbox: &Sandbox, identity: Identity, status_fd: RawFd) -> std::io::Result<()> {
    // SAFETY: async-signal-safe calls only; init never returns.
    unsafe {
        // Its own group, so that the agent's signals to it reach it alone.
        if libc::setsid() == -1 {
            return Err(std::io::Error::last_os_error());
        }
        sandbox.enter()?;
        match libc::fork() {
            -1 => Err(std::io::Error::last_os_error()),
            0 => enter_guest(identity, None),
            workload => super::sandbox::init(workload, status_fd, sandbox.net_exit_fd()),
        }
    }
}

/// The watcher: records the pid to signal and, once it has ended, its wait status. An
/// init that exits 0 has written the workload's status itself. It then becomes the agent
/// binary afresh (see [`super::helper`]), so that it holds none of the agent's memory.
unsafe fn watch(child: libc::pid_t, status_fd: RawFd, init: bool) -> ! {
    // SAFETY: async-signal-safe calls on a descriptor the agent opened for us.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"gpuspot-watch".as_ptr());
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
            libc::signal(signal, libc::SIG_IGN);
        }
        write_number(status_fd, i64::from(child));
        close_all_but(&[status_fd]);
        super::forked::reexec(
            super::forked::WATCH_MODE,
            &[i64::from(child), i64::from(status_fd), i64::from(init)],
        );
        wait_and_record(child, status_fd, init)
    }
}

/// The watcher's wait, in the forked watcher or in the agent binary re-exec'd as one.
pub(super) unsafe fn wait_and_record(child: libc::pid_t, status_fd: RawFd, init: bool) -> ! {
    // SAFETY: async-signal-safe calls on a descriptor we hold.
    unsafe {
        let mut status = 0;
        loop {
            let waited = libc::waitpid(child, &mut status, 0);
            if waited == child {
                let written = init && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                if !written {
                    write_number(status_fd, i64::from(status));
                }
                break;
            }
            if waited == -1 && *libc::__errno_location() != libc::EINTR {
                break; // no status to tell: the agent reports that it lost track
            }
        }
        libc::_exit(0)
    }
}

/// Between fork and exec of a guest's process (workload or exec'd command): its own
/// session (with `tty` as controlling terminal when given), its cgroup, its ids.
pub fn enter_guest(identity: Identity, tty: Option<RawFd>) -> std::io::Result<()> {
    enter_session(tty)?;
    become_guest(identity)
}

/// Between fork and exec of a command run in a namespaced guest: the guest's namespaces,
/// then a fork, since only children enter a PID namespace. The child leads its own
/// session there (with its terminal, so that a shell's job control works), becomes the
/// guest and execs; this process stays outside, tells the child's pid, relays its exit
/// and ends with it.
pub fn enter_joined(
    identity: Identity,
    tty: Option<RawFd>,
    joiner: &Joiner,
) -> std::io::Result<()> {
    // SAFETY: async-signal-safe calls only; `relay` never returns.
    unsafe {
        // Out of the agent's process group: its signals are not the command's.
        if libc::setsid() == -1 {
            return Err(std::io::Error::last_os_error());
        }
        joiner.enter()?;
        match libc::fork() {
            -1 => Err(std::io::Error::last_os_error()),
            0 => enter_guest(identity, tty),
            child => {
                write_number(joiner.pid_fd(), i64::from(child));
                relay(child)
            }
        }
    }
}

fn enter_session(tty: Option<RawFd>) -> std::io::Result<()> {
    // SAFETY: async-signal-safe calls with valid arguments.
    unsafe {
        if libc::setsid() == -1 {
            return Err(std::io::Error::last_os_error());
        }
        if let Some(tty) = tty
            && libc::ioctl(tty, libc::TIOCSCTTY, 0) == -1
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn become_guest(identity: Identity) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    // SAFETY: async-signal-safe calls with valid arguments.
    unsafe {
        for fd in identity.cgroup_procs.into_iter().filter(|fd| *fd >= 0) {
            // The agent enforces these limits: a guest that cannot join them does not run.
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return fail();
            }
        }
        if let Some(ids) = identity.ids
            && (libc::setgroups(0, std::ptr::null()) == -1
                || libc::setgid(ids.gid) == -1
                || libc::setuid(ids.uid) == -1)
        {
            return fail();
        }
        // setuid-root binaries on the host must not give a guest its privileges back.
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 {
            return fail();
        }
        libc::umask(0o022);
    }
    Ok(())
}

/// Waits for `child` and ends the same way: its exit code, or killed by its signal.
/// Terminal signals are the command's, not this process's.
unsafe fn relay(child: libc::pid_t) -> ! {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGTSTP, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(signal, libc::SIG_IGN);
        }
        // The std error pipe and the output among them: EOF comes from the child alone.
        libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0);
        let mut status = 0;
        while libc::waitpid(child, &mut status, 0) == -1 {
            if *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            libc::signal(signal, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

/// What the guest sees. Later entries win, so the guest's own variables cannot override
/// what gpuspot promises (docs/contracts.md#guest-socket).
pub fn guest_env(spec: &WorkloadSpec) -> Vec<(String, String)> {
    let lossy = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> = PASSED_THROUGH
        .iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
        .collect();
    env.push(("HOME".into(), lossy(&spec.data_dir)));
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let gpus = spec.gpu_uuids.join(",");
    env.extend([
        ("GPUSPOT_INSTANCE_ID".into(), spec.instance_id.to_string()),
        ("GPUSPOT_DATA_DIR".into(), lossy(&spec.data_dir)),
        ("GPUSPOT_METADATA_SOCKET".into(), lossy(&spec.metadata_socket)),
        ("CUDA_VISIBLE_DEVICES".into(), gpus.clone()),
        ("NVIDIA_VISIBLE_DEVICES".into(), gpus),
    ]);
    if let Some(port) = spec.ports.first() {
        env.push(("PORT".into(), port.host.to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("n");
        let file = File::create(&path).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: fd is open for the duration of the calls.
        unsafe {
            write_number(fd, 0);
            write_number(fd, 123_456);
            write_number(fd, -9);
            write_number(fd, i64::from(i32::MAX));
        }
        assert_eq!(std::fs::read_to_string(path).unwrap(), "0\n123456\n-9\n2147483647\n");
    }
}
