//! Guests in OCI containers through the host's container engine (docs/contracts.md#guests), over
//! the Docker Engine API that Docker and Podman both serve ([`bollard`]).
//!
//! A container is named `gpuspot-<instance id>` and labelled with its instance and its
//! agent (the state dir), so that agents sharing one engine adopt only their own. It runs
//! the image's CMD or the given command, sees the instance's data dir at `/data` and its
//! metadata socket under `/run/gpuspot`, has hard CPU, memory and pids limits, a network
//! of its own (reached only on its published ports), a read-only root with capped scratch
//! space, and exactly its GPUs. Its output is followed into the instance's log
//! file; its end (exit code, a stop, the OOM killer) is reported once, as for processes.
//! Containers outlive the agent: a restarted agent adopts them ([`WorkloadRuntime::adopt`]).
//!
//! Files: [`engine`] (connecting), [`spec`] (the create request), [`images`] (pulls),
//! [`network`] and [`firewall`] (each container's network and the host's rules for them),
//! `supervise` (one task per container), `exits` (their ends, from one events stream),
//! `logs`, `oom`, `exec`, `adopt`.

mod adopt;
mod ends;
mod engine;
mod exec;
mod exits;
mod firewall;
mod images;
mod logs;
mod network;
mod oom;
mod spec;
mod supervise;

pub use engine::{Engine, EngineKind};
pub use spec::{LABEL_AGENT, LABEL_INSTANCE, container_name};

use super::{ExecSession, ExecSpec, RuntimeError, RuntimeEvent, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::GuestRuntime;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container engine {0:?} is not a unix socket URL (expected unix:///PATH)")]
    Url(String),
    #[error("cannot reach the container engine at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: bollard::errors::Error,
    },
}

/// What the runtime needs to know about its host.
#[derive(Clone, Debug)]
pub struct ContainerOptions {
    /// The `gpuspot.agent` label of this agent's containers: its state dir.
    pub agent: String,
    /// Whether the host's GPUs are real. Simulated ones have made-up UUIDs that no engine
    /// could attach, so their containers get only the environment that names them.
    pub real_gpus: bool,
    /// Output the engine keeps per container (the agent keeps as much in its own log).
    pub log_max_bytes: u64,
    /// The process guests' uids (`[process] uid_range`): kept out of containers' networks.
    pub guest_uids: Option<(u32, u32)>,
}

pub struct ContainerRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    options: ContainerOptions,
    gpus: spec::GpuAttach,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    tokio: tokio::runtime::Handle,
    pulls: images::Pulls,
    /// Ends of the containers supervised, from the engine's events.
    exits: Arc<exits::Exits>,
    /// Containers from start (or adoption) until their final event is sent.
    workloads: Mutex<HashMap<InstanceId, Control>>,
}

struct Control {
    /// Taken by the first `stop`; `None` afterwards means a stop was requested.
    stop: Option<oneshot::Sender<Duration>>,
}

impl ContainerRuntime {
    /// Connects to the engine at `url` and checks that it answers. Must be called inside a
    /// tokio runtime: containers are supervised by tasks spawned on it.
    pub fn connect(
        url: &str,
        options: ContainerOptions,
        events: mpsc::UnboundedSender<RuntimeEvent>,
    ) -> Result<Self, ContainerError> {
        let engine = Engine::connect(url)?;
        let gpus = spec::GpuAttach::detect(options.real_gpus, engine.kind);
        tracing::info!(url, engine = %engine.version, ?gpus, "container engine connected");
        if gpus == spec::GpuAttach::Unavailable {
            tracing::warn!(url, "{}", gpus.refusal(&["GPU".into()]).unwrap_or_default());
        }
        // Without the rules the engine still isolates networks from each other; only the
        // host's own processes (guests included) could reach undeclared ports.
        if let Err(error) = firewall::install(network::BRIDGE_PREFIX, options.guest_uids) {
            tracing::warn!(%error, "process guests can reach containers' undeclared ports");
        }
        let exits = Arc::new(exits::Exits::default());
        let tokio = tokio::runtime::Handle::current();
        exits.follow(engine.docker.clone(), &tokio);
        let inner = Inner {
            engine,
            options,
            gpus,
            events,
            tokio,
            pulls: images::Pulls::default(),
            exits,
            workloads: Mutex::new(HashMap::new()),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The engine this runtime drives.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}

impl Inner {
    fn workloads(&self) -> MutexGuard<'_, HashMap<InstanceId, Control>> {
        // The map stays consistent even if a holder panicked: every change is one insert/remove.
        self.workloads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a container to supervise; its stop channel.
    fn register(&self, id: &InstanceId) -> Option<oneshot::Receiver<Duration>> {
        let mut workloads = self.workloads();
        if workloads.contains_key(id) {
            return None;
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        workloads.insert(id.clone(), Control { stop: Some(stop_tx) });
        Some(stop_rx)
    }
}

impl WorkloadRuntime for ContainerRuntime {
    /// Only an unusable spec fails here; pulling, creating and starting happen on a task,
    /// and their failures are the workload's final event (`image_pull_failed: …`).
    fn start(&self, spec: WorkloadSpec) -> Result<(), RuntimeError> {
        let id = spec.instance_id.clone();
        let Some(image) = spec.image.clone().filter(|i| !i.trim().is_empty()) else {
            return Err(RuntimeError::Exec(format!(
                "instance {id} names no image, and the container runtime runs only images"
            )));
        };
        supervise::prepare(&spec)?;
        let stop = self.inner.register(&id).ok_or(RuntimeError::AlreadyRunning(id))?;
        let _runtime = self.inner.tokio.enter();
        self.inner.tokio.spawn(supervise::run(self.inner.clone(), spec, image, stop));
        Ok(())
    }

    /// SIGTERM (through the container's init), SIGKILL after `kill_timeout`, then removal.
    fn stop(&self, instance_id: &InstanceId, kill_timeout: Duration) {
        let stop = self.inner.workloads().get_mut(instance_id).and_then(|c| c.stop.take());
        if let Some(stop) = stop {
            let _ = stop.send(kill_timeout);
        }
    }

    fn running(&self) -> Vec<InstanceId> {
        self.inner.workloads().keys().cloned().collect()
    }

    fn adopt(&self) -> Vec<InstanceId> {
        adopt::adopt(&self.inner)
    }

    fn exec(&self, instance_id: &InstanceId, spec: ExecSpec) -> Result<ExecSession, RuntimeError> {
        exec::start(&self.inner, instance_id, spec)
    }

    fn runtimes(&self) -> Vec<GuestRuntime> {
        vec![GuestRuntime::Container]
    }
}
