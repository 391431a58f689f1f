//! NVML as a [`FaultSource`]: an event set registered for critical Xid and double-bit ECC
//! events on every GPU that supports them, and a health query of each GPU between waits.
//! It runs on a thread of its own (a wait blocks in the driver), with its own NVML handle.

use super::faults::{FaultLatch, FaultSink, FaultSource, NvmlEvent, watch};
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{EventSet, Nvml};
use std::collections::BTreeSet;
use std::time::Duration;

/// The events that mean a GPU failed.
pub const FAULT_EVENTS: EventTypes =
    EventTypes::CRITICAL_XID_ERROR.union(EventTypes::DOUBLE_BIT_ECC_ERROR);

/// What one GPU offers the fault watch, as `gpuspot-agent gpu-check` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuWatch {
    pub index: u32,
    pub uuid: String,
    /// Which fault events NVML delivers for it (none: only health queries catch faults).
    pub events: Vec<&'static str>,
    /// Err: why its health query fails now.
    pub health: Result<(), String>,
}

struct NvmlSource<'a> {
    nvml: &'a Nvml,
    set: Option<EventSet<'a>>,
    gpus: Vec<(u32, String)>,
}

impl FaultSource for NvmlSource<'_> {
    fn wait(&mut self, timeout: Duration) -> Result<Option<NvmlEvent>, String> {
        let Some(set) = &self.set else {
            std::thread::sleep(timeout);
            return Ok(None);
        };
        let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        match set.wait(millis) {
            Ok(data) => {
                let index = data.device.index().unwrap_or(u32::MAX);
                let uuid = data.device.uuid().unwrap_or_else(|_| format!("GPU-unreadable-{index}"));
                let xid = match data.event_data {
                    Some(XidError::Value(xid)) => Some(xid),
                    _ => None,
                };
                Ok(Some(NvmlEvent { index, uuid, types: data.event_type, xid }))
            }
            Err(NvmlError::Timeout) => Ok(None),
            // A GPU that fell off the bus can break the event set: its health query still
            // tells, so the watch goes on with health queries alone.
            Err(error) => {
                tracing::warn!(%error, "NVML fault events stopped; health queries go on");
                self.set = None;
                Ok(None)
            }
        }
    }

    fn failing(&mut self) -> Vec<(u32, String, String)> {
        let nvml = self.nvml;
        self.gpus
            .iter()
            .filter_map(|(index, uuid)| {
                health(nvml, *index).err().map(|why| (*index, uuid.clone(), why))
            })
            .collect()
    }
}

/// Starts the watch thread: NVML's fault events and health queries into `sink`.
pub fn spawn(sink: FaultSink, latch: FaultLatch) {
    let spawned = std::thread::Builder::new().name("gpu-faults".into()).spawn(move || {
        let nvml = match Nvml::init() {
            Ok(nvml) => nvml,
            Err(error) => return tracing::warn!(%error, "GPU fault watch not started"),
        };
        let (mut source, _) = source(&nvml);
        watch(&mut source, &sink, &latch);
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "GPU fault watch not started");
    }
}

/// Registers every GPU that supports fault events in one event set; a GPU that refuses
/// is left out (NVML frees the whole set on a refusal, so the set is built again without
/// it). Also returns the GPUs left out.
fn source(nvml: &Nvml) -> (NvmlSource<'_>, BTreeSet<u32>) {
    let gpus = inspect(nvml);
    let mut left_out = BTreeSet::new();
    let set = loop {
        match register(nvml, &gpus, &left_out) {
            Ok(set) => break set,
            Err(index) => left_out.insert(index),
        };
    };
    let gpus = gpus.into_iter().map(|g| (g.index, g.uuid)).collect();
    (NvmlSource { nvml, set, gpus }, left_out)
}

/// One event set for the GPUs not left out (None: NVML has no event sets here); Err names
/// the GPU that refused.
fn register<'a>(
    nvml: &'a Nvml,
    gpus: &[GpuWatch],
    left_out: &BTreeSet<u32>,
) -> Result<Option<EventSet<'a>>, u32> {
    let Ok(mut set) = nvml.create_event_set() else { return Ok(None) };
    for gpu in gpus.iter().filter(|g| !g.events.is_empty() && !left_out.contains(&g.index)) {
        let device = nvml.device_by_index(gpu.index).map_err(|_| gpu.index)?;
        let wanted = device.supported_event_types().unwrap_or(EventTypes::empty()) & FAULT_EVENTS;
        set = device.register_events(wanted, set).map_err(|error| {
            tracing::warn!(index = gpu.index, error = %error.error, "fault events not registered");
            gpu.index
        })?;
    }
    Ok(Some(set))
}

/// Every GPU's fault event support and health, read through the same NVML calls the
/// watch makes.
pub fn inspect(nvml: &Nvml) -> Vec<GpuWatch> {
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .map(|index| {
            let device = nvml.device_by_index(index);
            let uuid = device.as_ref().ok().and_then(|d| d.uuid().ok());
            let supported = device.as_ref().ok().and_then(|d| d.supported_event_types().ok());
            let supported = supported.unwrap_or(EventTypes::empty());
            let events = [
                (EventTypes::CRITICAL_XID_ERROR, "critical_xid"),
                (EventTypes::DOUBLE_BIT_ECC_ERROR, "double_bit_ecc"),
            ];
            let events = events.into_iter().filter(|(e, _)| supported.contains(*e)).map(|(_, n)| n);
            GpuWatch {
                index,
                uuid: uuid.unwrap_or_else(|| format!("GPU-unreadable-{index}")),
                events: events.collect(),
                health: health(nvml, index),
            }
        })
        .collect()
}

/// Err with the reason when GPU `index` cannot be read or has uncorrected ECC errors.
fn health(nvml: &Nvml, index: u32) -> Result<(), String> {
    let device = nvml.device_by_index(index).map_err(|e| format!("cannot open: {e}"))?;
    device.uuid().map_err(|e| format!("cannot read its UUID: {e}"))?;
    if super::nvml::ecc_healthy(&device, index) {
        Ok(())
    } else {
        Err("uncorrected ECC errors (or the ECC query failed)".into())
    }
}

/// `gpuspot-agent gpu-check`: the fault watch's view of this host, through the same calls
/// (the event set is registered as the watch registers it); no fault is injected.
pub fn check() -> Result<Vec<GpuWatch>, super::DiscoveryError> {
    let nvml = Nvml::init().map_err(|e| super::DiscoveryError::NvmlUnavailable(e.to_string()))?;
    let (registered, left_out) = source(&nvml);
    let mut gpus = inspect(&nvml);
    for gpu in gpus.iter_mut() {
        if registered.set.is_none() || left_out.contains(&gpu.index) {
            gpu.events.clear();
        }
    }
    Ok(gpus)
}

/// One line per GPU: `GPU 0 GPU-… events=critical_xid,double_bit_ecc health=ok`.
pub fn describe(gpu: &GpuWatch) -> String {
    let events = if gpu.events.is_empty() { "none".to_owned() } else { gpu.events.join(",") };
    let health = match &gpu.health {
        Ok(()) => "ok".to_owned(),
        Err(why) => format!("failing ({why})"),
    };
    format!("GPU {} {} events={events} health={health}", gpu.index, gpu.uuid)
}
