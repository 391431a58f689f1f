//! Taking a host out of service (docs/contracts.md#operating-hosts): a cordon stops new placements
//! on it; a drain also gives every instance there a termination with reason `host_maintenance` at
//! now + min(its notice, the deadline), so that deployments replace them elsewhere while they
//! finish. Uncordoning opens the host again. The host's shown state follows
//! ([`super::registry::Host::shown_state`]).

use super::cluster::Cluster;
use super::events::payloads::HostNamed;
use super::events::{EventData, EventKind};
use super::model::{EndReason, InstanceState};
use super::registry::Maintenance;
use chrono::{DateTime, Utc};
use gpuspot_common::{HostId, InstanceId};
use std::time::Duration;

impl Cluster {
    /// No new placements on the host; None if there is no such host.
    pub fn cordon_host(&mut self, id: &HostId, now: DateTime<Utc>) -> Option<()> {
        self.set_maintenance(id, Maintenance::Cordoned, EventKind::HostCordoned, now)
    }

    /// The host takes placements again (a drain's notices stand).
    pub fn uncordon_host(&mut self, id: &HostId, now: DateTime<Utc>) -> Option<()> {
        self.set_maintenance(id, Maintenance::None, EventKind::HostUncordoned, now)
    }

    /// Cordons the host and notices everything on it, within `deadline` at the latest.
    /// Returns how many instances were noticed.
    pub fn drain_host(
        &mut self,
        id: &HostId,
        deadline: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Option<usize> {
        self.set_maintenance(id, Maintenance::Draining, EventKind::HostDraining, now)?;
        let on_host: Vec<InstanceId> = self
            .held_on(id)
            .into_iter()
            .filter(|i| {
                let state = i.state();
                matches!(state, InstanceState::Scheduled | InstanceState::Running)
                    || state == InstanceState::TerminationScheduled
            })
            .map(|i| i.id.clone())
            .collect();
        // Already noticed ones (a drill, a reclaim) end by the drain's deadline too.
        for instance in &on_host {
            self.give_notice_within(instance, EndReason::HostMaintenance, deadline, now);
        }
        self.settle(now);
        Some(on_host.len())
    }

    fn set_maintenance(
        &mut self,
        id: &HostId,
        maintenance: Maintenance,
        kind: EventKind,
        now: DateTime<Utc>,
    ) -> Option<()> {
        let host = self.registry.get_mut(id)?;
        host.set_maintenance(maintenance);
        let hostname = host.hostname.clone();
        self.touch_host(id);
        let data = EventData::HostNamed(HostNamed { hostname });
        self.event(now, kind, None, Some(id), data);
        self.place_queued(now);
        self.settle(now);
        Some(())
    }
}
