//! What this host offers: its GPUs (from NVML, or from a simulated profile) and the cores and
//! memory left for guests once the host's own reservation is taken out
//! (docs/contracts.md#hosts-and-units).
//!
//! [`faults`] turns NVML's fault events and failed health queries (and injected faults)
//! into reports the link sends at once; [`nvml_events`] reads them from NVML.
//!
//! Everything behind [`GpuDiscovery`] is synchronous; NVML calls cost microseconds but may
//! block on a sick driver, so async callers go through `spawn_blocking`.

pub mod faults;
mod host;
mod nvml;
pub mod nvml_events;
mod simulated;

pub use host::{HostResources, host_resources, machine_hostname};
pub use nvml::NvmlDiscovery;
pub use simulated::{SimulatedDiscovery, SimulatedProfile};

use gpuspot_common::HostInventory;
use gpuspot_common::protocol::GpuStatus;
use serde::Deserialize;
use std::path::PathBuf;

pub trait GpuDiscovery: Send + Sync + 'static {
    /// Full inventory: GPUs plus the cores/memory offered to guests (after reservation).
    fn inventory(&self) -> Result<HostInventory, DiscoveryError>;
    /// Current health and utilisation of each GPU, for heartbeats.
    fn gpu_status(&self) -> Result<Vec<GpuStatus>, DiscoveryError>;
    /// A profile instead of NVML: guests then set the utilisation their GPUs report.
    fn is_simulated(&self) -> bool {
        false
    }
    /// Starts watching for GPU faults, each sent to `sink` the moment it is seen.
    fn watch_faults(&self, sink: faults::FaultSink) {
        drop(sink);
    }
    /// Simulated GPUs only: GPU `index` fails with Xid `xid`, reported as a real fault.
    fn inject_fault(&self, index: u32, xid: u32) -> Result<(), InjectError> {
        let _ = xid;
        Err(InjectError::RealGpus(index))
    }
    /// The operator cleared GPU `index`: a new fault of it is reported again (and a
    /// simulated GPU is healthy again).
    fn clear_fault(&self, index: u32) {
        let _ = index;
    }
}

/// Why a fault could not be injected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error("GPU {0} is real: faults are injected into simulated GPUs only")]
    RealGpus(u32),
    #[error("there is no GPU {0}")]
    NoSuchGpu(u32),
    #[error("the fault watch is not running")]
    NotWatching,
}

/// What the host keeps for itself (the agent, the OS, page cache); never offered to guests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Reservation {
    pub cpu_cores: u32,
    pub memory_gib: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(
        "no NVIDIA driver found: NVML (libnvidia-ml.so.1) could not be used: {0}. \
         On a host without NVIDIA GPUs, run the agent with `--simulate PROFILE` instead"
    )]
    NvmlUnavailable(String),
    #[error("NVML query failed: {what}: {message}")]
    Nvml { what: String, message: String },
    #[error("could not read this host's cores and memory: {0}")]
    Host(String),
    #[error("cannot read simulated host profile {}: {source}", path.display())]
    ProfileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid simulated host profile {}: {message}", path.display())]
    ProfileInvalid { path: PathBuf, message: String },
}
