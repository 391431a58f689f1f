//! Real GPUs through NVML. NVML is initialised once per agent (about 10 ms) and shared; each
//! query afterwards costs microseconds. A GPU that cannot be queried, or that has volatile
//! uncorrected ECC errors, is reported unhealthy so its unit leaves the market.

use super::{DiscoveryError, GpuDiscovery, Reservation, host_resources};
use gpuspot_common::protocol::GpuStatus;
use gpuspot_common::{GpuInfo, HostInventory};
use nvml_wrapper::Device;
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::error::NvmlError;

const MIB: u64 = 1 << 20;

pub struct NvmlDiscovery {
    nvml: Nvml,
    reservation: Reservation,
    hostname: String,
    /// GPUs whose fault was reported and not cleared ([`super::faults`]).
    latch: super::faults::FaultLatch,
}

/// One GPU as read in one pass, so inventory and heartbeat agree on health.
struct Reading {
    info: GpuInfo,
    utilization_percent: Option<u32>,
    memory_used_mib: Option<u64>,
    temperature_celsius: Option<u32>,
}

impl NvmlDiscovery {
    /// Loads NVML. Fails with [`DiscoveryError::NvmlUnavailable`] on a host without the
    /// NVIDIA driver, whose message points at `--simulate`.
    pub fn new(reservation: Reservation, hostname: String) -> Result<Self, DiscoveryError> {
        let nvml = Nvml::init().map_err(init_error)?;
        Ok(Self { nvml, reservation, hostname, latch: Default::default() })
    }

    fn read_all(&self) -> Result<Vec<Reading>, DiscoveryError> {
        let count = self.nvml.device_count().map_err(|e| DiscoveryError::Nvml {
            what: "device count".into(),
            message: e.to_string(),
        })?;
        Ok((0..count).map(|index| self.read_one(index)).collect())
    }

    fn read_one(&self, index: u32) -> Reading {
        match self.nvml.device_by_index(index) {
            Ok(device) => read_device(&device, index),
            Err(error) => {
                tracing::debug!(index, %error, "GPU cannot be opened; reporting it unhealthy");
                Reading {
                    info: placeholder(index),
                    utilization_percent: None,
                    memory_used_mib: None,
                    temperature_celsius: None,
                }
            }
        }
    }
}

impl GpuDiscovery for NvmlDiscovery {
    fn inventory(&self) -> Result<HostInventory, DiscoveryError> {
        let gpus = self.read_all()?.into_iter().map(|r| r.info).collect();
        let host = host_resources(self.reservation)?;
        Ok(HostInventory {
            hostname: self.hostname.clone(),
            gpus,
            cpu_cores: host.cpu_cores,
            memory_gib: host.memory_gib,
        })
    }

    fn gpu_status(&self) -> Result<Vec<GpuStatus>, DiscoveryError> {
        Ok(self
            .read_all()?
            .into_iter()
            .map(|r| GpuStatus {
                uuid: r.info.uuid,
                healthy: r.info.healthy,
                utilization_percent: r.utilization_percent,
                memory_used_mib: r.memory_used_mib,
                temperature_celsius: r.temperature_celsius,
            })
            .collect())
    }

    fn watch_faults(&self, sink: super::faults::FaultSink) {
        super::nvml_events::spawn(sink, self.latch.clone());
    }

    fn clear_fault(&self, index: u32) {
        if let Ok(uuid) = self.nvml.device_by_index(index).and_then(|d| d.uuid()) {
            self.latch.clear(&uuid);
        }
    }
}

fn read_device(device: &Device<'_>, index: u32) -> Reading {
    let mut healthy = true;
    let mut note = |what: &str, error: &NvmlError| {
        tracing::debug!(index, what, %error, "NVML query failed; GPU reported unhealthy");
        healthy = false;
    };
    let fallback = placeholder(index);
    let uuid = device.uuid().unwrap_or_else(|e| {
        note("uuid", &e);
        fallback.uuid.clone()
    });
    let model = device.name().unwrap_or_else(|e| {
        note("name", &e);
        fallback.model.clone()
    });
    let memory_mib = device.memory_info().map(|m| m.total / MIB).unwrap_or_else(|e| {
        note("memory", &e);
        0
    });
    let pci_bus_id = device.pci_info().map(|p| p.bus_id).unwrap_or_else(|e| {
        note("pci info", &e);
        String::new()
    });
    let ecc_ok = ecc_healthy(device, index);
    Reading {
        info: GpuInfo { index, uuid, model, memory_mib, pci_bus_id, healthy: healthy && ecc_ok },
        utilization_percent: device.utilization_rates().ok().map(|u| u.gpu),
        memory_used_mib: device.memory_info().ok().map(|m| m.used >> 20),
        temperature_celsius: device.temperature(TemperatureSensor::Gpu).ok(),
    }
}

/// Uncorrected (double-bit) errors since the driver loaded mean the GPU's memory cannot be
/// trusted. Consumer GPUs have no ECC at all: that is not a fault.
pub(super) fn ecc_healthy(device: &Device<'_>, index: u32) -> bool {
    match device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile) {
        Ok(0) | Err(NvmlError::NotSupported) => true,
        Ok(count) => {
            tracing::debug!(index, count, "volatile uncorrected ECC errors");
            false
        }
        Err(error) => {
            tracing::debug!(index, %error, "ECC query failed");
            false
        }
    }
}

/// Stands in for a GPU NVML cannot describe; unhealthy, so it is never sold.
fn placeholder(index: u32) -> GpuInfo {
    GpuInfo {
        index,
        uuid: format!("GPU-unreadable-{index}"),
        model: "unknown".into(),
        memory_mib: 0,
        pci_bus_id: String::new(),
        healthy: false,
    }
}

fn init_error(error: NvmlError) -> DiscoveryError {
    match error {
        NvmlError::LibloadingError(_)
        | NvmlError::FailedToLoadSymbol(_)
        | NvmlError::LibraryNotFound
        | NvmlError::DriverNotLoaded => DiscoveryError::NvmlUnavailable(error.to_string()),
        other => DiscoveryError::Nvml { what: "initialisation".into(), message: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes on both kinds of machine: without a driver the error must say what to do;
    /// with one, the inventory must describe real, distinct GPUs.
    #[test]
    fn nvml_either_works_or_explains_itself() {
        match NvmlDiscovery::new(Reservation::default(), "test-host".into()) {
            Err(DiscoveryError::NvmlUnavailable(reason)) => {
                let message = DiscoveryError::NvmlUnavailable(reason).to_string();
                assert!(message.contains("no NVIDIA driver"), "{message}");
                assert!(message.contains("--simulate PROFILE"), "{message}");
            }
            Err(other) => panic!("unexpected NVML error: {other}"),
            Ok(discovery) => {
                let inventory = discovery.inventory().expect("inventory");
                assert_eq!(inventory.hostname, "test-host");
                let status = discovery.gpu_status().expect("status");
                assert_eq!(status.len(), inventory.gpus.len());
                for gpu in &inventory.gpus {
                    println!("{gpu:?}");
                    assert!(gpu.uuid.starts_with("GPU-"), "{gpu:?}");
                    assert!(gpu.memory_mib > 0, "{gpu:?}");
                }
            }
        }
    }
}
