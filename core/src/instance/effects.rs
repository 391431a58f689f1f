//! What a lifecycle transition asks of the cluster, and the refusal of a transition from a
//! state it may not start in.

use crate::events::EventData;
use crate::events::EventKind;
use crate::model::{EndReason, InstanceState};
use gpuspot_common::HostId;

/// Carried out by the cluster after the transition, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Log this event about the instance.
    Event(EventKind, EventData),
    /// Tell the host to run the instance (its assignment).
    Start { host: HostId },
    /// Tell the host to stop it (when the host is connected; else at its next hello).
    Stop { host: HostId, reason: EndReason },
    /// Send the guest its current metadata.
    Metadata,
    /// Free the instance's units on the host; the queue gets another look.
    Release { host: HostId },
    /// Its promise of reclaimed units on the host ended (docs/contracts.md#market): others may take
    /// them.
    ForgetPromise { host: HostId },
    /// Its deployment, if any, should look again (a replacement may be due).
    Reconcile,
    /// It ended: its deployment counts the run, then looks again.
    Ended,
}

/// A transition asked of a state it may not start from; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an instance cannot {transition} while {}", from.as_str())]
pub struct WrongState {
    pub transition: &'static str,
    pub from: InstanceState,
}
