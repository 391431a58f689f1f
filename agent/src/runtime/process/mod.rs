//! Workloads as real processes (docs/contracts.md#guests). Each runs under a watcher (see
//! [`self::spawn`]) as the leader of its own session, under its own uid when the agent is root (see
//! [`super::uids`]) and then in its own namespaces (see [`self::sandbox`]; its own network too, see
//! [`super::network`]), inside its instance's cgroups when limits can be enforced (a host that can
//! enforce none refuses process guests unless `[process] unlimited_ok`), with a cleared environment
//! plus what the guest is promised (docs/contracts.md#guest-socket). A workload the OOM killer
//! ended fails saying so. Its lifecycle follows its command (seed 004): when the command ends or is
//! stopped, whatever it left behind is killed, everything under its uid included. Each workload is
//! recorded in its instance dir (see [`super::record`]) so that a restarted agent adopts it (see
//! [`self::adopt`]).

mod adopt;
mod exec;
mod forked;
mod guest;
mod guest_files;
pub(super) mod helper;
mod launch;
mod options;
pub(super) mod orphans;
mod sandbox;
mod spawn;
mod timing;
mod watcher;

pub use options::ProcessOptions;

use super::cgroup::Cgroups;
use super::disk::DataDisks;
use super::network::Networking;
use super::record;
use super::uids::Isolation;
use super::{ExecSession, ExecSpec, RuntimeError, RuntimeEvent, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::GuestRuntime;
use guest::Inner;
use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

impl ProcessRuntime {
    /// Guests isolated as the host allows, with the default uid range; nothing adopted.
    /// Must be called inside a tokio runtime, like every constructor here.
    pub fn new(events: mpsc::UnboundedSender<RuntimeEvent>) -> Self {
        Self::with_options(
            events,
            ProcessOptions {
                isolation: Isolation::detect(crate::config::DEFAULT_UID_RANGE),
                network: Networking::default(),
                cgroups: Cgroups::detect(),
                disks: DataDisks::detect(),
                instances_dir: None,
            },
        )
    }

    /// The runtime of one host agent (what `host.rs` should build).
    pub fn for_host(
        events: mpsc::UnboundedSender<RuntimeEvent>,
        settings: &crate::config::AgentSettings,
    ) -> Self {
        Self::with_options(events, ProcessOptions::for_host(settings))
    }

    pub fn with_options(
        events: mpsc::UnboundedSender<RuntimeEvent>,
        options: ProcessOptions,
    ) -> Self {
        let tokio = tokio::runtime::Handle::current();
        let workloads = Mutex::new(HashMap::new());
        Self { inner: Arc::new(Inner { events, options, tokio, workloads }) }
    }
}

impl WorkloadRuntime for ProcessRuntime {
    /// Spawn failures (missing binary, unwritable data dir) are returned, not reported.
    fn start(&self, spec: WorkloadSpec) -> Result<(), RuntimeError> {
        let id = spec.instance_id.clone();
        if spec.command.is_empty() {
            return Err(RuntimeError::EmptyCommand(id));
        }
        let mut workloads = self.inner.workloads();
        if workloads.contains_key(&id) {
            return Err(RuntimeError::AlreadyRunning(id));
        }
        if let Some(refusal) = self.inner.options.cgroups.refusal() {
            return Err(RuntimeError::Unlimited(refusal.to_owned()));
        }
        // Callers may sit on a blocking thread; spawning needs the runtime's reactor.
        let _runtime = self.inner.tokio.enter();
        let guest = self.inner.launch(&spec)?;
        tracing::info!(instance_id = %id, pid = guest.record.workload.pid,
            uid = ?guest.record.ids.map(|(uid, _)| uid), "workload started");
        self.inner.supervise(&mut workloads, guest, false);
        Ok(())
    }

    fn stop(&self, instance_id: &InstanceId, kill_timeout: Duration) {
        let mut workloads = self.inner.workloads();
        let Some(control) = workloads.get_mut(instance_id) else { return };
        let Some(stop) = control.stop.take() else { return };
        // Remembered on disk: an end seen by a restarted agent still counts as stopped.
        let marker = record::instance_dir(&control.target.data_dir).join(record::STOPPING);
        let _ = File::create(marker);
        let _ = stop.send(kill_timeout);
    }

    fn running(&self) -> Vec<InstanceId> {
        self.inner.workloads().keys().cloned().collect()
    }

    fn adopt(&self) -> Vec<InstanceId> {
        adopt::adopt(&self.inner)
    }

    fn exec(&self, instance_id: &InstanceId, spec: ExecSpec) -> Result<ExecSession, RuntimeError> {
        let target = self.inner.workloads().get(instance_id).map(|c| c.target.clone());
        let target = target.ok_or_else(|| RuntimeError::NotRunning(instance_id.clone()))?;
        let _runtime = self.inner.tokio.enter();
        exec::start(&target, spec)
    }

    fn runtimes(&self) -> Vec<GuestRuntime> {
        vec![GuestRuntime::Process]
    }
}

#[cfg(test)]
mod tests;
