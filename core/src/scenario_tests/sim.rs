//! The scenario driver: a [`Cluster`] on a [`ManualClock`], moved the way the actor moves
//! it — sleep until [`Cluster::poll_timeout`], call [`Cluster::handle_timeout`], take the
//! changes — with live agents heartbeating on their interval. Everything the core sent
//! and recorded is kept in a [`Log`], stamped with the simulated time, for assertions.

use super::fixtures;
use crate::Cluster;
use crate::Instance;
use crate::billing::{EntryKind, LedgerEntry};
use crate::events::{Event, EventKind};
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{
    CoordinatorMessage, GuestMetadata, GuestRuntime, InstanceReport, WorkloadState,
};
use gpuspot_common::{Clock, HostId, InstanceId, ManualClock, Money};
use std::collections::BTreeMap;

/// A run that wakes this often without the clock passing its target is stuck.
const MAX_WAKES: usize = 1_000_000;

/// One message the core handed to the actor to send.
pub struct Sent {
    pub at: DateTime<Utc>,
    pub host: HostId,
    pub message: CoordinatorMessage,
}

/// Everything taken from the cluster's change sets so far.
#[derive(Default)]
pub struct Log {
    pub sends: Vec<Sent>,
    pub events: Vec<Event>,
    pub ledger: Vec<LedgerEntry>,
}

pub struct Sim {
    pub cluster: Cluster,
    pub clock: ManualClock,
    pub log: Log,
    /// Hosts whose agents are alive, and when each heartbeats next.
    agents: BTreeMap<HostId, DateTime<Utc>>,
}

impl Sim {
    /// A fresh coordinator at [`fixtures::t0`], its first timeout handled (prices set).
    pub fn new() -> Self {
        let clock = ManualClock::new(fixtures::t0());
        let cluster = Cluster::new(fixtures::pools(), fixtures::timers());
        let mut sim = Self { cluster, clock, log: Log::default(), agents: BTreeMap::new() };
        sim.run_until(fixtures::t0());
        sim
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Calls into the core at the current time and takes its changes, as the actor does.
    pub fn act<R>(&mut self, operation: impl FnOnce(&mut Cluster, DateTime<Utc>) -> R) -> R {
        let now = self.now();
        let result = operation(&mut self.cluster, now);
        self.collect();
        result
    }

    /// An agent says hello with `gpus` H100s and keeps heartbeating from now on.
    pub fn connect(&mut self, name: &str, gpus: u32) -> HostId {
        let host = HostId::from(name);
        let inventory = fixtures::inventory(name, gpus);
        self.act(|c, now| {
            c.host_connected(&host, &inventory, "test", &[GuestRuntime::Process], &[], now)
        });
        self.agents.insert(host.clone(), self.now() + fixtures::HEARTBEAT);
        host
    }

    /// The host's link drops and its agent goes silent (no more heartbeats).
    pub fn silence(&mut self, host: &HostId) {
        self.agents.remove(host);
        self.act(|c, now| c.host_disconnected(host, now));
    }

    /// The agent on the instance's host reports its workload's state.
    pub fn report(&mut self, id: &InstanceId, state: WorkloadState) {
        let host = self.instance(id).host_id().cloned().expect("a placed instance");
        let report = InstanceReport { instance_id: id.clone(), state };
        self.act(|c, now| c.instance_update(&host, &report, now));
    }

    pub fn instance(&self, id: &InstanceId) -> &Instance {
        self.cluster.instance(id).expect("a known instance")
    }

    /// Moves the clock to `until`, waking at every moment the core or a live agent has
    /// something to do (never past `until`), as the actor's single timer would.
    pub fn run_until(&mut self, until: DateTime<Utc>) {
        assert!(until >= self.now(), "time does not run backwards");
        for _ in 0..MAX_WAKES {
            let next_heartbeat = self.agents.values().min().copied();
            let next = [self.cluster.poll_timeout(), next_heartbeat].into_iter().flatten().min();
            let Some(at) = next.filter(|at| *at <= until) else {
                self.clock.set(until);
                return;
            };
            let at = at.max(self.now());
            self.clock.set(at);
            self.heartbeats_due(at);
            if self.cluster.poll_timeout().is_some_and(|due| due <= at) {
                self.act(|c, now| c.handle_timeout(now));
                let next = self.cluster.poll_timeout();
                assert!(
                    next.is_none_or(|n| n > at),
                    "handle_timeout({at}) left work due at {next:?}"
                );
            }
        }
        panic!("the clock never reached {until}: more than {MAX_WAKES} wakes");
    }

    fn heartbeats_due(&mut self, at: DateTime<Utc>) {
        let due: Vec<HostId> =
            self.agents.iter().filter(|(_, next)| **next <= at).map(|(h, _)| h.clone()).collect();
        for host in due {
            self.act(|c, now| c.heartbeat(&host, &[], now));
            self.agents.insert(host, at + fixtures::HEARTBEAT);
        }
    }

    fn collect(&mut self) {
        let at = self.now();
        let changes = self.cluster.take_changes();
        let sends = changes.sends.into_iter().map(|(host, message)| Sent { at, host, message });
        self.log.sends.extend(sends);
        self.log.events.extend(changes.events);
        self.log.ledger.extend(changes.ledger);
    }
}

impl Log {
    /// Events of this kind about this instance, oldest first.
    pub fn events(&self, kind: EventKind, id: &InstanceId) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.kind == kind && e.instance_id.as_ref() == Some(id))
            .collect()
    }

    /// Events of this kind about this host, oldest first.
    pub fn host_events(&self, kind: EventKind, host: &HostId) -> Vec<&Event> {
        self.events.iter().filter(|e| e.kind == kind && e.host_id.as_ref() == Some(host)).collect()
    }

    /// When the instance's agent was told to stop it, and with what reason.
    pub fn stops(&self, id: &InstanceId) -> Vec<(DateTime<Utc>, &str)> {
        self.sends
            .iter()
            .filter_map(|s| match &s.message {
                CoordinatorMessage::Stop { instance_id, reason, .. } if instance_id == id => {
                    Some((s.at, reason.as_str()))
                }
                _ => None,
            })
            .collect()
    }

    /// Where and when the instance was started (the Start messages for it).
    pub fn starts(&self, id: &InstanceId) -> Vec<(DateTime<Utc>, &HostId)> {
        self.guest_views(id)
            .into_iter()
            .filter(|v| v.2)
            .map(|(at, host, _, _)| (at, host))
            .collect()
    }

    /// The metadata its guest was sent (with a Start or on its own), oldest first.
    pub fn metadata(&self, id: &InstanceId) -> Vec<(DateTime<Utc>, &GuestMetadata)> {
        self.guest_views(id).into_iter().map(|(at, _, _, md)| (at, md)).collect()
    }

    /// The prices the guest was shown, with when each began.
    pub fn shown_prices(&self, id: &InstanceId) -> Vec<(DateTime<Utc>, Money)> {
        let mut prices: Vec<(DateTime<Utc>, Money)> = Vec::new();
        for (at, md) in self.metadata(id) {
            let price = md.price.expect("a placed instance has a price");
            if prices.last().is_none_or(|(_, last)| *last != price) {
                prices.push((at, price));
            }
        }
        prices
    }

    /// (when, to which host, whether it was a Start, the metadata) for each message that
    /// carried the instance's metadata.
    fn guest_views(&self, id: &InstanceId) -> Vec<(DateTime<Utc>, &HostId, bool, &GuestMetadata)> {
        self.sends
            .iter()
            .filter_map(|s| match &s.message {
                CoordinatorMessage::Start(a) => Some((s.at, &s.host, true, &a.metadata)),
                CoordinatorMessage::Metadata(md) => Some((s.at, &s.host, false, md)),
                _ => None,
            })
            .filter(|(_, _, _, md)| &md.instance_id == id)
            .collect()
    }

    /// What the ledger charged for this instance, in micro-units (positive).
    pub fn charged(&self, id: &InstanceId) -> i64 {
        self.ledger
            .iter()
            .filter(|e| e.kind == EntryKind::Charge && e.instance_id.as_ref() == Some(id))
            .map(|e| -e.amount.micros())
            .sum()
    }
}
