//! Deleting a host through the cluster actor (`DELETE /v1/hosts/{id}`): the core forgets
//! it and queues the stops and the refusal for its agent, which leave after the commit
//! like every other message. A hello from a host deleted while it was being checked is
//! turned away here.

use super::cluster::ClusterActor;
use super::messages::{AgentEvent, ApiError, ApiReply};
use crate::core::model::EndReason;
use crate::core::registry::removal::revoked_reason;
use gpuspot_common::HostId;
use gpuspot_common::protocol::CoordinatorMessage;

impl ClusterActor {
    pub(super) fn delete_host(&mut self, id: HostId) -> Result<ApiReply, ApiError> {
        let now = self.clock.now();
        let host = self
            .core
            .delete_host(&id, now)
            .ok_or_else(|| ApiError::NotFound(format!("host {id}")))?;
        tracing::info!(host_id = %id, hostname = %host.hostname, "host deleted by the operator; its certificate is revoked");
        Ok(ApiReply::Host(Box::new(host)))
    }

    /// A hello whose certificate was checked just before its host was deleted (the
    /// revocation was not committed yet): the agent is told to stop what it reported and
    /// why it is refused, and the event goes no further. Others pass through.
    pub(super) fn turn_away_forgotten(&self, event: AgentEvent) -> Option<AgentEvent> {
        let AgentEvent::Connected { host_id, outbox, reports, .. } = &event else {
            return Some(event);
        };
        if !self.core.registry().is_forgotten(host_id) {
            return Some(event);
        }
        tracing::warn!(%host_id, "refusing a hello from a deleted host");
        let kill_timeout_ms = self.core.timers().kill_timeout.as_millis() as u64;
        for report in reports {
            let _ = outbox.send(Box::new(CoordinatorMessage::Stop {
                instance_id: report.instance_id.clone(),
                reason: EndReason::HostLost.as_str().into(),
                kill_timeout_ms,
            }));
        }
        let _ =
            outbox.send(Box::new(CoordinatorMessage::Refused { reason: revoked_reason(host_id) }));
        None
    }
}
