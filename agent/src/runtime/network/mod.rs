//! A namespaced process guest's own network (docs/contracts.md#limits; issue 24): a fresh network
//! namespace with `lo` up, joined by the guest's init, and a `slirp4netns` per guest that
//! gives it outbound access through the host and publishes exactly its ports: host
//! `0.0.0.0:P` → guest `P` (the guest listens on `$PORT` on any address, as a container
//! does). Nothing else reaches the guest: another guest's 127.0.0.1 is its own loopback,
//! and its undeclared ports are on no host address. `--disable-host-loopback` keeps the
//! guest off the host's 127.0.0.1; `--enable-sandbox` and `--enable-seccomp` confine the
//! helper, which parses the guest's packets as root. Inside, DNS goes to slirp's resolver
//! (10.0.2.3, forwarded to the host's), since the host's may listen on its loopback.
//!
//! The helper is its own session and outlives the agent (a restarted agent adopts it by
//! pid and start time, see [`super::record`]); it ends with the guest's init, which holds
//! the only writer of its exit pipe, and the agent kills it when the guest ends too. Without
//! `slirp4netns` on the host, guests keep the host's network (said once at start).

use super::record::ProcRef;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The helper, looked up on `PATH`.
const HELPER: &str = "slirp4netns";
/// Its API socket in the instance dir.
const API_SOCKET: &str = "net.sock";
/// The guest's `/etc/resolv.conf`, in the instance dir.
pub const RESOLV_CONF: &str = "resolv.conf";
/// slirp's built-in resolver, forwarded to the host's.
const NAMESERVER: &str = "nameserver 10.0.2.3\n";
/// How long the helper may take to set the namespace up (it takes milliseconds).
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long a killed helper may take to release the guest's ports.
const GONE_WITHIN: Duration = Duration::from_secs(2);
/// Descriptors the helper finds its ready pipe, the namespace and its exit pipe on.
const READY_FD: i32 = 3;
const NETNS_FD: i32 = 4;
const EXIT_FD: i32 = 5;

static MISSING_LOGGED: Once = Once::new();

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot create the guest's network namespace: {0}")]
    Namespace(std::io::Error),
    #[error("cannot start {HELPER}: {0}")]
    Spawn(std::io::Error),
    #[error("{HELPER} did not set the guest's network up: {0}")]
    NotReady(String),
    #[error("cannot publish port {port}: {reason}")]
    Publish { port: u16, reason: String },
}

/// Whether guests get their own network, and the helper that connects it.
#[derive(Clone, Debug, Default)]
pub struct Networking {
    helper: Option<PathBuf>,
}

impl Networking {
    /// Own networks where guests get own namespaces (`namespaced`: the agent is root) and
    /// the helper is installed; says once why not otherwise.
    pub fn detect(namespaced: bool) -> Self {
        if !namespaced {
            return Self::default();
        }
        let helper = find_on_path(HELPER);
        if helper.is_none() {
            MISSING_LOGGED.call_once(|| {
                tracing::warn!(
                    "{HELPER} is not installed: process guests share the host's network and \
                     can reach each other's ports (install it to isolate them)"
                );
            });
        }
        Self { helper }
    }

    /// A network for one guest (group `gid`), its helper started and `ports` published;
    /// `None` when guests keep the host's network.
    pub fn create(
        &self,
        instance_dir: &Path,
        gid: u32,
        ports: &[u16],
    ) -> Result<Option<GuestNet>, NetError> {
        let Some(helper) = &self.helper else { return Ok(None) };
        std::fs::write(instance_dir.join(RESOLV_CONF), NAMESERVER).map_err(NetError::Namespace)?;
        let namespace = new_namespace().map_err(NetError::Namespace)?;
        let started = Instant::now();
        let (exit_reader, exit) = std::io::pipe().map_err(NetError::Spawn)?;
        let target = Target::Namespace(&namespace, exit_reader);
        let process = start_helper(helper, instance_dir, gid, target)?;
        let net = GuestNet { namespace: Some(namespace), helper: process, exit: Some(exit) };
        if let Err(error) = publish(instance_dir, ports) {
            net.helper.kill_and_wait();
            return Err(error);
        }
        tracing::debug!(elapsed = ?started.elapsed(), "guest network ready");
        Ok(Some(net))
    }

    /// Starts a helper again for the running guest whose init is `init` (after the helper
    /// died while no agent ran).
    pub fn restart(
        &self,
        init: ProcRef,
        instance_dir: &Path,
        gid: u32,
        ports: &[u16],
    ) -> Result<ProcRef, NetError> {
        let helper = self.helper.as_ref().ok_or_else(|| NetError::Spawn(missing()))?;
        let process = start_helper(helper, instance_dir, gid, Target::Pid(init.pid))?;
        publish(instance_dir, ports).inspect_err(|_| process.kill_and_wait())?;
        Ok(process)
    }
}

fn missing() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, format!("{HELPER} is not installed"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// One guest's network until its init has joined it.
#[derive(Debug)]
pub struct GuestNet {
    pub helper: ProcRef,
    /// Holds the namespace until the guest's init has joined it.
    namespace: Option<File>,
    /// The helper ends once every copy is closed: the init keeps the only one.
    exit: Option<std::io::PipeWriter>,
}

/// What the guest's init needs to join its network (see [`super::sandbox::Sandbox`]).
#[derive(Debug)]
pub struct Joined<'a> {
    pub namespace: File,
    pub exit: Option<std::io::PipeWriter>,
    pub resolv_conf: &'a Path,
}

impl GuestNet {
    /// Hands the namespace and the helper's lifeline over to the guest's init, once.
    pub fn join<'a>(&mut self, resolv_conf: &'a Path) -> Option<Joined<'a>> {
        let namespace = self.namespace.take()?;
        Some(Joined { namespace, exit: self.exit.take(), resolv_conf })
    }
}

/// The namespace to connect, and what ends the helper (none: the agent kills it).
enum Target<'a> {
    Namespace(&'a File, std::io::PipeReader),
    Pid(u32),
}

/// A new network namespace with `lo` up, made on a thread of its own (a thread's network
/// namespace is its own); the returned file holds it.
fn new_namespace() -> std::io::Result<File> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: unshare affects this short-lived thread only.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                loopback_up()?;
                File::open("/proc/thread-self/ns/net")
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
    })
}

/// `ip link set lo up` in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a socket we own, an ifreq we initialise, both outliving the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd == -1 {
            return Err(std::io::Error::last_os_error());
        }
        let socket = <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let mut request: libc::ifreq = std::mem::zeroed();
        for (to, from) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *to = *from as libc::c_char;
        }
        request.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts the helper on `target` and waits until it has configured `tap0`. It runs as
/// root (the sandbox drops its capabilities) in the guest's group, so that the host's packet
/// filter knows the connections it opens for the guest as the guest's (`-m owner
/// --gid-owner`).
/// A mount namespace of the helper's own whose mounts are all private: its sandbox
/// (`--enable-sandbox`) remounts and pivots, and on a host where `/run/netns` is a shared
/// mount (Podman's) the unmounts propagated back and took every container's network
/// namespace off the host, so that the engine could no longer inspect, exec in or stop them.
fn private_mounts() -> std::io::Result<()> {
    let null = std::ptr::null::<libc::c_char>();
    let private = libc::MS_REC | libc::MS_PRIVATE;
    // SAFETY: async-signal-safe calls with valid arguments, between fork and exec.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) == -1
            || libc::mount(null, c"/".as_ptr(), null, private, std::ptr::null()) == -1
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn start_helper(
    helper: &Path,
    instance_dir: &Path,
    gid: u32,
    target: Target,
) -> Result<ProcRef, NetError> {
    let socket = instance_dir.join(API_SOCKET);
    let _ = std::fs::remove_file(&socket);
    let (mut ready, ready_writer) = std::io::pipe().map_err(NetError::Spawn)?;
    let mut command = tokio::process::Command::new(helper);
    command
        .args(["--configure", "--mtu=65520", "--disable-host-loopback"])
        .args(["--enable-sandbox", "--enable-seccomp", "--ready-fd=3"])
        .arg(format!("--api-socket={}", socket.display()))
        .current_dir(instance_dir)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let ready_fd = ready_writer.as_raw_fd();
    let (netns_fd, exit) = match target {
        Target::Namespace(file, exit) => {
            command.arg(format!("--exit-fd={EXIT_FD}"));
            command.args(["--netns-type=path", &format!("/proc/self/fd/{NETNS_FD}")]);
            (file.as_raw_fd(), Some(exit))
        }
        Target::Pid(pid) => {
            command.arg(pid.to_string());
            (-1, None)
        }
    };
    let exit_fd = exit.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    command.arg("tap0");
    // SAFETY: the closure makes async-signal-safe calls only.
    unsafe {
        command.pre_exec(move || {
            helper_fds([ready_fd, netns_fd, exit_fd])?;
            if libc::setgroups(0, std::ptr::null()) == -1 || libc::setgid(gid) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            private_mounts()
        });
    }
    // Dropped at once: tokio reaps it whenever it ends; it outlives the agent.
    let child = command.spawn().map_err(NetError::Spawn)?;
    drop((ready_writer, exit));
    let process = ProcRef::of(child.id().unwrap_or(0));
    drop(child);
    match read_ready_byte(&mut ready) {
        Ok(1) => Ok(process),
        Ok(_) => Err(NetError::NotReady("it exited".into())),
        Err(error) => {
            process.kill_and_wait();
            Err(NetError::NotReady(error.to_string()))
        }
    }
}

/// Between fork and exec of the helper: its own session (the agent's signals and end are
/// not its own), the ready pipe on [`READY_FD`], the namespace on [`NETNS_FD`], the exit
/// pipe on [`EXIT_FD`] (-1: none). Copied above all first, so none overwrites another.
fn helper_fds(fds: [i32; 3]) -> std::io::Result<()> {
    // SAFETY: async-signal-safe calls on descriptors this process holds.
    unsafe {
        if libc::setsid() == -1 {
            return Err(std::io::Error::last_os_error());
        }
        let wanted = fds.into_iter().zip([READY_FD, NETNS_FD, EXIT_FD]);
        let mut copies = [(-1, 0); 3];
        for ((fd, target), copy) in wanted.into_iter().zip(copies.iter_mut()) {
            if fd >= 0 {
                *copy = (libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, EXIT_FD + 1), target);
                if copy.0 == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        for (copy, target) in copies {
            if copy >= 0 && libc::dup2(copy, target) == -1 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Waits until the ready pipe has something to read, or [`READY_WITHIN`] has passed. A
/// signal (the agent's children ending) interrupts `poll`: it is asked again for the time left.
fn wait_readable(pipe: &std::io::PipeReader) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + READY_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut poll = libc::pollfd { fd: pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd we own.
        match unsafe { libc::poll(&mut poll, 1, left.as_millis() as libc::c_int) } {
            -1 => match std::io::Error::last_os_error() {
                e if e.kind() == std::io::ErrorKind::Interrupted => continue,
                e => return Err(e),
            },
            0 => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")),
            _ => return Ok(()),
        }
    }
}

/// One byte from the ready pipe once it is readable; a signal's interruption is retried.
fn read_ready_byte(pipe: &mut std::io::PipeReader) -> std::io::Result<usize> {
    wait_readable(pipe)?;
    let mut byte = [0u8; 1];
    loop {
        match pipe.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            answer => return answer,
        }
    }
}

/// Publishes each port through the helper's API: host `0.0.0.0:P` → guest `P`.
fn publish(instance_dir: &Path, ports: &[u16]) -> Result<(), NetError> {
    let socket = instance_dir.join(API_SOCKET);
    for port in ports {
        let request = serde_json::json!({ "execute": "add_hostfwd", "arguments": {
            "proto": "tcp", "host_addr": "0.0.0.0", "host_port": port, "guest_port": port } });
        let fail = |reason: String| NetError::Publish { port: *port, reason };
        let answer = call(&socket, &request).map_err(|e| fail(e.to_string()))?;
        if let Some(error) = answer.get("error") {
            return Err(fail(error.to_string()));
        }
    }
    Ok(())
}

/// One request to the helper's API (one connection each).
fn call(socket: &Path, request: &serde_json::Value) -> std::io::Result<serde_json::Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(READY_WITHIN))?;
    stream.write_all(request.to_string().as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer)?;
    serde_json::from_slice(&answer).map_err(std::io::Error::other)
}

impl ProcRef {
    /// SIGKILL if it is still this process; returns once it is gone (or after a while).
    pub fn kill_and_wait(&self) {
        if !self.alive() {
            return;
        }
        // SAFETY: kill takes plain integers; the pid was just checked to be this process.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        let deadline = Instant::now() + GONE_WITHIN;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests;
