//! Host ports for guests (DESIGN §18). A guest's ports are drawn at random from the free
//! ports of its host's `[ports]` range, so that a guest squatting the low end of the range
//! (or a second cluster on the same machine) does not block every later instance. The agent
//! checks them before it starts the guest; when another program holds one it refuses the
//! start, and that port is marked busy on that host for [`BUSY_FOR`] and the start is sent
//! again with other ports. After [`MAX_TRIES`] refusals the instance goes back to the queue
//! and keeps off that host for [`RETRY_AFTER`]. A port never fails a request.
//!
//! [`PortBook`] is the bookkeeping, given `now`; the `impl Cluster` applies it.

use super::cluster::Cluster;
use super::model::{InstanceRequest, InstanceState};
use super::registry::HostNetwork;
use super::serving;
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::protocol::{CoordinatorMessage, InstanceReport, StartRefusal, WorkloadState};
use gpuspot_common::{HostId, InstanceId};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How long a port another program held stays out of the draw on its host.
pub const BUSY_FOR: Duration = Duration::minutes(10);
/// Refused starts of one placement before the instance goes back to the queue.
pub const MAX_TRIES: u32 = 8;
/// How long an instance whose starts were refused that often keeps off that host.
pub const RETRY_AFTER: Duration = Duration::seconds(5);

/// Busy ports per host, refused starts per instance, and the draw.
#[derive(Debug)]
pub struct PortBook {
    /// Host → port → busy until.
    busy: HashMap<HostId, BTreeMap<u16, DateTime<Utc>>>,
    /// Refused starts of an instance's current placement, and when the last came.
    tries: HashMap<InstanceId, (u32, DateTime<Utc>)>,
    /// Instances kept off a host, until when.
    kept_off: HashMap<InstanceId, (HostId, DateTime<Utc>)>,
    rng: StdRng,
}

impl Default for PortBook {
    fn default() -> Self {
        Self::with_rng(StdRng::from_os_rng())
    }
}

/// What to do about a refused start.
#[derive(Debug, PartialEq, Eq)]
enum Retry {
    /// Send the start again with these ports.
    Ports(Vec<u16>),
    /// Back to the queue, waiting with this reason.
    Requeue(String),
}

impl PortBook {
    pub fn with_rng(rng: StdRng) -> Self {
        Self { busy: HashMap::new(), tries: HashMap::new(), kept_off: HashMap::new(), rng }
    }

    /// `count` random ports of the host's range that neither `held` (other instances') nor
    /// a busy mark covers; None when there are not that many.
    pub fn choose(
        &mut self,
        host: &HostId,
        network: &HostNetwork,
        held: &BTreeSet<u16>,
        count: usize,
        now: DateTime<Utc>,
    ) -> Option<Vec<u16>> {
        let busy = self.busy.get(host);
        let is_busy = |port: &u16| busy.and_then(|b| b.get(port)).is_some_and(|until| *until > now);
        let (first, last) = network.ports;
        let ports = (first..=last)
            .filter(|p| !held.contains(p) && !is_busy(p))
            .choose_multiple(&mut self.rng, count);
        (ports.len() == count).then_some(ports)
    }

    /// Whether the instance keeps off this host now.
    pub fn kept_off(&self, id: &InstanceId, host: &HostId, now: DateTime<Utc>) -> bool {
        self.kept_off.get(id).is_some_and(|(h, until)| h == host && *until > now)
    }

    /// A start was refused for `port`: the port is busy on the host, and the instance
    /// tries again with other ports, or (after [`MAX_TRIES`]) keeps off the host a while.
    pub fn refused(
        &mut self,
        id: &InstanceId,
        host: &HostId,
        port: u16,
        now: DateTime<Utc>,
    ) -> u32 {
        self.busy.entry(host.clone()).or_default().insert(port, now + BUSY_FOR);
        let tries = self.tries.entry(id.clone()).or_insert((0, now));
        *tries = (tries.0 + 1, now);
        if tries.0 < MAX_TRIES {
            return tries.0;
        }
        let tries = tries.0;
        self.tries.remove(id);
        self.kept_off.insert(id.clone(), (host.clone(), now + RETRY_AFTER));
        tries
    }

    /// The next moment a kept-off instance may go back to its host or a busy port is free
    /// to draw again: waiting requests get another look then.
    pub fn next_retry(&self) -> Option<DateTime<Utc>> {
        let kept_off = self.kept_off.values().map(|(_, until)| *until);
        let busy = self.busy.values().flat_map(|ports| ports.values().copied());
        kept_off.chain(busy).min()
    }

    /// Forgets what is over by `now`; true when anything was (the queue looks again).
    pub fn expire(&mut self, now: DateTime<Utc>) -> bool {
        let before = self.kept_off.len() + self.busy.values().map(BTreeMap::len).sum::<usize>();
        self.kept_off.retain(|_, (_, until)| *until > now);
        self.tries.retain(|_, (_, last)| *last + BUSY_FOR > now);
        for ports in self.busy.values_mut() {
            ports.retain(|_, until| *until > now);
        }
        self.busy.retain(|_, ports| !ports.is_empty());
        let after = self.kept_off.len() + self.busy.values().map(BTreeMap::len).sum::<usize>();
        after < before
    }

    /// The host's busy ports now, for a waiting reason.
    fn busy_on(&self, host: &HostId, now: DateTime<Utc>) -> Vec<u16> {
        let busy = self.busy.get(host).into_iter().flatten();
        busy.filter(|(_, until)| **until > now).map(|(port, _)| *port).collect()
    }
}

impl Cluster {
    /// Random free ports of the host's range for a request being placed there, or why
    /// there are none now (the request then waits).
    pub(super) fn ports_for(
        &mut self,
        id: &InstanceId,
        host_id: &HostId,
        request: &InstanceRequest,
        now: DateTime<Utc>,
    ) -> Result<Vec<u16>, String> {
        let Some(network) = self.registry.get(host_id).map(|h| h.network.clone()) else {
            return Ok(Vec::new());
        };
        if self.ports.kept_off(id, host_id, now) {
            return Err(self.ports_waiting_reason(host_id, now));
        }
        let held: BTreeSet<u16> = self
            .held_on(host_id)
            .into_iter()
            .filter(|i| i.id != *id)
            .filter_map(|i| i.placement())
            .flat_map(|p| p.host_ports.iter().copied())
            .collect();
        let needed = serving::ports_needed(&request.ports, request.image.is_some());
        self.ports
            .choose(host_id, &network, &held, needed, now)
            .ok_or_else(|| self.ports_waiting_reason(host_id, now))
    }

    fn ports_waiting_reason(&self, host_id: &HostId, now: DateTime<Utc>) -> String {
        let busy = self.ports.busy_on(host_id, now);
        let host_id = self.registry.hostname(host_id);
        if busy.is_empty() {
            return format!(
                "waiting for free host ports on host {host_id}: its guests hold its [ports] range"
            );
        }
        let shown: Vec<String> = busy.iter().take(8).map(u16::to_string).collect();
        let more = if busy.len() > shown.len() { ", …" } else { "" };
        format!(
            "waiting for free host ports on host {host_id}: programs outside gpuspot hold \
             {} of its [ports] range ({}{more})",
            busy.len(),
            shown.join(", ")
        )
    }

    /// An agent did not start an instance because another program holds one of its host
    /// ports: another port is tried, or the instance waits in the queue. It never fails.
    pub fn start_refused(
        &mut self,
        host_id: &HostId,
        id: &InstanceId,
        code: StartRefusal,
        now: DateTime<Utc>,
    ) {
        let StartRefusal::PortBusy { port } = code;
        let Some(instance) = self.instances.get(id) else { return };
        if instance.host_id() != Some(host_id) {
            return;
        }
        match instance.state() {
            InstanceState::Scheduled => {}
            // Stopped or noticed before it ever ran: it runs nothing there.
            InstanceState::Stopping | InstanceState::TerminationScheduled
                if instance.started_at().is_none() =>
            {
                let state = WorkloadState::Stopped;
                return self.instance_update(
                    host_id,
                    &InstanceReport { instance_id: id.clone(), state },
                    now,
                );
            }
            _ => return,
        }
        let tries = self.ports.refused(id, host_id, port, now);
        let request = instance.request.clone();
        let retry = match self.ports_for(id, host_id, &request, now) {
            Ok(ports) => Retry::Ports(ports),
            Err(reason) => Retry::Requeue(reason),
        };
        tracing::info!(%host_id, instance = %id, port, tries, ?retry, "start refused: host port busy");
        match retry {
            Retry::Ports(ports) => self.restart_with_ports(host_id, id, ports),
            Retry::Requeue(reason) => {
                self.transition(id, now, |lifecycle| lifecycle.unplace(reason));
                self.settle(now);
            }
        }
    }

    /// The same placement with other host ports, sent to the agent again.
    fn restart_with_ports(&mut self, host_id: &HostId, id: &InstanceId, ports: Vec<u16>) {
        let updated = self.instances.update(id, |i| i.lifecycle_mut().set_host_ports(ports));
        if !matches!(updated, Some(Ok(()))) {
            return;
        }
        self.routes_changed = true;
        if let Some(assignment) = self.assignment(id) {
            self.send(host_id, CoordinatorMessage::Start(assignment));
        }
    }

    /// What the port book has to say to the core's timer.
    pub(super) fn next_port_retry(&self) -> Option<DateTime<Utc>> {
        self.ports.next_retry()
    }

    pub(super) fn expire_ports(&mut self, now: DateTime<Utc>) {
        if self.ports.expire(now) {
            self.reactions.place_queue = true;
        }
    }
}

#[cfg(test)]
#[path = "ports_tests.rs"]
mod tests;
