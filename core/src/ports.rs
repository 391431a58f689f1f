//! Host ports for guests (docs/contracts.md#serving). A guest's ports are drawn at random from the
//! free ports of its host's `[ports]` range, so that a guest squatting the low end of the range (or
//! a second cluster on the same machine) does not block every later instance. The agent checks them
//! before it starts the guest; when another program holds one it refuses the start, and that port
//! is marked busy on that host for [`BUSY_FOR`] and the start is sent again with other ports. After
//! [`MAX_TRIES`] refusals the instance goes back to the queue and keeps off that host for
//! [`RETRY_AFTER`]. A port never fails a request.
//!
//! [`PortBook`] is the bookkeeping, given `now`; the `impl Cluster` applies it.

use super::cluster::Cluster;
use super::model::{InstanceRequest, InstanceState};
use super::serving;
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{CoordinatorMessage, InstanceReport, StartRefusal, WorkloadState};
use gpuspot_common::{HostId, InstanceId};
use std::collections::BTreeSet;

use super::port_book::Retry;
pub use super::port_book::{BUSY_FOR, MAX_TRIES, PortBook, RETRY_AFTER};

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
