//! The host's own CPU cores and memory (sysinfo), minus what the host reserves for itself.

use super::{DiscoveryError, Reservation};
use sysinfo::{CpuRefreshKind, System};

const GIB: u64 = 1 << 30;

/// Cores and whole GiB of memory offered to guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostResources {
    pub cpu_cores: u32,
    pub memory_gib: u64,
}

/// Logical CPUs and total memory of this machine, less `reservation` (never below zero).
pub fn host_resources(reservation: Reservation) -> Result<HostResources, DiscoveryError> {
    let mut system = System::new().map_err(|e| DiscoveryError::Host(e.to_string()))?;
    system.refresh_cpu_list(CpuRefreshKind::nothing());
    system.refresh_memory();
    let cores = u32::try_from(system.cpus().len()).unwrap_or(u32::MAX);
    if cores == 0 {
        return Err(DiscoveryError::Host("no CPUs reported".into()));
    }
    Ok(HostResources {
        cpu_cores: cores.saturating_sub(reservation.cpu_cores),
        memory_gib: (system.total_memory() / GIB).saturating_sub(reservation.memory_gib),
    })
}

pub use gpuspot_common::process::machine_hostname;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_is_taken_out_and_saturates() {
        let all = host_resources(Reservation::default()).expect("host resources");
        assert!(all.cpu_cores >= 1);
        let less =
            host_resources(Reservation { cpu_cores: 1, memory_gib: 1 }).expect("host resources");
        assert_eq!(less.cpu_cores, all.cpu_cores - 1);
        assert_eq!(less.memory_gib, all.memory_gib.saturating_sub(1));
        let none = host_resources(Reservation { cpu_cores: u32::MAX, memory_gib: u64::MAX })
            .expect("host resources");
        assert_eq!((none.cpu_cores, none.memory_gib), (0, 0));
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!machine_hostname().is_empty());
    }
}
