//! A host described by a profile instead of NVML (docs/contracts.md#hosts-and-units, simulated-host
//! mode): seed 004's hosts A/B/C on a laptop. GPU UUIDs are derived from (hostname, index), so a
//! restarted agent reports the same GPUs and the coordinator recognises its units.

use super::{DiscoveryError, GpuDiscovery, machine_hostname};
use gpuspot_common::protocol::GpuStatus;
use gpuspot_common::{GpuInfo, HostInventory};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

fn default_gpu_memory_mib() -> u64 {
    32_768
}

/// A simulated host, as written in a TOML profile (e.g. `config/hosts/host-a.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedProfile {
    /// The host's name; the machine's hostname when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The NVML-style model name, e.g. "NVIDIA GeForce RTX 5090".
    pub model: String,
    pub gpu_count: u32,
    #[serde(default = "default_gpu_memory_mib")]
    pub gpu_memory_mib: u64,
    /// Cores offered to guests.
    pub cpu_cores: u32,
    /// Memory offered to guests, whole GiB.
    pub memory_gib: u64,
}

impl SimulatedProfile {
    /// Reads and checks a profile; errors name the file and the offending field.
    pub fn from_file(path: &Path) -> Result<Self, DiscoveryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| DiscoveryError::ProfileRead { path: path.to_owned(), source })?;
        let invalid =
            |message: String| DiscoveryError::ProfileInvalid { path: path.to_owned(), message };
        let profile: Self = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        profile.check().map_err(invalid)?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        if self.model.trim().is_empty() {
            return Err("field `model` must not be empty".into());
        }
        if self.gpu_count == 0 {
            return Err("field `gpu_count` must be at least 1".into());
        }
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err("field `name` must not be empty when given".into());
        }
        Ok(())
    }
}

pub struct SimulatedDiscovery {
    profile: SimulatedProfile,
    hostname: String,
    uuids: Vec<String>,
    healthy: Vec<AtomicBool>,
    /// Where injected faults go, once the link watches ([`super::faults`]).
    faults: std::sync::OnceLock<super::faults::FaultSink>,
    latch: super::faults::FaultLatch,
}

impl SimulatedDiscovery {
    /// `hostname_override` wins over the profile's `name`, which wins over the machine's
    /// hostname (fleet mode runs one profile under many names).
    pub fn new(profile: SimulatedProfile, hostname_override: Option<String>) -> Self {
        let hostname =
            hostname_override.or_else(|| profile.name.clone()).unwrap_or_else(machine_hostname);
        let uuids = (0..profile.gpu_count).map(|index| simulated_uuid(&hostname, index)).collect();
        let healthy = (0..profile.gpu_count).map(|_| AtomicBool::new(true)).collect();
        Self {
            profile,
            hostname,
            uuids,
            healthy,
            faults: Default::default(),
            latch: Default::default(),
        }
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Fakes a GPU fault (or its repair). Returns false when there is no GPU `index`.
    pub fn set_healthy(&self, index: u32, healthy: bool) -> bool {
        match self.healthy.get(index as usize) {
            Some(flag) => {
                flag.store(healthy, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn is_healthy(&self, index: usize) -> bool {
        self.healthy.get(index).is_some_and(|flag| flag.load(Ordering::Relaxed))
    }
}

impl GpuDiscovery for SimulatedDiscovery {
    fn inventory(&self) -> Result<HostInventory, DiscoveryError> {
        let gpus = self
            .uuids
            .iter()
            .enumerate()
            .map(|(i, uuid)| GpuInfo {
                index: i as u32,
                uuid: uuid.clone(),
                model: self.profile.model.clone(),
                memory_mib: self.profile.gpu_memory_mib,
                pci_bus_id: format!("00000000:{:02X}:00.0", i + 1),
                healthy: self.is_healthy(i),
            })
            .collect();
        Ok(HostInventory {
            hostname: self.hostname.clone(),
            gpus,
            cpu_cores: self.profile.cpu_cores,
            memory_gib: self.profile.memory_gib,
        })
    }

    fn gpu_status(&self) -> Result<Vec<GpuStatus>, DiscoveryError> {
        Ok(self
            .uuids
            .iter()
            .enumerate()
            .map(|(i, uuid)| GpuStatus {
                uuid: uuid.clone(),
                healthy: self.is_healthy(i),
                utilization_percent: Some(0),
                memory_used_mib: None,
                temperature_celsius: None,
            })
            .collect())
    }

    fn is_simulated(&self) -> bool {
        true
    }

    fn watch_faults(&self, sink: super::faults::FaultSink) {
        let _ = self.faults.set(sink);
    }

    /// The GPU turns unhealthy and its fault goes through the same mapping as NVML's
    /// events.
    fn inject_fault(&self, index: u32, xid: u32) -> Result<(), super::InjectError> {
        let uuid = self.uuids.get(index as usize).ok_or(super::InjectError::NoSuchGpu(index))?;
        let sink = self.faults.get().ok_or(super::InjectError::NotWatching)?;
        self.set_healthy(index, false);
        let event = super::faults::NvmlEvent {
            index,
            uuid: uuid.clone(),
            types: nvml_wrapper::bitmasks::event::EventTypes::CRITICAL_XID_ERROR,
            xid: Some(u64::from(xid)),
        };
        if let Some(fault) = super::faults::classify(&event) {
            self.latch.report(fault, sink);
        }
        Ok(())
    }

    fn clear_fault(&self, index: u32) {
        if let Some(uuid) = self.uuids.get(index as usize) {
            self.latch.clear(uuid);
            self.set_healthy(index, true);
        }
    }
}

/// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, shaped like NVML's, from a hash of the host
/// and index so it is stable across restarts and distinct across hosts.
fn simulated_uuid(hostname: &str, index: u32) -> String {
    let digest = Sha256::digest(format!("gpuspot-simulated-gpu:{hostname}:{index}"));
    let hex = hex::encode(&digest[..16]);
    format!("GPU-{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuspot_common::partition;

    fn host_a() -> SimulatedProfile {
        SimulatedProfile {
            name: Some("host-a".into()),
            model: "NVIDIA GeForce RTX 5090".into(),
            gpu_count: 8,
            gpu_memory_mib: 32_768,
            cpu_cores: 128,
            memory_gib: 720,
        }
    }

    #[test]
    fn seed_004_host_a_splits_into_eight_units_of_16_cores_and_90_gib() {
        let inventory = SimulatedDiscovery::new(host_a(), None).inventory().expect("inventory");
        assert_eq!(inventory.hostname, "host-a");
        let units = partition(&inventory);
        assert_eq!(units.len(), 8);
        for (i, unit) in units.iter().enumerate() {
            assert_eq!((unit.cpu_cores, unit.memory_gib), (16, 90));
            assert_eq!(unit.gpu.model, "NVIDIA GeForce RTX 5090");
            assert_eq!(unit.gpu.pci_bus_id, format!("00000000:{:02X}:00.0", i + 1));
            assert!(unit.gpu.healthy);
        }
    }

    #[test]
    fn uuids_are_stable_across_restarts_and_distinct_across_hosts() {
        let uuids = |name: Option<&str>| -> Vec<String> {
            let discovery = SimulatedDiscovery::new(host_a(), name.map(str::to_owned));
            let inventory = discovery.inventory().expect("inventory");
            inventory.gpus.into_iter().map(|g| g.uuid).collect()
        };
        let first = uuids(None);
        assert_eq!(first, uuids(None));
        assert_eq!(first.len(), 8);
        let mut distinct = first.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 8);
        assert!(first[0].starts_with("GPU-") && first[0].len() == 40, "{}", first[0]);
        let other = uuids(Some("host-b"));
        assert!(first.iter().all(|u| !other.contains(u)));
    }

    #[test]
    fn a_faulted_gpu_is_reported_unhealthy() {
        let discovery = SimulatedDiscovery::new(host_a(), None);
        assert!(discovery.set_healthy(3, false));
        assert!(!discovery.set_healthy(8, false));
        let inventory = discovery.inventory().expect("inventory");
        assert!(!inventory.gpus[3].healthy);
        assert_eq!(inventory.gpus.iter().filter(|g| g.healthy).count(), 7);
        let status = discovery.gpu_status().expect("status");
        assert!(!status[3].healthy && status[2].healthy);
        assert_eq!(status[3].uuid, inventory.gpus[3].uuid);
        assert_eq!(status[0].utilization_percent, Some(0));
    }

    #[test]
    fn profile_file_parses_with_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("host-a.toml");
        let text = "model = \"NVIDIA GeForce RTX 5090\"\ngpu_count = 8\n\
                    cpu_cores = 128\nmemory_gib = 720\n";
        std::fs::write(&path, text).expect("write");
        let profile = SimulatedProfile::from_file(&path).expect("profile");
        assert_eq!(profile.gpu_memory_mib, 32_768);
        assert_eq!(profile.name, None);
        let discovery = SimulatedDiscovery::new(profile, None);
        assert_eq!(discovery.hostname(), machine_hostname());
    }

    #[test]
    fn bad_profiles_name_the_file_and_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("missing.toml", "model = \"X\"\ngpu_count = 8\ncpu_cores = 1\n", "memory_gib"),
            ("typo.toml", "model = \"X\"\ngpu_cnt = 8\n", "gpu_cnt"),
            (
                "zero.toml",
                "model = \"X\"\ngpu_count = 0\ncpu_cores = 1\nmemory_gib = 1\n",
                "gpu_count",
            ),
            ("type.toml", "model = 5\n", "model"),
        ];
        for (file, text, field) in cases {
            let path = dir.path().join(file);
            std::fs::write(&path, text).expect("write");
            let message = SimulatedProfile::from_file(&path).expect_err("must fail").to_string();
            assert!(message.contains(file), "{message}");
            assert!(message.contains(field), "{message}");
        }
        let absent = dir.path().join("absent.toml");
        let message = SimulatedProfile::from_file(&absent).expect_err("must fail").to_string();
        assert!(message.contains("absent.toml"), "{message}");
    }
}
