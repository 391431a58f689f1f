//! GPU faults on the link (docs/architecture.md, "Faults and drills"): what an agent
//! reports the moment a GPU breaks, what the coordinator may ask of it (inject a fault on a
//! simulated GPU, clear one), and which NVIDIA Xid codes mean that the GPU itself failed
//! rather than the program running on it.

use serde::{Deserialize, Serialize};

/// Xid codes that a program causes (an illegal address, a bad launch, a timeout it asked
/// for), not the hardware: the NVIDIA device plugin for Kubernetes skips the same set by
/// default. Every other Xid is critical: the GPU leaves the market.
pub const APPLICATION_XIDS: [u32; 6] = [13, 31, 43, 45, 68, 109];

/// The largest Xid code accepted from the API (NVIDIA's catalogue stays far below).
pub const MAX_XID: u32 = 999;

/// Whether Xid `xid` means the GPU failed (and not the program on it).
pub fn is_critical_xid(xid: u32) -> bool {
    xid != 0 && !APPLICATION_XIDS.contains(&xid)
}

/// Why a GPU is taken to be broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultCause {
    /// A critical Xid error event.
    Xid(u32),
    /// An uncorrectable (double-bit) ECC error event.
    DoubleBitEcc,
    /// A health query failed (the GPU cannot be read, or has uncorrected ECC errors).
    HealthQuery(String),
}

impl FaultCause {
    /// The Xid code, when an Xid event reported the fault (double-bit ECC errors are Xid 48).
    pub fn xid(&self) -> Option<u32> {
        match self {
            FaultCause::Xid(xid) => Some(*xid),
            FaultCause::DoubleBitEcc => Some(48),
            FaultCause::HealthQuery(_) => None,
        }
    }

    /// The cause in words, for events and logs.
    pub fn describe(&self) -> String {
        match self {
            FaultCause::Xid(xid) => format!("Xid {xid}"),
            FaultCause::DoubleBitEcc => "double-bit ECC error".into(),
            FaultCause::HealthQuery(why) => format!("health query failed: {why}"),
        }
    }
}

/// A GPU that failed, reported by its agent at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuFault {
    pub index: u32,
    pub uuid: String,
    pub cause: FaultCause,
}

/// Agent → coordinator about faults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultNote {
    /// Sent after each hello: whether this host's GPUs are simulated, so faults may be
    /// injected into them.
    Source {
        injectable: bool,
    },
    Fault(GpuFault),
}

/// Coordinator → agent about faults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultCommand {
    /// Simulated GPUs only: fail GPU `index` with Xid `xid`, as a real fault would.
    Inject { index: u32, xid: u32 },
    /// The operator cleared GPU `index`: a simulated GPU is healthy again; a real one is
    /// as healthy as NVML says.
    Clear { index: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_xids_are_not_gpu_faults() {
        for xid in APPLICATION_XIDS {
            assert!(!is_critical_xid(xid), "{xid}");
        }
        for xid in [48, 63, 64, 74, 79, 92, 94, 95, 119, 120] {
            assert!(is_critical_xid(xid), "{xid}");
        }
        assert!(!is_critical_xid(0));
        assert_eq!(FaultCause::DoubleBitEcc.xid(), Some(48));
        assert_eq!(FaultCause::Xid(79).describe(), "Xid 79");
    }
}
