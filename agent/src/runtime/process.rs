//! Workloads as real processes (DESIGN §14). Each runs under a watcher (see [`super::spawn`])
//! as the leader of its own session, under its own uid when the agent is root (see
//! [`super::uids`]) and then in its own namespaces (see [`super::sandbox`]; its own network
//! too, see [`super::network`]), inside its
//! instance's cgroups when limits can be enforced (a host that can enforce none refuses
//! process guests unless `[process] unlimited_ok`), with a cleared environment plus what
//! the guest is promised (DESIGN §6). A workload the OOM killer ended fails saying so. Its lifecycle follows
//! its command (seed 004): when the command ends or is stopped, whatever it left behind is
//! killed, everything under its uid included. Each workload is recorded in its instance
//! dir (see [`super::record`]) so that a restarted agent adopts it (see [`super::adopt`]).

use super::adopt::Watcher;
use super::cgroup::{Cgroups, InstanceCgroup, Share};
use super::disk::DataDisks;
use super::group::{signal_group, wait_group_gone};
use super::network::{GuestNet, NetError, Networking};
use super::record::{self, ProcRef, ProcessRecord};
use super::sandbox::Sandbox;
use super::spawn::{Identity, guest_env, spawn_watched};
use super::uids::{GuestIds, Isolation};
use super::{ExecSession, ExecSpec, RuntimeError, RuntimeEvent, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::protocol::{GuestRuntime, WorkloadState};
use gpuspot_common::{Failure, FailureKind, InstanceId};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How a [`ProcessRuntime`] runs guests on this host.
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    pub isolation: Isolation,
    pub cgroups: Cgroups,
    pub disks: DataDisks,
    /// Whether namespaced guests get their own network.
    pub network: Networking,
    /// `<state_dir>/instances`, where [`WorkloadRuntime::adopt`] looks for workloads an
    /// earlier agent process left running; `None`: nothing is adopted.
    pub instances_dir: Option<PathBuf>,
}

impl ProcessOptions {
    /// What the host allows: own uids and namespaces when root, cgroup limits and data
    /// disks where usable; adoption from the agent's state dir.
    pub fn for_host(settings: &crate::config::AgentSettings) -> Self {
        let isolation = Isolation::detect(settings.uid_range);
        Self {
            network: Networking::detect(matches!(isolation, Isolation::Uids(_))),
            isolation,
            cgroups: Cgroups::detect_with(settings.pids_max, settings.unlimited_ok),
            disks: DataDisks::detect(),
            instances_dir: Some(settings.state_dir.join("instances")),
        }
    }
}

pub struct ProcessRuntime {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) events: mpsc::UnboundedSender<RuntimeEvent>,
    pub(super) options: ProcessOptions,
    pub(super) tokio: tokio::runtime::Handle,
    /// Workloads from spawn (or adoption) until their final event is sent.
    workloads: Mutex<HashMap<InstanceId, Control>>,
}

pub(super) struct Control {
    /// Taken by the first `stop`; `None` afterwards means a stop was requested.
    pub(super) stop: Option<oneshot::Sender<Duration>>,
    /// A stop was requested of an earlier agent process (the `stopping` marker).
    pub(super) stopping: bool,
    pub(super) target: Arc<ExecTarget>,
}

/// What a command run inside the instance needs (see [`super::exec`]).
#[derive(Debug)]
pub(super) struct ExecTarget {
    pub(super) ids: Option<GuestIds>,
    pub(super) cgroup_dirs: Vec<PathBuf>,
    /// The init of the guest's namespaces, which commands join; `None`: not namespaced.
    pub(super) init: Option<ProcRef>,
    pub(super) data_dir: PathBuf,
    pub(super) env: Vec<(String, String)>,
}

/// One workload being supervised: what its end must clean up.
pub(super) struct Guest {
    pub(super) id: InstanceId,
    pub(super) record: ProcessRecord,
    pub(super) cgroup: Option<InstanceCgroup>,
    pub(super) watcher: Watcher,
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

impl Inner {
    pub(super) fn workloads(&self) -> MutexGuard<'_, HashMap<InstanceId, Control>> {
        // The map stays consistent even if a holder panicked: every change is one insert/remove.
        self.workloads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a spawned or adopted workload in `workloads` (the locked map) and
    /// supervises it until its end.
    pub(super) fn supervise(
        self: &Arc<Self>,
        workloads: &mut HashMap<InstanceId, Control>,
        guest: Guest,
        stopping: bool,
    ) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let record = &guest.record;
        let target = Arc::new(ExecTarget {
            ids: record.ids.map(|(uid, gid)| GuestIds { uid, gid }),
            cgroup_dirs: record.cgroups.clone(),
            init: record.namespaced.then_some(record.workload),
            data_dir: record.data_dir.clone(),
            env: record.env.clone(),
        });
        let control = Control { stop: Some(stop_tx), stopping, target };
        workloads.insert(guest.id.clone(), control);
        self.tokio.spawn(supervise(self.clone(), guest, stop_rx));
    }

    /// Prepares the guest's files, spawns it and records it.
    fn launch(&self, spec: &WorkloadSpec) -> Result<Guest, RuntimeError> {
        let mut timer = super::timing::StartTimer::new();
        let data_dir = &spec.data_dir;
        self.options.disks.prepare(data_dir, spec.data_disk_gib).map_err(prepare(data_dir))?;
        timer.step("disk");
        let output = open_private(&spec.log_path, false).map_err(prepare(&spec.log_path))?;
        let ids = self.options.isolation.claim(data_dir);
        let ids = ids.map_err(|e| prepare(data_dir)(std::io::Error::other(e)))?;
        timer.step("uid");
        super::guest_files::hand_over(data_dir, &spec.metadata_socket, ids)
            .map_err(prepare(data_dir))?;
        let dir = record::instance_dir(data_dir);
        let _ = std::fs::remove_file(dir.join(record::STOPPING));
        let status_path = dir.join(record::STATUS);
        let status = open_private(&status_path, true).map_err(prepare(&status_path))?;
        timer.step("files");
        // Namespaces need root, as own uids do.
        let (sandbox, net) = match ids {
            Some(ids) => self.sandbox_for(spec, &dir, ids.gid)?,
            None => (None, None),
        };
        timer.step("sandbox+net");
        let namespaced = sandbox.is_some();
        let net_helper = net.map(|net| net.helper);
        let share = Share { cpu_cores: spec.cpu_cores, memory_gib: spec.memory_gib };
        let cgroup = self.options.cgroups.create(&spec.instance_id, share);
        timer.step("cgroup");
        let env = guest_env(spec);
        let cgroup_procs = cgroup.as_ref().map_or(super::cgroup::NO_PROCS, |c| c.procs_fds());
        let identity = Identity { ids, cgroup_procs };
        let child = match spawn_watched(spec, &env, identity, sandbox, &output, &status) {
            Ok(child) => child,
            Err(error) => {
                if let Some(cgroup) = cgroup {
                    self.tokio.spawn(cgroup.remove());
                }
                if let Some(helper) = net_helper {
                    helper.kill_and_wait();
                }
                return Err(error);
            }
        };
        let record = ProcessRecord {
            instance_id: spec.instance_id.clone(),
            boot_id: record::boot_id(),
            watcher: ProcRef::of(child.id().unwrap_or(0)),
            // The watcher wrote it before std's spawn could return.
            workload: ProcRef::of(record::read_status(&status_path).pid.unwrap_or(0)),
            namespaced,
            net_helper,
            ports: host_ports(spec),
            ids: ids.map(|ids| (ids.uid, ids.gid)),
            cgroups: cgroup.as_ref().map(InstanceCgroup::dirs).unwrap_or_default(),
            data_dir: data_dir.clone(),
            metadata_socket: spec.metadata_socket.clone(),
            env,
        };
        timer.step("spawn");
        save_record(&record, &dir);
        timer.step("record");
        timer.log(&spec.instance_id);
        let id = spec.instance_id.clone();
        Ok(Guest { id, record, cgroup, watcher: Watcher::Child(child) })
    }
}

impl Inner {
    /// The guest's namespaces, with its data dir and socket dir reachable at their paths,
    /// and its network (`None`: the host's), published ports and all.
    fn sandbox_for(
        &self,
        spec: &WorkloadSpec,
        instance_dir: &Path,
        gid: u32,
    ) -> Result<(Option<Sandbox>, Option<GuestNet>), RuntimeError> {
        let net = self.options.network.create(instance_dir, gid, &host_ports(spec));
        let mut net = net.map_err(|e| match e {
            NetError::Publish { port, reason } => RuntimeError::PortBusy { port, reason },
            other => prepare(instance_dir)(std::io::Error::other(other)),
        })?;
        let resolv_conf = instance_dir.join(super::network::RESOLV_CONF);
        let joined = net.as_mut().and_then(|net| net.join(&resolv_conf));
        let socket_dir = spec.metadata_socket.parent().unwrap_or(&spec.metadata_socket);
        let keep = [spec.data_dir.as_path(), socket_dir];
        match Sandbox::prepare(&spec.data_dir, &keep, joined) {
            Ok(sandbox) => Ok((Some(sandbox), net)),
            Err(error) => {
                if let Some(net) = net {
                    net.helper.kill_and_wait();
                }
                Err(prepare(&spec.data_dir)(error))
            }
        }
    }
}

/// The host ports a process guest listens on (the same numbers inside its network).
fn host_ports(spec: &WorkloadSpec) -> Vec<u16> {
    spec.ports.iter().map(|p| p.host).collect()
}

fn prepare(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.to_owned();
    move |source| RuntimeError::Prepare { path, source }
}

/// A workload without a record still runs; only a restarted agent could not adopt it.
fn save_record(record: &ProcessRecord, dir: &Path) {
    if let Err(error) = record.save(dir) {
        tracing::warn!(instance_id = %record.instance_id, %error,
            "cannot record the workload; a restarted agent will not adopt it");
    }
}

/// Opens `path` for appending (or truncated), 0600 also when it existed with another mode.
fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(!truncate)
        .write(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
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
        super::adopt::adopt(&self.inner)
    }

    fn exec(&self, instance_id: &InstanceId, spec: ExecSpec) -> Result<ExecSession, RuntimeError> {
        let target = self.inner.workloads().get(instance_id).map(|c| c.target.clone());
        let target = target.ok_or_else(|| RuntimeError::NotRunning(instance_id.clone()))?;
        let _runtime = self.inner.tokio.enter();
        super::exec::start(&target, spec)
    }

    fn runtimes(&self) -> Vec<GuestRuntime> {
        vec![GuestRuntime::Process]
    }
}

/// Owns one workload from spawn (or adoption) to its single final event.
async fn supervise(inner: Arc<Inner>, mut guest: Guest, mut stop_rx: oneshot::Receiver<Duration>) {
    let pgid = i32::try_from(guest.record.workload.pid).unwrap_or(0);
    let network = &inner.options.network;
    let stopped = tokio::select! {
        () = guest.watcher.wait() => false,
        Ok(kill_timeout) = &mut stop_rx => {
            terminate(&mut guest.watcher, pgid, kill_timeout).await;
            true
        }
        () = super::adopt::keep_connected(network, &mut guest.record) => false,
    };
    let status =
        record::read_status(&record::instance_dir(&guest.record.data_dir).join(record::STATUS));
    let oom_kills = guest.cgroup.as_ref().map_or(0, InstanceCgroup::oom_kills);
    clean_up(&mut guest, pgid).await;
    // A stop that raced with a natural exit still counts: the user asked for it.
    let control = inner.workloads().remove(&guest.id);
    let stop_requested = control.is_some_and(|c| c.stop.is_none() || c.stopping);
    let state = if stopped || stop_requested {
        WorkloadState::Stopped
    } else {
        final_state(status.wait_status, oom_kills)
    };
    tracing::info!(instance_id = %guest.id, ?state, "workload ended");
    let _ = inner.events.send(RuntimeEvent { instance_id: guest.id, state });
}

/// The command is over: nothing it started may outlive it.
async fn clean_up(guest: &mut Guest, pgid: i32) {
    signal_group(pgid, libc::SIGKILL);
    if let Some(helper) = guest.record.net_helper {
        let _ = tokio::task::spawn_blocking(move || helper.kill_and_wait()).await;
    }
    if let Some(cgroup) = &guest.cgroup {
        cgroup.kill_all();
    }
    if let Some((uid, _)) = guest.record.ids {
        let swept = tokio::task::spawn_blocking(move || {
            super::sweep::kill_uid(uid);
            super::sweep::remove_scratch_of(uid);
        });
        let _ = swept.await;
    }
    if let Some(cgroup) = guest.cgroup.take() {
        cgroup.remove().await;
    }
}

/// SIGTERM to the group; the leader and then the rest of the group (a background checkpoint
/// writer, say) share the kill timeout before SIGKILL.
async fn terminate(watcher: &mut Watcher, pgid: i32, kill_timeout: Duration) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + kill_timeout;
    match tokio::time::timeout_at(deadline, watcher.wait()).await {
        Ok(()) => wait_group_gone(pgid, deadline).await,
        Err(_) => {
            signal_group(pgid, libc::SIGKILL);
            watcher.wait().await;
        }
    }
}

fn final_state(wait_status: Option<i32>, oom_kills: u64) -> WorkloadState {
    match wait_status {
        Some(status) if oom_kills > 0 && record::exit_code(status) != Some(0) => {
            let code = record::exit_code(status);
            let how = code.map_or("was killed".to_owned(), |code| format!("exited with {code}"));
            let detail = format!(
                "the kernel's OOM killer ended {oom_kills} of the workload's processes at its \
                 memory limit (memory_gib) and the workload {how}"
            );
            WorkloadState::Failed(Failure::new(FailureKind::OutOfMemory, detail))
        }
        Some(status) => WorkloadState::Exited { code: record::exit_code(status) },
        None => WorkloadState::Failed(Failure::new(
            FailureKind::Lost,
            "lost track of the workload: its watcher ended without its exit status",
        )),
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
