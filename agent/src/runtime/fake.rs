//! A runtime without processes, for load tests and for testing the agent's bookkeeping: it
//! records starts and stops and ends workloads only when told to, through the same events
//! channel and with the same contract as the real runtime.

use super::{ExecSession, ExecSpec, RuntimeError, RuntimeEvent, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::{GuestRuntime, WorkloadState};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

pub struct FakeRuntime {
    events: mpsc::UnboundedSender<RuntimeEvent>,
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    running: BTreeMap<InstanceId, WorkloadSpec>,
    started: Vec<WorkloadSpec>,
    stopped: Vec<(InstanceId, Duration)>,
    /// When set, every start fails as if the binary were missing.
    fail_starts: Option<String>,
}

impl FakeRuntime {
    pub fn new(events: mpsc::UnboundedSender<RuntimeEvent>) -> Self {
        Self { events, state: Mutex::new(FakeState::default()) }
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends a running workload with `state` (e.g. `Exited { code: Some(0) }`), reporting it
    /// on the channel. Returns false when `instance_id` is not running.
    pub fn finish(&self, instance_id: &InstanceId, state: WorkloadState) -> bool {
        if self.state().running.remove(instance_id).is_none() {
            return false;
        }
        self.report(instance_id, state);
        true
    }

    /// Makes later starts fail with a spawn error carrying `message` (`None` heals).
    pub fn fail_starts(&self, message: Option<String>) {
        self.state().fail_starts = message;
    }

    /// Every spec successfully started, oldest first.
    pub fn started(&self) -> Vec<WorkloadSpec> {
        self.state().started.clone()
    }

    /// Every stop of a running workload, with its kill timeout, oldest first.
    pub fn stopped(&self) -> Vec<(InstanceId, Duration)> {
        self.state().stopped.clone()
    }

    /// The spec of a running workload.
    pub fn spec(&self, instance_id: &InstanceId) -> Option<WorkloadSpec> {
        self.state().running.get(instance_id).cloned()
    }

    fn report(&self, instance_id: &InstanceId, state: WorkloadState) {
        let _ = self.events.send(RuntimeEvent { instance_id: instance_id.clone(), state });
    }
}

impl WorkloadRuntime for FakeRuntime {
    fn start(&self, spec: WorkloadSpec) -> Result<(), RuntimeError> {
        let id = spec.instance_id.clone();
        if spec.command.is_empty() {
            return Err(RuntimeError::EmptyCommand(id));
        }
        let mut state = self.state();
        if let Some(message) = &state.fail_starts {
            return Err(RuntimeError::Spawn {
                program: spec.command[0].clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, message.clone()),
            });
        }
        if state.running.contains_key(&id) {
            return Err(RuntimeError::AlreadyRunning(id));
        }
        state.started.push(spec.clone());
        state.running.insert(id, spec);
        Ok(())
    }

    fn stop(&self, instance_id: &InstanceId, kill_timeout: Duration) {
        let mut state = self.state();
        if state.running.remove(instance_id).is_none() {
            return;
        }
        state.stopped.push((instance_id.clone(), kill_timeout));
        drop(state);
        self.report(instance_id, WorkloadState::Stopped);
    }

    fn running(&self) -> Vec<InstanceId> {
        self.state().running.keys().cloned().collect()
    }

    /// Fake workloads live in this process only: none survive it.
    fn adopt(&self) -> Vec<InstanceId> {
        Vec::new()
    }

    /// There is no process to run a command in.
    fn exec(&self, instance_id: &InstanceId, _spec: ExecSpec) -> Result<ExecSession, RuntimeError> {
        Err(RuntimeError::Exec(format!(
            "instance {instance_id} runs on a load-test host without processes"
        )))
    }

    fn runtimes(&self) -> Vec<GuestRuntime> {
        vec![GuestRuntime::Process]
    }

    /// Its guests are bookkeeping only: they hold no host port.
    fn binds_host_ports(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec(id: &str) -> WorkloadSpec {
        WorkloadSpec {
            instance_id: InstanceId::from(id),
            command: vec!["train".into()],
            env: BTreeMap::new(),
            gpu_uuids: vec!["GPU-1".into()],
            cpu_cores: 16,
            memory_gib: 90,
            data_dir: PathBuf::from("/nonexistent"),
            metadata_socket: PathBuf::from("/nonexistent.sock"),
            log_path: PathBuf::from("/nonexistent.log"),
            image: None,
            data_disk_gib: 1,
            ports: Vec::new(),
        }
    }

    #[test]
    fn records_and_reports_like_the_real_runtime() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runtime = FakeRuntime::new(tx);
        runtime.start(spec("i-a")).expect("start");
        runtime.start(spec("i-b")).expect("start");
        assert!(matches!(runtime.start(spec("i-a")), Err(RuntimeError::AlreadyRunning(_))));
        assert_eq!(runtime.running().len(), 2);

        let a = InstanceId::from("i-a");
        assert!(runtime.finish(&a, WorkloadState::Exited { code: Some(0) }));
        assert!(!runtime.finish(&a, WorkloadState::Stopped));
        let event = rx.try_recv().expect("event");
        assert_eq!(event.state, WorkloadState::Exited { code: Some(0) });

        let b = InstanceId::from("i-b");
        runtime.stop(&b, Duration::from_secs(7));
        runtime.stop(&b, Duration::from_secs(7));
        assert_eq!(rx.try_recv().expect("event").state, WorkloadState::Stopped);
        assert!(rx.try_recv().is_err());
        assert_eq!(runtime.stopped(), vec![(b, Duration::from_secs(7))]);
        assert_eq!(runtime.started().len(), 2);
        assert!(runtime.running().is_empty());
    }

    #[test]
    fn failing_starts_are_errors_not_events() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let runtime = FakeRuntime::new(tx);
        runtime.fail_starts(Some("no such file".into()));
        assert!(matches!(runtime.start(spec("i-a")), Err(RuntimeError::Spawn { .. })));
        let mut empty = spec("i-b");
        empty.command.clear();
        assert!(matches!(runtime.start(empty), Err(RuntimeError::EmptyCommand(_))));
        runtime.fail_starts(None);
        runtime.start(spec("i-a")).expect("start");
        assert_eq!(runtime.spec(&InstanceId::from("i-a")), Some(spec("i-a")));
        assert!(rx.try_recv().is_err());
    }
}
