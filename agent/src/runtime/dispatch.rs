//! One [`WorkloadRuntime`] over a host's guest runtimes (docs/contracts.md#guests): an instance
//! with an image goes to the container runtime, one without to the process runtime; stops and execs
//! go to whichever runs the instance.

use super::{ExecSession, ExecSpec, RuntimeError, WorkloadRuntime, WorkloadSpec};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::GuestRuntime;
use std::sync::Arc;
use std::time::Duration;

pub struct GuestRuntimes {
    process: Arc<dyn WorkloadRuntime>,
    /// None: the host has no container engine.
    container: Option<Arc<dyn WorkloadRuntime>>,
}

impl GuestRuntimes {
    pub fn new(
        process: Arc<dyn WorkloadRuntime>,
        container: Option<Arc<dyn WorkloadRuntime>>,
    ) -> Self {
        Self { process, container }
    }

    /// The runtime that runs `id`, if any.
    fn owner(&self, id: &InstanceId) -> Option<&Arc<dyn WorkloadRuntime>> {
        let runs = |runtime: &&Arc<dyn WorkloadRuntime>| runtime.running().contains(id);
        self.container.as_ref().filter(runs).or(Some(&self.process).filter(runs))
    }
}

impl WorkloadRuntime for GuestRuntimes {
    fn start(&self, spec: WorkloadSpec) -> Result<(), RuntimeError> {
        let (Some(image), container) = (&spec.image, &self.container) else {
            return self.process.start(spec);
        };
        match container {
            Some(container) => container.start(spec),
            None => Err(RuntimeError::Exec(format!(
                "instance {} asks for image {image}, but this host runs no containers \
                 (its agent has no container engine)",
                spec.instance_id
            ))),
        }
    }

    fn stop(&self, instance_id: &InstanceId, kill_timeout: Duration) {
        if let Some(runtime) = self.owner(instance_id) {
            runtime.stop(instance_id, kill_timeout);
        }
    }

    fn running(&self) -> Vec<InstanceId> {
        let mut running = self.process.running();
        running.extend(self.container.iter().flat_map(|c| c.running()));
        running
    }

    fn adopt(&self) -> Vec<InstanceId> {
        let mut adopted = self.process.adopt();
        adopted.extend(self.container.iter().flat_map(|c| c.adopt()));
        adopted
    }

    fn exec(&self, instance_id: &InstanceId, spec: ExecSpec) -> Result<ExecSession, RuntimeError> {
        match self.owner(instance_id) {
            Some(runtime) => runtime.exec(instance_id, spec),
            None => Err(RuntimeError::NotRunning(instance_id.clone())),
        }
    }

    fn runtimes(&self) -> Vec<GuestRuntime> {
        let mut runtimes = self.process.runtimes();
        runtimes.extend(self.container.iter().flat_map(|c| c.runtimes()));
        runtimes.sort();
        runtimes.dedup();
        runtimes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FakeRuntime;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use tokio::sync::mpsc;

    fn spec(id: &str, image: Option<&str>) -> WorkloadSpec {
        WorkloadSpec {
            instance_id: InstanceId::from(id),
            command: vec!["run".into()],
            env: BTreeMap::new(),
            gpu_uuids: vec![],
            cpu_cores: 1,
            memory_gib: 1,
            data_dir: PathBuf::from("/nonexistent"),
            metadata_socket: PathBuf::from("/nonexistent.sock"),
            log_path: PathBuf::from("/nonexistent.log"),
            image: image.map(str::to_owned),
            data_disk_gib: 1,
            ports: Vec::new(),
        }
    }

    fn fakes() -> (Arc<FakeRuntime>, Arc<FakeRuntime>) {
        let (tx, _rx) = mpsc::unbounded_channel();
        (Arc::new(FakeRuntime::new(tx.clone())), Arc::new(FakeRuntime::new(tx)))
    }

    #[test]
    fn images_go_to_containers_and_stops_to_the_owner() {
        let (process, container) = fakes();
        let guests = GuestRuntimes::new(process.clone(), Some(container.clone()));
        guests.start(spec("i-p", None)).expect("process start");
        guests.start(spec("i-c", Some("img"))).expect("container start");
        assert_eq!(process.running(), vec![InstanceId::from("i-p")]);
        assert_eq!(container.running(), vec![InstanceId::from("i-c")]);
        assert_eq!(guests.running().len(), 2);

        guests.stop(&InstanceId::from("i-c"), Duration::from_secs(3));
        assert_eq!(container.stopped(), vec![(InstanceId::from("i-c"), Duration::from_secs(3))]);
        assert!(process.stopped().is_empty());
        let unknown = guests.exec(
            &InstanceId::from("i-x"),
            ExecSpec { command: vec!["true".into()], tty: false, size: None, stdin: false },
        );
        assert!(matches!(unknown, Err(RuntimeError::NotRunning(_))));
    }

    #[test]
    fn without_an_engine_images_are_refused_with_a_reason() {
        let (process, _) = fakes();
        let guests = GuestRuntimes::new(process.clone(), None);
        let error = guests.start(spec("i-c", Some("img"))).expect_err("refused");
        assert!(error.to_string().contains("runs no containers"), "{error}");
        assert!(process.running().is_empty());
        assert_eq!(guests.runtimes(), vec![GuestRuntime::Process]);
    }
}
