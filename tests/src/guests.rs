//! What a test checks about process guests on the host (docs/contracts.md#guests): the uid a
//! process runs as, who owns a file and with which mode, and whether a data dir is a mounted disk.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The host's own non-loopback address (the source of its route to the outside): where a
/// process guest, whose 127.0.0.1 is its own, reaches the host's published ports.
pub fn host_address() -> IpAddr {
    let out = std::process::Command::new("ip").args(["-4", "route", "get", "1"]).output();
    let out = String::from_utf8_lossy(&out.expect("ip route").stdout).into_owned();
    let mut words = out.split_whitespace();
    words.find(|w| *w == "src");
    words.next().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no src in {out}"))
}

/// The real uid of `pid`, from `/proc/<pid>/status`.
pub fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The host pid of the process that a guest whose data dir is `data_dir` sees as `pid`
/// (a guest of a root agent has its own PID namespace): the process with that innermost
/// pid in the namespace of the guest's processes (those with its `GPUSPOT_DATA_DIR`).
/// `None` when none of the guest's processes runs or `pid` does not.
pub fn host_pid_of(data_dir: &Path, pid: u32) -> Option<u32> {
    let marker = format!("GPUSPOT_DATA_DIR={}", data_dir.display());
    let of_guest = |p: u32| {
        let environ = std::fs::read(format!("/proc/{p}/environ")).unwrap_or_default();
        environ.split(|b| *b == 0).any(|var| var == marker.as_bytes())
    };
    let namespace = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let inner = |p: u32| {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
        line.split_whitespace().last()?.parse::<u32>().ok()
    };
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    let guest = pids.iter().copied().find(|p| of_guest(*p)).and_then(namespace)?;
    pids.into_iter().find(|p| namespace(*p).as_ref() == Some(&guest) && inner(*p) == Some(pid))
}

/// (owner uid, permission bits) of `path`, not following a final symlink.
pub fn owner_and_mode(path: &Path) -> (u32, u32) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.uid(), meta.mode() & 0o7777)
}

/// Whether a filesystem is mounted on `dir` (its device differs from its parent's).
pub fn is_mount_point(dir: &Path) -> bool {
    match (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) {
        (Ok(own), Some(Ok(parent))) => own.dev() != parent.dev(),
        _ => false,
    }
}

/// The value after `KEY=` on a line of `logs`.
pub fn value_of<'a>(logs: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    logs.lines().find_map(|line| line.trim().strip_prefix(prefix.as_str()))
}

/// Where agents claim guest uids (`gpuspot_agent::runtime::uids::CLAIMS_DIR`).
const CLAIMS_DIR: &str = "/run/gpuspot-uids";

/// SIGKILLs every process of the guest uids claimed for data dirs under `root`: what a
/// guest detached from its instance's dir (`cd /; setsid …`) when a test ended early.
pub fn kill_guests_under(root: &Path) {
    let Ok(root) = root.canonicalize() else { return };
    let claims = std::fs::read_dir(CLAIMS_DIR).into_iter().flatten().flatten();
    let uids: Vec<u32> = claims
        .filter(|claim| {
            let owner = std::fs::read_to_string(claim.path()).unwrap_or_default();
            Path::new(owner.trim()).starts_with(&root)
        })
        .filter_map(|claim| claim.file_name().to_str()?.parse().ok())
        .collect();
    if uids.is_empty() {
        return;
    }
    let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for pid in procs.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
        if uid_of(pid).is_some_and(|uid| uids.contains(&uid)) {
            crate::process::kill_tree(pid);
        }
    }
}
