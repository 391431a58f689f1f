//! What users do to instances: create (queued, then placed at once if anything fits),
//! change (name and env only) and delete; and the two ways the core ends one, `finish`
//! (terminated) and `fail` (failed, never ran). Ending charges what ran, in the same commit.

use super::admission::Refusal;
use super::cluster::Cluster;
use super::error::LifecycleError;
use super::events::{EventData, EventKind};
use super::instance::lifecycle::Ending;
use super::instance::{Instance, Owner};
use super::model::{EndReason, InstanceRequest, InstanceState};
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId};
use std::collections::BTreeMap;

impl Cluster {
    /// Accepts a validated request its account may make ([`Refusal`] says why not): it is
    /// queued, then placed at once if anything fits.
    pub fn create_instance(
        &mut self,
        account: AccountId,
        request: InstanceRequest,
        now: DateTime<Utc>,
    ) -> Result<InstanceId, Refusal> {
        self.admit_instance(&account, &request)?;
        let id = self.create_instance_for(account, request, None, now);
        self.settle(now);
        Ok(id)
    }

    /// Like [`Cluster::create_instance`], for `owner` (a deployment) when it has one.
    pub(super) fn create_instance_for(
        &mut self,
        account: AccountId,
        request: InstanceRequest,
        owner: Option<Owner>,
        now: DateTime<Utc>,
    ) -> InstanceId {
        let id = self.ids.instance();
        let seq = self.take_seq();
        let mut instance = Instance::new(id.clone(), account, request, now, seq);
        if instance.request.name.is_empty() {
            instance.request.name = id.to_string();
        }
        instance.owner = owner;
        self.instances.insert(instance);
        self.event(now, EventKind::InstanceCreated, Some(&id), None, EventData::default());
        self.place_queued(now);
        id
    }

    /// The user's DELETE: a queued instance ends at once; a placed one is stopped by its
    /// agent (SIGTERM, then SIGKILL after `kill_timeout`) and ends when the agent says so.
    /// A request that never ran (`failed`) is forgotten at once: it counts against its
    /// account's quota while it exists (docs/contracts.md#limits), and its owner may clear it
    /// sooner than `[retention] failed`.
    pub fn delete_instance(
        &mut self,
        id: &InstanceId,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        let instance =
            self.instances.get(id).ok_or_else(|| LifecycleError::UnknownInstance(id.clone()))?;
        if instance.state() == InstanceState::Failed {
            self.instances.forget(id);
            return Ok(());
        }
        self.end_or_stop(id, EndReason::User, now);
        self.settle(now);
        Ok(())
    }

    /// Ends a queued instance, stops a placed one; one already stopping or ended is left.
    pub(super) fn end_or_stop(&mut self, id: &InstanceId, reason: EndReason, now: DateTime<Utc>) {
        match self.instances.get(id).map(Instance::state) {
            Some(InstanceState::Queued) => self.finish(id, reason, None, now),
            Some(_) => {
                self.begin_stop(id, reason, now);
            }
            None => {}
        }
    }

    /// PATCH: name and env change; billing mode and size do not (seed 000: a spot instance
    /// cannot change billing method or be upgraded; a regular one is recreated instead).
    pub fn change_instance(
        &mut self,
        id: &InstanceId,
        name: Option<String>,
        env: Option<BTreeMap<String, String>>,
        resize: bool,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        let instance =
            self.instances.get(id).ok_or_else(|| LifecycleError::UnknownInstance(id.clone()))?;
        if resize {
            return Err(match instance.request.billing.bid() {
                Some(_) => LifecycleError::SpotIsFixed,
                None => LifecycleError::SizeIsFixed,
            });
        }
        self.instances.update(id, |i| {
            if let Some(name) = name {
                i.request.name = name;
            }
            if let Some(env) = env {
                i.request.env = env;
            }
        });
        self.event(now, EventKind::InstanceChanged, Some(id), None, EventData::default());
        Ok(())
    }

    /// Orders the agent to stop the workload; `reason` is what it will have ended with.
    pub(super) fn begin_stop(
        &mut self,
        id: &InstanceId,
        reason: EndReason,
        now: DateTime<Utc>,
    ) -> bool {
        self.transition(id, now, |lifecycle| lifecycle.stop(reason))
    }

    /// Ends an instance `terminated`: units released, reason recorded.
    pub(super) fn finish(
        &mut self,
        id: &InstanceId,
        reason: EndReason,
        detail: Option<String>,
        now: DateTime<Utc>,
    ) {
        let text = match detail {
            Some(detail) => format!("{}: {detail}", reason.as_str()),
            None => reason.as_str().to_owned(),
        };
        self.end(id, Ending::new(InstanceState::Terminated, reason, text, now));
    }

    /// Ends a request that never ran in `failed` (docs/contracts.md#failures-and-quotas); `reason`
    /// is shown as is (`image_pull_failed: …`). Like every end, it is charged only for what ran.
    pub(super) fn fail(&mut self, id: &InstanceId, reason: String, now: DateTime<Utc>) {
        self.end(id, Ending::new(InstanceState::Failed, EndReason::Failed, reason, now));
    }

    /// The run is charged up to its end, in the same commit as the end itself.
    pub(super) fn end(&mut self, id: &InstanceId, ending: Ending) {
        if self.instances.get(id).is_none_or(Instance::is_terminated) {
            return;
        }
        let now = ending.at;
        self.meter_instance(id, now, true);
        self.transition(id, now, |lifecycle| lifecycle.end(ending));
    }
}
