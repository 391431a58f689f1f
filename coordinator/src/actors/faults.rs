//! Drills and GPU faults through the cluster actor (docs/architecture.md, "Faults and
//! drills"): the owner or the admin interrupts an instance; the admin injects a fault into a
//! simulated GPU or clears a failed one. The core decides; the answer waits for the commit.

use super::cluster::ClusterActor;
use super::failure::{Failure, Missing};
use super::messages::Scope;
use super::reply::{Deferred, Reply};
use crate::core::{Host, Instance};
use gpuspot_common::{HostId, InstanceId};
use std::time::Duration;

/// One request about drills or faults; the API checks that inject and clear come from the
/// admin.
#[derive(Debug)]
pub enum FaultRequest {
    /// Interrupt the instance with reason `drill` (None: its pool's notice).
    Drill { scope: Scope, id: InstanceId, notice: Option<Duration>, reply: Reply<Instance> },
    /// Send Xid `xid` to GPU `index` of a simulated host.
    Inject { host: HostId, index: u32, xid: u32, reply: Reply<Host> },
    /// Put failed GPU `index` back on the market once it reports healthy.
    Clear { host: HostId, index: u32, reply: Reply<Host> },
}

impl ClusterActor {
    pub(super) fn answer_fault(&mut self, request: FaultRequest) -> Deferred {
        match request {
            FaultRequest::Drill { scope, id, notice, reply } => {
                reply.after_commit(self.drill(&scope, id, notice))
            }
            FaultRequest::Inject { host, index, xid, reply } => {
                let injected = self.core.inject_fault(&host, index, xid).map_err(Failure::from);
                reply.after_commit(injected.and_then(|()| self.host_now(host)))
            }
            FaultRequest::Clear { host, index, reply } => {
                let cleared = self.core.clear_gpu(&host, index, self.now);
                reply
                    .after_commit(cleared.map_err(Failure::from).and_then(|()| self.host_now(host)))
            }
        }
    }

    fn drill(
        &mut self,
        scope: &Scope,
        id: InstanceId,
        notice: Option<Duration>,
    ) -> Result<Instance, Failure> {
        self.visible(scope, &id)?;
        self.core.drill(&id, notice, self.now)?;
        self.visible(scope, &id).cloned()
    }

    fn host_now(&self, id: HostId) -> Result<Host, Failure> {
        self.core.registry().get(&id).cloned().ok_or(Failure::NotFound(Missing::Host(id)))
    }
}
