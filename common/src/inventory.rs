//! What a host has (GPUs, cores, memory) and how it splits into units (seed 004): a host with
//! n GPUs has n units, each 1 GPU + floor(cores/n) cores + floor(memory/n) memory. The split
//! lives here so the agent (which reports) and the coordinator (which places) cannot disagree.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub index: u32,
    pub uuid: String,
    /// The NVML name, e.g. "NVIDIA H100 80GB HBM3".
    pub model: String,
    pub memory_mib: u64,
    pub pci_bus_id: String,
    /// False after an NVML error or an ECC/Xid fault: the unit leaves the market.
    pub healthy: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInventory {
    pub hostname: String,
    pub gpus: Vec<GpuInfo>,
    /// Cores offered to guests (after the host's own reservation).
    pub cpu_cores: u32,
    /// Memory offered to guests, whole GiB (after the host's own reservation).
    pub memory_gib: u64,
}

/// One GPU with its fixed share of the host's cores and memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub gpu: GpuInfo,
    pub cpu_cores: u32,
    pub memory_gib: u64,
}

/// Splits a host into units exactly as seed 004 describes. A host without GPUs has no units.
pub fn partition(inventory: &HostInventory) -> Vec<Unit> {
    let n = inventory.gpus.len();
    if n == 0 {
        return Vec::new();
    }
    let cpu_cores = inventory.cpu_cores / n as u32;
    let memory_gib = inventory.memory_gib / n as u64;
    inventory.gpus.iter().map(|gpu| Unit { gpu: gpu.clone(), cpu_cores, memory_gib }).collect()
}

/// Whether `wanted` (a request's model filter, e.g. "H100") names `nvml_name`
/// (e.g. "NVIDIA H100 80GB HBM3"): a case-insensitive substring match.
pub fn model_matches(wanted: &str, nvml_name: &str) -> bool {
    let wanted = wanted.trim();
    !wanted.is_empty() && nvml_name.to_lowercase().contains(&wanted.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn host(model: &str, gpus: u32, cores: u32, memory_gib: u64) -> HostInventory {
        HostInventory {
            hostname: "test".into(),
            gpus: (0..gpus)
                .map(|index| GpuInfo {
                    index,
                    uuid: format!("GPU-{index}"),
                    model: model.into(),
                    memory_mib: 32_768,
                    pci_bus_id: format!("00000000:{:02X}:00.0", index + 1),
                    healthy: true,
                })
                .collect(),
            cpu_cores: cores,
            memory_gib,
        }
    }

    #[test]
    fn seed_004_host_a_units() {
        let units = partition(&host("NVIDIA GeForce RTX 5090", 8, 128, 720));
        assert_eq!(units.len(), 8);
        assert!(units.iter().all(|u| u.cpu_cores == 16 && u.memory_gib == 90));
        assert_eq!(units[3].gpu.uuid, "GPU-3");
    }

    #[test]
    fn shares_round_down() {
        let units = partition(&host("X", 3, 10, 100));
        assert!(units.iter().all(|u| u.cpu_cores == 3 && u.memory_gib == 33));
    }

    #[test]
    fn no_gpus_no_units() {
        assert!(partition(&host("X", 0, 64, 256)).is_empty());
    }

    #[test]
    fn model_match_is_case_insensitive_substring() {
        assert!(model_matches("h100", "NVIDIA H100 80GB HBM3"));
        assert!(model_matches("RTX PRO 6000", "NVIDIA RTX PRO 6000 Blackwell Server Edition"));
        assert!(!model_matches("A100", "NVIDIA H100 80GB HBM3"));
        assert!(!model_matches("", "NVIDIA H100 80GB HBM3"));
    }
}
