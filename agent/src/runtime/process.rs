//! Workloads as real processes. Each command runs as the leader of its own session (so one
//! signal reaches everything it started), inside its instance's cgroup when limits can be
//! enforced, with a cleared environment plus what the guest is promised (DESIGN §6). Its
//! lifecycle follows its command (seed 004): when the command ends, whatever it left behind
//! is killed.

use super::cgroup::{Cgroups, InstanceCgroup};
use super::group::{signal_group, wait_group_gone};
use super::{ExecSession, ExecSpec, RuntimeError, RuntimeEvent, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::GuestRuntime;
use gpuspot_common::protocol::WorkloadState;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::fd::RawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// Agent variables a guest inherits: enough to find binaries, speak its locale, load CUDA.
const PASSED_THROUGH: [&str; 3] = ["PATH", "LANG", "LD_LIBRARY_PATH"];

pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    events: mpsc::UnboundedSender<RuntimeEvent>,
    cgroups: Cgroups,
    tokio: tokio::runtime::Handle,
    /// Workloads from spawn until their final event is sent.
    workloads: Mutex<HashMap<InstanceId, Control>>,
}

struct Control {
    /// Taken by the first `stop`; `None` afterwards means a stop was requested.
    stop: Option<oneshot::Sender<Duration>>,
}

impl ProcessRuntime {
    /// Must be called inside a tokio runtime: workloads are supervised by tasks spawned on it.
    pub fn new(events: mpsc::UnboundedSender<RuntimeEvent>) -> Self {
        Self::with_cgroups(events, Cgroups::detect())
    }

    pub fn with_cgroups(events: mpsc::UnboundedSender<RuntimeEvent>, cgroups: Cgroups) -> Self {
        Self {
            inner: Arc::new(Inner {
                events,
                cgroups,
                tokio: tokio::runtime::Handle::current(),
                workloads: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Inner {
    fn workloads(&self) -> MutexGuard<'_, HashMap<InstanceId, Control>> {
        // The map stays consistent even if a holder panicked: every change is one insert/remove.
        self.workloads.lock().unwrap_or_else(PoisonError::into_inner)
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
        // Callers may sit on a blocking thread; spawning needs the runtime's reactor.
        let _runtime = self.inner.tokio.enter();
        let cgroup = self.inner.cgroups.create(&id, spec.cpu_cores, spec.memory_gib);
        let child = match spawn(&spec, cgroup.as_ref()) {
            Ok(child) => child,
            Err(error) => {
                if let Some(cgroup) = cgroup {
                    self.inner.tokio.spawn(cgroup.remove());
                }
                return Err(error);
            }
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        workloads.insert(id.clone(), Control { stop: Some(stop_tx) });
        tracing::info!(instance_id = %id, pid = ?child.id(), "workload started");
        let supervisor = supervise(self.inner.clone(), id, child, cgroup, stop_rx);
        self.inner.tokio.spawn(supervisor);
        Ok(())
    }

    fn stop(&self, instance_id: &InstanceId, kill_timeout: Duration) {
        let mut workloads = self.inner.workloads();
        let stop = workloads.get_mut(instance_id).and_then(|c| c.stop.take());
        if let Some(stop) = stop {
            let _ = stop.send(kill_timeout);
        }
    }

    fn running(&self) -> Vec<InstanceId> {
        self.inner.workloads().keys().cloned().collect()
    }

    fn adopt(&self) -> Vec<InstanceId> {
        Vec::new() // issue 10, helper B: re-adoption by pid + start time
    }

    fn exec(&self, instance_id: &InstanceId, _spec: ExecSpec) -> Result<ExecSession, RuntimeError> {
        Err(RuntimeError::NotRunning(instance_id.clone())) // issue 10, helper B
    }

    fn runtimes(&self) -> Vec<GuestRuntime> {
        vec![GuestRuntime::Process]
    }
}

fn spawn(spec: &WorkloadSpec, cgroup: Option<&InstanceCgroup>) -> Result<Child, RuntimeError> {
    let prepare = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| RuntimeError::Prepare { path, source }
    };
    // Private to the agent's user (DESIGN §15): data dirs 0700, logs 0600, also when a
    // restored snapshot or an earlier run left them with other modes.
    crate::config::create_private_dir(&spec.data_dir).map_err(prepare(&spec.data_dir))?;
    if let Some(parent) = spec.log_path.parent() {
        crate::config::create_private_dir(parent).map_err(prepare(parent))?;
    }
    let stdout = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&spec.log_path)
        .map_err(prepare(&spec.log_path))?;
    stdout
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(prepare(&spec.log_path))?;
    let stderr = stdout.try_clone().map_err(prepare(&spec.log_path))?;

    let mut command = Command::new(&spec.command[0]);
    command
        .args(&spec.command[1..])
        .current_dir(&spec.data_dir)
        .env_clear()
        .envs(guest_env(spec))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(false);
    let procs_fd = cgroup.map(InstanceCgroup::procs_fd);
    // SAFETY: the closure only makes async-signal-safe calls (setsid, write).
    unsafe {
        command.pre_exec(move || enter_session(procs_fd));
    }
    command
        .spawn()
        .map_err(|source| RuntimeError::Spawn { program: spec.command[0].clone(), source })
}

/// Runs in the child between fork and exec.
fn enter_session(cgroup_procs: Option<RawFd>) -> std::io::Result<()> {
    // SAFETY: setsid is async-signal-safe and has no memory preconditions.
    if unsafe { libc::setsid() } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    if let Some(fd) = cgroup_procs {
        // Best effort: without the cgroup the workload still runs, just unconfined.
        // SAFETY: fd is open (held by the parent's InstanceCgroup) and the buffer is static.
        unsafe {
            libc::write(fd, b"0".as_ptr().cast(), 1);
        }
    }
    Ok(())
}

/// Later entries win, so the guest's own variables cannot override what gpuspot promises.
fn guest_env(spec: &WorkloadSpec) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = PASSED_THROUGH
        .iter()
        .filter_map(|name| Some((OsString::from(name), std::env::var_os(name)?)))
        .collect();
    env.push(("HOME".into(), spec.data_dir.clone().into()));
    env.extend(spec.env.iter().map(|(k, v)| (k.into(), v.into())));
    let gpus = OsString::from(spec.gpu_uuids.join(","));
    env.extend([
        ("GPUSPOT_INSTANCE_ID".into(), spec.instance_id.as_str().into()),
        ("GPUSPOT_DATA_DIR".into(), spec.data_dir.clone().into()),
        ("GPUSPOT_METADATA_SOCKET".into(), spec.metadata_socket.clone().into()),
        ("CUDA_VISIBLE_DEVICES".into(), gpus.clone()),
        ("NVIDIA_VISIBLE_DEVICES".into(), gpus),
    ]);
    env
}

/// Owns one workload from spawn to its single final event.
async fn supervise(
    inner: Arc<Inner>,
    id: InstanceId,
    mut child: Child,
    cgroup: Option<InstanceCgroup>,
    mut stop_rx: oneshot::Receiver<Duration>,
) {
    let pgid = child.id().and_then(|pid| i32::try_from(pid).ok()).unwrap_or(0);
    let mut stopped = false;
    let status = tokio::select! {
        status = child.wait() => status,
        Ok(kill_timeout) = &mut stop_rx => {
            stopped = true;
            terminate(&mut child, pgid, kill_timeout).await
        }
    };
    // The command is over: nothing it started may outlive it.
    signal_group(pgid, libc::SIGKILL);
    if let Some(cgroup) = cgroup {
        cgroup.kill_all();
        cgroup.remove().await;
    }
    // A stop that raced with a natural exit still counts: the user asked for it.
    let stop_requested =
        inner.workloads().remove(&id).is_some_and(|control| control.stop.is_none());
    let state =
        if stopped || stop_requested { WorkloadState::Stopped } else { final_state(status) };
    tracing::info!(instance_id = %id, ?state, "workload ended");
    let _ = inner.events.send(RuntimeEvent { instance_id: id, state });
}

/// SIGTERM to the group; the leader and then the rest of the group (a background checkpoint
/// writer, say) share the kill timeout before SIGKILL.
async fn terminate(
    child: &mut Child,
    pgid: i32,
    kill_timeout: Duration,
) -> std::io::Result<ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + kill_timeout;
    match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => {
            wait_group_gone(pgid, deadline).await;
            status
        }
        Err(_) => {
            signal_group(pgid, libc::SIGKILL);
            child.wait().await
        }
    }
}

fn final_state(status: std::io::Result<ExitStatus>) -> WorkloadState {
    match status {
        Ok(status) => WorkloadState::Exited { code: status.code() },
        Err(error) => {
            WorkloadState::Failed { message: format!("lost track of the workload: {error}") }
        }
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
