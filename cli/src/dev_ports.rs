//! Host ports for `gpuspot dev`'s simulated hosts (docs/contracts.md#serving). Several dev clusters
//! may run on one machine, so each claims a slot of ports of its own: slot `n` is [`FIRST`] +
//! [`SLOT`]·n onwards, claimed by holding a lock on a file named after it in the temp dir for as
//! long as the cluster runs (the kernel drops it however the process ends). The cluster's hosts
//! share their slot's ports in equal parts. A port some other program holds inside the slot does
//! not fail a start either: the agent refuses it and the coordinator draws another.

use gpuspot_common::protocol::GuestNetwork;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The first port of slot 0.
const FIRST: u16 = 20_000;
/// Ports per slot (per cluster).
const SLOT: u16 = 1_000;
/// Slots below the kernel's ephemeral ports (32768 and up), which clients' sockets take.
const SLOTS: u16 = 12;
/// The fewest ports a host gets, however many hosts share the slot.
const MIN_PER_HOST: u16 = 16;

/// A claimed slot; the claim lasts as long as this value.
#[derive(Debug)]
pub struct DevPorts {
    slot: u16,
    _lock: Option<File>,
}

impl DevPorts {
    /// The first free slot, by its lock file under `dir`; when every slot is taken, one
    /// shared with another cluster (the coordinator then retries the ports they both use).
    pub fn claim(dir: &Path) -> DevPorts {
        for slot in 0..SLOTS {
            match try_lock(&lock_path(dir, slot)) {
                Ok(Some(file)) => return DevPorts { slot, _lock: Some(file) },
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(slot, %error, "cannot claim a dev port slot");
                }
            }
        }
        let slot = (std::process::id() % u32::from(SLOTS)) as u16;
        eprintln!(
            "gpuspot dev: {SLOTS} dev clusters hold every port slot; sharing ports {}-{} \
             with another (a port it holds is retried on another)",
            first_port(slot),
            first_port(slot) + SLOT - 1
        );
        DevPorts { slot, _lock: None }
    }

    /// The ports of host `index` (0-based) of `hosts`, on loopback.
    pub fn network(&self, index: usize, hosts: usize) -> GuestNetwork {
        let hosts = u16::try_from(hosts.max(1)).unwrap_or(u16::MAX);
        let per = (SLOT / hosts).max(MIN_PER_HOST);
        let parts = SLOT / per;
        let part = u16::try_from(index % usize::from(parts)).unwrap_or(0);
        let first = first_port(self.slot) + part * per;
        GuestNetwork { ports: (first, first + per - 1), address: Some("127.0.0.1".to_owned()) }
    }
}

fn first_port(slot: u16) -> u16 {
    FIRST + SLOT * slot
}

fn lock_path(dir: &Path, slot: u16) -> PathBuf {
    dir.join(format!("gpuspot-dev-ports-{}.lock", first_port(slot)))
}

/// The lock of `path`, None when another process holds it. Opened read-only, so a file
/// another user created serves as well, and never through a link.
fn try_lock(path: &Path) -> std::io::Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .or_else(|_| OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(error)) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_claim_distinct_slots_and_a_freed_slot_is_claimed_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevPorts::claim(dir.path());
        let second = DevPorts::claim(dir.path());
        assert_eq!((first.slot, second.slot), (0, 1));
        let (a, b) = (first.network(0, 3).ports, second.network(0, 3).ports);
        assert!(a.1 < b.0, "blocks do not overlap: {a:?} {b:?}");
        drop(first);
        assert_eq!(DevPorts::claim(dir.path()).slot, 0, "the lock went with its holder");
    }

    #[test]
    fn hosts_share_their_slot_in_equal_parts() {
        let ports = DevPorts { slot: 2, _lock: None };
        let parts: Vec<_> = (0..3).map(|i| ports.network(i, 3).ports).collect();
        assert_eq!(parts, vec![(22_000, 22_332), (22_333, 22_665), (22_666, 22_998)]);
        // More hosts than parts of 16 ports: they wrap around and share.
        assert_eq!(ports.network(0, 100).ports, (22_000, 22_015));
        assert_eq!(ports.network(62, 100).ports, (22_000, 22_015));
        assert_eq!(ports.network(0, 100).address.as_deref(), Some("127.0.0.1"));
    }
}
