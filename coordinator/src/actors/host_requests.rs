//! Deleting a host through the cluster actor (`DELETE /v1/hosts/{id}`): the core forgets
//! it and queues the stops and the refusal for its agent, which leave after the commit
//! like every other message. A hello from a host deleted while it was being checked is
//! turned away here. A host that joins is recorded here too ([`HostJoined`]).

use super::cluster::ClusterActor;
use super::failure::{Failure, Missing};
use super::messages::{AgentEvent, HostJoined};
use crate::core::Host;
use crate::core::host_removal::revoked_reason;
use crate::core::model::EndReason;
use actix::{Context, Handler, ResponseFuture};
use gpuspot_common::HostId;
use gpuspot_common::protocol::{CoordinatorMessage, RefusalCode};

impl ClusterActor {
    /// Answers with the host as it was, GPUs still naming the instances that were stopped.
    pub(super) fn delete_host(&mut self, id: HostId) -> Result<Host, Failure> {
        let Some(host) = self.core.delete_host(&id, self.now) else {
            return Err(Failure::NotFound(Missing::Host(id)));
        };
        tracing::info!(host_id = %id, hostname = %host.hostname, "host deleted by the operator; its certificate is revoked");
        Ok(host)
    }

    pub(super) fn host_maintenance(
        &mut self,
        id: HostId,
        action: super::messages::HostAction,
    ) -> Result<Host, Failure> {
        use super::messages::HostAction;
        let now = self.now;
        let done = match action {
            HostAction::Cordon => self.core.cordon_host(&id, now),
            HostAction::Uncordon => self.core.uncordon_host(&id, now),
            HostAction::Drain(deadline) => {
                self.core.drain_host(&id, deadline, now).map(|noticed| {
                    tracing::info!(host_id = %id, noticed, "host draining for maintenance");
                })
            }
        };
        done.and_then(|()| self.core.registry().get(&id).cloned())
            .ok_or(Failure::NotFound(Missing::Host(id)))
    }

    /// A hello whose certificate was checked just before its host was deleted (the
    /// revocation was not committed yet): the agent is told to stop what it reported and
    /// why it is refused, and the event goes no further. Others pass through.
    pub(super) fn turn_away_forgotten(&self, event: AgentEvent) -> Option<AgentEvent> {
        let AgentEvent::Connected { host_id, outbox, reports, inventory, .. } = &event else {
            return Some(event);
        };
        if let Some(reason) = crate::core::pools::unpriced(self.core.pools(), inventory) {
            tracing::warn!(%host_id, hostname = %inventory.hostname, %reason, "refusing a host");
            let code = gpuspot_common::protocol::RefusalCode::NoPool;
            let _ = outbox.send(Box::new(CoordinatorMessage::Refused { code, reason }));
            return None;
        }
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
        let reason = revoked_reason(host_id);
        let refused = CoordinatorMessage::Refused { code: RefusalCode::Revoked, reason };
        let _ = outbox.send(Box::new(refused));
        None
    }
}

impl Handler<HostJoined> for ClusterActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, HostJoined(joined): HostJoined, ctx: &mut Context<Self>) -> Self::Result {
        let now = self.tick();
        self.core.host_joined(&joined, now);
        let committed = self.flush();
        self.arm_alarm(ctx);
        Box::pin(async move {
            if let Err(error) = committed.await {
                tracing::warn!(host_id = %joined.host_id, ?error, "the host_joined event was not saved");
            }
        })
    }
}
