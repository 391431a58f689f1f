//! Deleting a host (`DELETE /v1/hosts/{id}`, docs/contracts.md#limits): the operator forgets it for
//! good. What it runs is stopped by its agent (now if linked, else at its next hello) and ended as
//! `host_lost` at once, so deployments replace it elsewhere as for a lost host; the host leaves the
//! registry and, with the same commit, the store, which revokes its certificate. The agent is then
//! told why it is refused, and every later hello is refused the same way.

use crate::cluster::Cluster;
use crate::events::payloads::HostNamed;
use crate::events::{EventData, EventKind};
use crate::model::EndReason;
use crate::registry::Host;
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{CoordinatorMessage, RefusalCode};
use gpuspot_common::{HostId, InstanceId};

/// What a deleted host's agent is told, now and at every later hello. It must not say
/// "unknown host certificate": agents answer that by joining again with their token.
pub fn revoked_reason(host_id: &HostId) -> String {
    format!("host certificate revoked: the operator deleted host {host_id}")
}

impl Cluster {
    /// Forgets `id`; the host as it was, None when there is no such host.
    pub fn delete_host(&mut self, id: &HostId, now: DateTime<Utc>) -> Option<Host> {
        // Out of the registry first, so that no replacement is placed back on it.
        let host = self.registry.remove(id, now)?;
        let on_host: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|i| i.host_id() == Some(id) && !i.is_terminated())
            .map(|i| i.id.clone())
            .collect();
        let detail = format!("the operator deleted host {id}");
        // Whatever its state says, a link may still be up (a host marked lost whose
        // connection has not timed out): the messages go wherever one is, and are dropped
        // where none is. A host without one hears it at its next hello.
        for instance_id in on_host {
            self.send_stop(id, &instance_id, EndReason::HostLost.into());
            self.finish(&instance_id, EndReason::HostLost, Some(detail.clone()), now);
        }
        // After the stops, on the same stream: the session ends once it is written.
        let reason = revoked_reason(id);
        self.send(id, CoordinatorMessage::Refused { code: RefusalCode::Revoked, reason });
        let data = EventData::HostNamed(HostNamed { hostname: host.hostname.clone() });
        self.event(now, EventKind::HostDeleted, None, Some(id), data);
        self.settle(now);
        Some(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceState;
    use crate::accounts::OPERATOR;
    use crate::deployment::Mode;
    use crate::deployment_tests::{cluster, new, start_scheduled, t};
    use gpuspot_common::AccountId;

    #[test]
    fn a_deleted_host_stops_its_work_leaves_and_its_replica_moves() {
        let mut c = cluster(&[("h-a", 1), ("h-b", 1)]);
        let d = c
            .create_deployment(AccountId::from(OPERATOR), new(Mode::Replicaset, 1, 0, 0), t(0))
            .unwrap();
        start_scheduled(&mut c, t(0));
        let first = c.deployment_instances(&d)[0].clone();
        let (gone, other) = match first.host_id().map(HostId::as_str) {
            Some("h-a") => (HostId::from("h-a"), HostId::from("h-b")),
            _ => (HostId::from("h-b"), HostId::from("h-a")),
        };
        c.take_changes();

        let host = c.delete_host(&gone, t(5)).expect("the host was known");
        assert_eq!(host.id, gone);
        assert!(c.registry().get(&gone).is_none());
        assert!(c.registry().is_forgotten(&gone));
        let ended = c.instance(&first.id).unwrap();
        assert_eq!(ended.state(), InstanceState::Terminated);
        assert_eq!(ended.termination_reason(), Some(EndReason::HostLost));
        assert_eq!(ended.reason(), Some(&*format!("host_lost: the operator deleted host {gone}")));
        let replacement: Vec<_> = c
            .deployment_instances(&d)
            .into_iter()
            .filter(|i| !i.is_terminated())
            .cloned()
            .collect();
        assert_eq!(replacement.len(), 1);
        assert_eq!(replacement[0].host_id(), Some(&other), "replaced on the other host");

        let changes = c.take_changes();
        assert_eq!(changes.removed_hosts.len(), 1);
        assert_eq!(changes.removed_hosts[0].id, gone);
        assert!(changes.hosts.iter().all(|h| h.id != gone), "a deleted host is not upserted");
        let to_gone: Vec<_> = changes.sends.iter().filter(|(h, _)| *h == gone).collect();
        assert!(
            matches!(&to_gone[0].1, CoordinatorMessage::Stop { instance_id, .. } if *instance_id == first.id)
        );
        assert!(
            matches!(&to_gone[1].1, CoordinatorMessage::Refused { code: RefusalCode::Revoked, reason } if reason.contains("revoked"))
        );
        assert!(changes.events.iter().any(|e| e.kind == EventKind::HostDeleted));
        assert!(c.delete_host(&gone, t(6)).is_none(), "deleting twice finds nothing");
    }
}
