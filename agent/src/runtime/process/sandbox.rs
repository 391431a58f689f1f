//! The namespaces of an isolated process guest (docs/contracts.md#limits): its own PID, mount, IPC
//! and UTS namespaces, and its own network namespace where the host can connect one (see
//! [`crate::runtime::network`]). Its pid 1 is a tiny init (a fork of the agent's watcher, root,
//! outside the guest's cgroup) that mounts the guest's own `/proc` (`hidepid=2`: a guest sees only
//! its own processes), binds `/tmp`, `/var/tmp` and `/run/lock` to `<data>/.gpuspot/` (so they
//! count against the data disk and go with it), mounts a `/dev/shm` of its own, forks the workload,
//! forwards it the signals it gets, reaps every orphan and, once the workload has ended, writes its
//! wait status and exits, which kills whatever else runs in the namespace. SysV IPC objects die
//! with the namespace. Commands run in the guest later (exec) join its namespaces.
//!
//! Where the guest's data dir or metadata socket lies below an overmounted dir (state dirs
//! under `/tmp`), the path is bound again inside the new mount, so it stays reachable.
//!
//! Everything that runs between fork and exec is prepared here beforehand: paths as C
//! strings, descriptors opened; the code there makes async-signal-safe calls only.

use crate::runtime::record::ProcRef;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The host dirs each guest gets a private copy of, on its data disk: (host dir, name
/// under `<data>/.gpuspot`).
const PRIVATE_DIRS: [(&str, &str); 3] =
    [("/tmp", "tmp"), ("/var/tmp", "var-tmp"), ("/run/lock", "lock")];
/// Where a guest's private dirs live inside its data dir.
pub const SCRATCH: &str = ".gpuspot";
/// Namespaces joined by commands run in the guest, `/proc/<pid>/ns/<name>`; `pid` last
/// (it applies to the children of the joining process).
const JOINED: [(&str, libc::c_int); 5] = [
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
];

fn cstring(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)
}

/// At most the private dirs, two kept paths and the resolver's config.
const MAX_BINDS: usize = PRIVATE_DIRS.len() + 3;

/// A bind of `source` onto `target`, after creating `create` (innermost first) in
/// whatever is mounted there by then. `source` is opened before any bind and bound
/// through its descriptor, since a later bind may hide its path.
#[derive(Debug)]
struct Bind {
    source: CString,
    target: CString,
    create: Vec<CString>,
    recursive: bool,
    /// A file, not a dir.
    file: bool,
}

/// What the guest's pid 1 mounts, prepared by the agent.
#[derive(Debug)]
pub struct Sandbox {
    binds: Vec<Bind>,
    /// Whether the host has a `/dev/shm` to cover with the guest's own tmpfs.
    private_shm: bool,
    /// The guest's own network namespace, joined first; `None`: the host's network.
    net: Option<File>,
    /// Held by the init alone: its end ends the network helper.
    net_exit: Option<std::io::PipeWriter>,
}

/// The guest's own `/dev/shm`: POSIX shared memory and semaphores (NCCL, DataLoader) are
/// files there, which a shared tmpfs would let one tenant list, pre-create (0666) for
/// another to open, or fill. Its pages are charged to the guest's memory cgroup.
const SHM: &std::ffi::CStr = c"/dev/shm";

impl Sandbox {
    /// Makes `<data>/.gpuspot/{tmp,lock}` afresh (root's, 1777) and opens what will be
    /// bound. `keep`: dirs the guest must still reach by path (its data dir, socket dir).
    /// `net`: its network namespace, what ends its helper and the `resolv.conf` that goes
    /// with it.
    pub fn prepare(
        data_dir: &Path,
        keep: &[&Path],
        net: Option<crate::runtime::network::Joined<'_>>,
    ) -> std::io::Result<Self> {
        let scratch = data_dir.join(SCRATCH);
        // Whatever a restored snapshot or the guest left there is not trusted.
        match std::fs::symlink_metadata(&scratch) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&scratch)?,
            Ok(_) => std::fs::remove_file(&scratch)?,
            Err(_) => {}
        }
        std::fs::DirBuilder::new().mode(0o755).create(&scratch)?;
        std::os::unix::fs::lchown(&scratch, Some(0), Some(0))?;
        let mut binds = Vec::new();
        let mut overmounted = Vec::new();
        for (host, name) in PRIVATE_DIRS {
            let host = Path::new(host);
            if !host.is_dir() {
                continue;
            }
            let dir = scratch.join(name);
            std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?;
            binds.push(Bind::new(&dir, host, &[], false)?);
            overmounted.push(host);
        }
        // Later binds go below earlier ones; keep each path once, outermost first.
        let mut keep: Vec<&Path> = keep.to_vec();
        keep.sort();
        keep.dedup_by(|inner, outer| inner.starts_with(outer));
        for dir in keep {
            let Some(host) = overmounted.iter().find(|host| dir.starts_with(host)) else {
                continue;
            };
            let create: Vec<&Path> = dir.ancestors().take_while(|a| a != host).collect();
            binds.push(Bind::new(dir, dir, &create, true)?);
        }
        let (net, net_exit, resolv_conf) = match net {
            Some(joined) => (Some(joined.namespace), joined.exit, Some(joined.resolv_conf)),
            None => (None, None, None),
        };
        // A host without one (or with a dangling link) has nothing to point elsewhere.
        let host_resolv_conf = Path::new("/etc/resolv.conf");
        if let Some(resolv_conf) = resolv_conf.filter(|_| host_resolv_conf.is_file()) {
            let mut bind = Bind::new(resolv_conf, host_resolv_conf, &[], false)?;
            bind.file = true;
            binds.push(bind);
        }
        if binds.len() > MAX_BINDS {
            return Err(std::io::Error::other("too many paths to keep in the guest's view"));
        }
        Ok(Self { binds, private_shm: Path::new("/dev/shm").is_dir(), net, net_exit })
    }

    /// In the guest's pid 1, before it forks the workload: its network, its own mount,
    /// IPC and UTS namespaces, mounts private, a fresh `/proc`, the private dirs.
    pub fn enter(&self) -> std::io::Result<()> {
        let fail = || Err(std::io::Error::last_os_error());
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: async-signal-safe syscalls on C strings that outlive them.
        unsafe {
            if let Some(net) = &self.net
                && libc::setns(net.as_raw_fd(), libc::CLONE_NEWNET) == -1
            {
                return fail();
            }
            if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) == -1 {
                return fail();
            }
            // Nothing mounted here may reach the host, nor the host's mounts us.
            let private = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(null, c"/".as_ptr(), null, private, std::ptr::null()) == -1 {
                return fail();
            }
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            let options = c"hidepid=2";
            if libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                flags,
                options.as_ptr().cast(),
            ) == -1
            {
                return fail();
            }
            if self.private_shm {
                let flags = libc::MS_NOSUID | libc::MS_NODEV;
                let options = c"mode=1777";
                let tmpfs = c"tmpfs".as_ptr();
                if libc::mount(tmpfs, SHM.as_ptr(), tmpfs, flags, options.as_ptr().cast()) == -1 {
                    return fail();
                }
            }
            libc::umask(0);
            // Opened in this namespace: a bind's source must be one of its mounts.
            let mut sources = [[0u8; FD_PATH]; MAX_BINDS];
            for (bind, path) in self.binds.iter().zip(sources.iter_mut()) {
                let kind = if bind.file { 0 } else { libc::O_DIRECTORY };
                let flags = libc::O_PATH | kind | libc::O_NOFOLLOW | libc::O_CLOEXEC;
                let fd = libc::open(bind.source.as_ptr(), flags);
                if fd == -1 {
                    return fail();
                }
                *path = fd_path(fd);
            }
            for (bind, source) in self.binds.iter().zip(sources.iter()) {
                for dir in bind.create.iter().rev() {
                    libc::mkdir(dir.as_ptr(), 0o711);
                }
                let flags = libc::MS_BIND | if bind.recursive { libc::MS_REC } else { 0 };
                let source = source.as_ptr().cast();
                if libc::mount(source, bind.target.as_ptr(), null, flags, std::ptr::null()) == -1 {
                    return fail();
                }
            }
        }
        Ok(())
    }
}

impl Sandbox {
    /// The descriptor whose closing ends the network helper; -1 when none.
    pub fn net_exit_fd(&self) -> RawFd {
        self.net_exit.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

impl Bind {
    fn new(
        source: &Path,
        target: &Path,
        create: &[&Path],
        recursive: bool,
    ) -> std::io::Result<Self> {
        Ok(Self {
            source: cstring(source)?,
            target: cstring(target)?,
            create: create.iter().map(|p| cstring(p)).collect::<Result<_, _>>()?,
            recursive,
            file: false,
        })
    }
}

const FD_PATH: usize = 32;

/// `/proc/self/fd/<fd>` NUL-terminated, formatted without allocating.
fn fd_path(fd: RawFd) -> [u8; FD_PATH] {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    let mut path = [0u8; FD_PATH];
    path[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (fd.unsigned_abs(), 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, digit) in digits[..len].iter().rev().enumerate() {
        path[PREFIX.len() + i] = *digit;
    }
    path
}

/// The guest's pid 1 once the workload runs: forwards signals to the workload's group,
/// reaps every process the namespace orphans, and writes the workload's wait status to
/// `status_fd` when it ends; exiting then ends everything else in the namespace, and closes
/// `net_exit_fd`, which ends the guest's network helper.
///
/// # Safety
/// Call only in a forked child, which must not return from it.
pub unsafe fn init(workload: libc::pid_t, status_fd: RawFd, net_exit_fd: RawFd) -> ! {
    // SAFETY: async-signal-safe calls only, on memory of this frame.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"gpuspot-init".as_ptr());
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        // Blocked signals reach pid 1 even without handlers: sigtimedwait takes them.
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        let keep = [status_fd.min(net_exit_fd), status_fd.max(net_exit_fd)];
        super::forked::close_all_but(&keep);
        // The agent binary afresh, holding none of the agent's memory; the mask stays.
        let numbers = [i64::from(workload), i64::from(status_fd), i64::from(net_exit_fd)];
        super::forked::reexec(super::forked::INIT_MODE, &numbers);
        reap(workload, status_fd)
    }
}

/// Init's loop (in the fork, or in the agent binary re-exec'd as init): forwards signals
/// to the workload, reaps orphans and ends with the workload, writing its status.
///
/// # Safety
/// Call only in a guest's init, with every signal blocked.
pub unsafe fn reap(workload: libc::pid_t, status_fd: RawFd) -> ! {
    // SAFETY: async-signal-safe calls only, on memory of this frame.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        let tick = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        loop {
            let signal = libc::sigtimedwait(&all, std::ptr::null_mut(), &tick);
            if signal > 0 && signal != libc::SIGCHLD {
                libc::kill(-workload, signal);
            }
            // Reaped on every wake, not only on SIGCHLD: one may have come before the mask.
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid == workload {
                    super::forked::write_number(status_fd, i64::from(status));
                    libc::_exit(0);
                }
                if pid <= 0 {
                    break;
                }
            }
        }
    }
}

/// A running guest's namespaces, held open for one command run inside it, and where the
/// command's host pid is told (see [`GuestPid`]).
#[derive(Debug)]
pub struct Joiner {
    namespaces: Vec<(File, libc::c_int)>,
    data_dir: CString,
    pid_writer: std::io::PipeWriter,
}

/// The host pid of a command run in a guest's namespaces: the leader of its own session
/// and group there, which the agent signals.
#[derive(Debug)]
pub struct GuestPid(std::io::PipeReader);

impl GuestPid {
    /// Once the command was spawned (and the [`Joiner`] dropped): its pid, if it started.
    pub fn read(mut self) -> Option<i32> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut self.0, &mut text).ok()?;
        text.trim().parse().ok().filter(|pid| *pid > 1)
    }
}

impl Joiner {
    /// Opens the namespaces of `init` (the guest's pid 1), checking it is still the same
    /// process once they are held.
    pub fn open(init: ProcRef, data_dir: &Path) -> std::io::Result<(Self, GuestPid)> {
        let gone = || std::io::Error::other("the guest's processes are gone");
        if !init.alive() {
            return Err(gone());
        }
        let namespaces = JOINED
            .iter()
            .map(|(name, kind)| {
                File::open(format!("/proc/{}/ns/{name}", init.pid)).map(|file| (file, *kind))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        if !init.alive() {
            return Err(gone());
        }
        let (reader, pid_writer) = std::io::pipe()?;
        let joiner = Self { namespaces, data_dir: cstring(data_dir)?, pid_writer };
        Ok((joiner, GuestPid(reader)))
    }

    /// Where the process between fork and exec writes the command's pid.
    pub fn pid_fd(&self) -> RawFd {
        self.pid_writer.as_raw_fd()
    }

    /// Between fork and exec: joins the namespaces (the pid namespace applies to children,
    /// so the caller forks next) and goes back to the data dir, which setns(mnt) left.
    pub fn enter(&self) -> std::io::Result<()> {
        // SAFETY: async-signal-safe syscalls on descriptors and a C string we hold.
        unsafe {
            for (file, kind) in &self.namespaces {
                if libc::setns(file.as_raw_fd(), *kind) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::chdir(self.data_dir.as_ptr()) == -1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fd_paths_are_nul_terminated() {
        let path = super::fd_path(1234);
        assert_eq!(std::ffi::CStr::from_bytes_until_nul(&path).unwrap(), c"/proc/self/fd/1234");
        let path = super::fd_path(0);
        assert_eq!(std::ffi::CStr::from_bytes_until_nul(&path).unwrap(), c"/proc/self/fd/0");
    }
}
