//! Reclaimed capacity is promised (docs/contracts.md#market): the units a regular request reclaimed
//! spot instances for are its own until it is placed, deleted or fails. The promise lives in the
//! queued request's lifecycle ([`Promise`], stored with its record); the registry's unit slots
//! carry a mark that follows from it, so that placement, the index and every other request see
//! those units as taken. Restore marks them again from the loaded requests.
//!
//! A promise stands while its host may still take the request (not lost, cordoned, draining
//! or deleted) and each promised unit is healthy and either free or held by an instance on
//! its way out. Otherwise it is broken: it ends, and the request reclaims afresh.

use super::cluster::Cluster;
use super::instance::Promise;
use super::placement::Placement;
use super::registry::{HostState, Maintenance};
use gpuspot_common::{HostId, InstanceId};

/// Where a queued request's promise stands.
pub(super) enum Standing {
    /// Every promised unit is free and its host takes placements: place it there.
    Ready(Placement),
    /// Some promised unit is still held by an instance on its way out, or the host is
    /// disconnected for now.
    Pending(HostId),
    /// It can no longer be kept; it has been ended.
    Broken,
}

impl Cluster {
    /// Records that `id` is owed `gpu_uuids` on `host_id`, replacing any earlier promise.
    pub(super) fn promise(&mut self, id: &InstanceId, host_id: &HostId, gpu_uuids: Vec<String>) {
        if let Some(earlier) = self.take_promise(id) {
            self.unmark_promise(id, &earlier.host_id);
        }
        let promise = Promise { host_id: host_id.clone(), gpu_uuids };
        if let Some(host) = self.registry.get_mut(host_id) {
            host.promise(&promise.gpu_uuids, id);
        }
        self.instances.update(id, |i| i.lifecycle_mut().set_promise(Some(promise)));
    }

    /// Ends the promise `id` holds, if any: its units are free for others again, and the
    /// queue gets another look.
    pub(super) fn end_promise(&mut self, id: &InstanceId) {
        if let Some(promise) = self.take_promise(id) {
            self.unmark_promise(id, &promise.host_id);
            self.reactions.place_queue = true;
        }
    }

    /// Takes the promise out of `id`'s lifecycle (its row is written only if it had one).
    fn take_promise(&mut self, id: &InstanceId) -> Option<Promise> {
        self.instances.get(id)?.promise()?;
        self.instances.update(id, |i| i.lifecycle_mut().set_promise(None))?.ok()?
    }

    /// Clears the registry's marks of `id`'s promise on `host_id`.
    pub(super) fn unmark_promise(&mut self, id: &InstanceId, host_id: &HostId) {
        if let Some(host) = self.registry.get_mut(host_id) {
            host.forget_promise(id);
        }
    }

    /// Marks every loaded request's promised units (after a restart).
    pub(super) fn mark_promises(&mut self) {
        let promises: Vec<(InstanceId, Promise)> = self
            .instances
            .queued()
            .into_iter()
            .filter_map(|id| Some((id.clone(), self.instances.get(&id)?.promise()?.clone())))
            .collect();
        for (id, promise) in promises {
            if let Some(host) = self.registry.get_mut(&promise.host_id) {
                host.promise(&promise.gpu_uuids, &id);
            }
        }
    }

    /// Where `id`'s promise stands now; None when it holds none. A broken one is ended.
    pub(super) fn promise_standing(&mut self, id: &InstanceId) -> Option<Standing> {
        let instance = self.instances.get(id)?;
        let promise = instance.promise()?;
        let k = instance.request.gpu.count;
        match self.check_promise(id, promise, k) {
            Some(standing) => Some(standing),
            None => {
                self.end_promise(id);
                Some(Standing::Broken)
            }
        }
    }

    /// Ready or pending, or None when broken.
    fn check_promise(&self, id: &InstanceId, promise: &Promise, k: u32) -> Option<Standing> {
        let host = self.registry.get(&promise.host_id)?;
        if host.state() == HostState::Lost || host.maintenance() != Maintenance::None {
            return None;
        }
        let mut indices = Vec::new();
        let mut all_free = true;
        for uuid in &promise.gpu_uuids {
            let (index, slot) =
                host.units.iter().enumerate().find(|(_, s)| s.unit.gpu.uuid == *uuid)?;
            if !slot.unit.gpu.healthy || slot.promised.as_ref() != Some(id) {
                return None;
            }
            if let Some(holder) = &slot.instance {
                // A holder that is not leaving (an overdue notice a payment cancelled)
                // will not free the unit.
                self.instances.get(holder).filter(|h| h.is_draining())?;
                all_free = false;
            }
            indices.push(index);
        }
        if indices.len() != k as usize {
            return None;
        }
        let first = &host.units[*indices.first()?];
        if !all_free || !host.takes_placements() {
            return Some(Standing::Pending(host.id.clone()));
        }
        Some(Standing::Ready(Placement {
            host_id: host.id.clone(),
            gpu_model: first.unit.gpu.model.clone(),
            cpu_cores: first.unit.cpu_cores * k,
            memory_gib: first.unit.memory_gib * u64::from(k),
            unit_indices: indices,
        }))
    }
}
