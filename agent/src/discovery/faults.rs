//! GPU faults as the agent sees them (docs/architecture.md, "Faults and drills"): NVML's
//! critical Xid and double-bit ECC events, and health queries that fail, each become one
//! typed [`GpuFault`] that the link sends at once, not at the next heartbeat. A GPU is
//! reported once until the operator clears it. Injected faults on simulated GPUs go
//! through the same mapping ([`classify`]) as NVML's events.

use gpuspot_common::faults::{FaultCause, FaultCommand, GpuFault, is_critical_xid};
use nvml_wrapper::bitmasks::event::EventTypes;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// Where faults go: the link sends each as soon as a session is open.
pub type FaultSink = UnboundedSender<GpuFault>;
/// What the link reads them from.
pub type FaultFeed = UnboundedReceiver<GpuFault>;

/// How long one wait for NVML events lasts; health is queried between waits.
pub const WATCH_STEP: Duration = Duration::from_secs(1);

/// One NVML event as its event set delivers it (or as an injection makes it).
#[derive(Clone, Debug, PartialEq)]
pub struct NvmlEvent {
    pub index: u32,
    pub uuid: String,
    pub types: EventTypes,
    /// The Xid, for an Xid event.
    pub xid: Option<u64>,
}

/// The fault an event means, if any: a critical Xid (not one a program causes), or a
/// double-bit ECC error.
pub fn classify(event: &NvmlEvent) -> Option<GpuFault> {
    let cause = if event.types.contains(EventTypes::DOUBLE_BIT_ECC_ERROR) {
        FaultCause::DoubleBitEcc
    } else if event.types.contains(EventTypes::CRITICAL_XID_ERROR) {
        // An Xid NVML could not name is taken as critical: the GPU said something broke.
        let xid = event.xid.map_or(u32::MAX, |x| u32::try_from(x).unwrap_or(u32::MAX));
        if xid != u32::MAX && !is_critical_xid(xid) {
            return None;
        }
        FaultCause::Xid(xid)
    } else {
        return None;
    };
    Some(GpuFault { index: event.index, uuid: event.uuid.clone(), cause })
}

/// The GPUs reported failed and not cleared since: each is reported once.
#[derive(Clone, Debug, Default)]
pub struct FaultLatch(Arc<Mutex<BTreeSet<String>>>);

impl FaultLatch {
    /// Sends `fault` unless its GPU was reported already; false once the sink is gone.
    pub fn report(&self, fault: GpuFault, sink: &FaultSink) -> bool {
        let fresh =
            self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(fault.uuid.clone());
        if fresh {
            tracing::warn!(index = fault.index, uuid = %fault.uuid, cause = %fault.cause.describe(), "GPU fault");
            return sink.send(fault).is_ok();
        }
        !sink.is_closed()
    }

    /// The operator cleared the GPU: a new fault of it is reported again.
    pub fn clear(&self, uuid: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uuid);
    }
}

/// What a watcher reads: NVML's event set and health queries, or a fake in tests.
pub trait FaultSource {
    /// The next event within `timeout`, or None when none came.
    fn wait(&mut self, timeout: Duration) -> Result<Option<NvmlEvent>, String>;
    /// The GPUs whose health query fails now: index, UUID and why.
    fn failing(&mut self) -> Vec<(u32, String, String)>;
}

/// Reads `source` until `sink` closes: each event that means a fault, and each GPU whose
/// health query fails, is reported through `latch`. A source that fails stops the watch
/// (the heartbeat's health queries still take a broken GPU off the market).
pub fn watch(source: &mut dyn FaultSource, sink: &FaultSink, latch: &FaultLatch) {
    loop {
        let event = match source.wait(WATCH_STEP) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "GPU fault events unavailable; health is still checked at each heartbeat");
                return;
            }
        };
        let from_event = event.as_ref().and_then(classify);
        let from_health = source.failing().into_iter().map(|(index, uuid, why)| GpuFault {
            index,
            uuid,
            cause: FaultCause::HealthQuery(why),
        });
        for fault in from_event.into_iter().chain(from_health) {
            if !latch.report(fault, sink) {
                return;
            }
        }
        if sink.is_closed() {
            return;
        }
    }
}

/// Carries out the coordinator's fault command on this host's GPUs.
pub fn obey(discovery: &dyn super::GpuDiscovery, command: FaultCommand) {
    match command {
        FaultCommand::Inject { index, xid } => {
            if let Err(error) = discovery.inject_fault(index, xid) {
                tracing::warn!(index, xid, %error, "fault not injected");
            }
        }
        FaultCommand::Clear { index } => {
            tracing::info!(index, "GPU fault cleared by the operator");
            discovery.clear_fault(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// NVML as a script: events to deliver one per wait, and health answers per wait.
    struct FakeNvml {
        events: VecDeque<Option<NvmlEvent>>,
        failing: VecDeque<Vec<(u32, String, String)>>,
    }

    impl FaultSource for FakeNvml {
        fn wait(&mut self, _: Duration) -> Result<Option<NvmlEvent>, String> {
            self.events.pop_front().ok_or_else(|| "the driver went away".to_owned())
        }

        fn failing(&mut self) -> Vec<(u32, String, String)> {
            self.failing.pop_front().unwrap_or_default()
        }
    }

    fn xid(index: u32, xid: u64) -> NvmlEvent {
        NvmlEvent {
            index,
            uuid: format!("GPU-{index}"),
            types: EventTypes::CRITICAL_XID_ERROR,
            xid: Some(xid),
        }
    }

    fn run(
        events: Vec<Option<NvmlEvent>>,
        failing: Vec<Vec<(u32, String, String)>>,
    ) -> Vec<GpuFault> {
        let mut fake = FakeNvml { events: events.into(), failing: failing.into() };
        let (sink, mut feed) = tokio::sync::mpsc::unbounded_channel();
        watch(&mut fake, &sink, &FaultLatch::default());
        drop(sink);
        std::iter::from_fn(|| feed.try_recv().ok()).collect()
    }

    #[test]
    fn critical_xids_and_double_bit_ecc_are_faults_application_xids_are_not() {
        let dbe = NvmlEvent {
            index: 2,
            uuid: "GPU-2".into(),
            types: EventTypes::DOUBLE_BIT_ECC_ERROR,
            xid: None,
        };
        let faults = run(
            vec![Some(xid(0, 13)), Some(xid(1, 79)), None, Some(dbe), Some(xid(3, 43))],
            vec![],
        );
        let causes: Vec<(u32, FaultCause)> =
            faults.into_iter().map(|f| (f.index, f.cause)).collect();
        assert_eq!(causes, vec![(1, FaultCause::Xid(79)), (2, FaultCause::DoubleBitEcc)]);
        let other = NvmlEvent { types: EventTypes::PSTATE_CHANGE, ..xid(0, 79) };
        assert_eq!(classify(&other), None, "only Xid and ECC events are faults");
    }

    #[test]
    fn a_failing_health_query_is_reported_once_and_again_after_a_clear() {
        let why = || vec![(4, "GPU-4".to_owned(), "GPU is lost".to_owned())];
        let faults = run(vec![None, None, Some(xid(4, 79))], vec![why(), why(), why()]);
        assert_eq!(faults.len(), 1, "one report per GPU until cleared: {faults:?}");
        assert_eq!(faults[0].cause, FaultCause::HealthQuery("GPU is lost".into()));

        let (sink, mut feed) = tokio::sync::mpsc::unbounded_channel();
        let latch = FaultLatch::default();
        assert!(latch.report(xid_fault(5), &sink));
        assert!(latch.report(xid_fault(5), &sink));
        latch.clear("GPU-5");
        assert!(latch.report(xid_fault(5), &sink));
        assert_eq!(std::iter::from_fn(|| feed.try_recv().ok()).count(), 2);
    }

    fn xid_fault(index: u32) -> GpuFault {
        classify(&xid(index, 79)).expect("Xid 79 is critical")
    }
}
