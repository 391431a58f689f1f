//! The container tests' harness: one shared engine and test image, a host (state dir and
//! runtime) per test whose containers go with it, and waits with deadlines.

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use gpuspot_agent::runtime::container::{LABEL_AGENT, container_name};
use gpuspot_agent::runtime::{ContainerOptions, ContainerRuntime, RuntimeEvent, WorkloadSpec};
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::WorkloadState;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

pub const SOON: Duration = Duration::from_secs(30);

/// The shared engine and test image, started once per test binary.
pub struct TestEngine {
    pub url: String,
    pub image: String,
}

pub fn engine() -> &'static TestEngine {
    static ENGINE: OnceLock<TestEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/container-engine.sh");
        let output = std::process::Command::new(&script).output().expect("run container-engine.sh");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{} failed: {stdout}{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key}= in {stdout}"))
                .to_owned()
        };
        TestEngine { url: value("engine"), image: value("image") }
    })
}

/// One agent's state dir, and the removal of its containers when the test ends.
pub struct Host {
    pub dir: tempfile::TempDir,
}

impl Host {
    pub fn new() -> Host {
        Host { dir: tempfile::Builder::new().prefix("ctr").tempdir().expect("temp dir") }
    }

    pub fn label(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// A runtime for this agent, on `rt`, and its events.
    pub fn runtime(
        &self,
        rt: &Runtime,
    ) -> (ContainerRuntime, mpsc::UnboundedReceiver<RuntimeEvent>) {
        self.runtime_on(rt, &engine().url)
    }

    /// [`Host::runtime`] on the engine at `url`.
    pub fn runtime_on(
        &self,
        rt: &Runtime,
        url: &str,
    ) -> (ContainerRuntime, mpsc::UnboundedReceiver<RuntimeEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let options = ContainerOptions {
            agent: self.label(),
            real_gpus: false,
            log_max_bytes: 1 << 20,
            guest_uids: None,
        };
        let _guard = rt.enter();
        (ContainerRuntime::connect(url, options, tx).expect("connect"), rx)
    }

    /// A 1-core, 1-GiB spec running `script` in the test image.
    pub fn spec(&self, script: &str) -> WorkloadSpec {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let id = InstanceId::from(format!("i-t{}x{n}x{}", std::process::id(), nanos()).as_str());
        let dir = self.dir.path().join("instances").join(id.as_str());
        let socket_dir = self.dir.path().join("sock").join(id.as_str());
        std::fs::create_dir_all(&socket_dir).expect("socket dir");
        WorkloadSpec {
            instance_id: id,
            command: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
            gpu_uuids: vec!["GPU-fake-1".into()],
            cpu_cores: 1,
            memory_gib: 1,
            data_dir: dir.join("data"),
            metadata_socket: socket_dir.join("metadata.sock"),
            log_path: dir.join("output.log"),
            image: Some(engine().image.clone()),
            data_disk_gib: 1,
            ports: Vec::new(),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let label = self.label();
        let rt = Runtime::new().expect("runtime");
        rt.block_on(async {
            let docker = docker();
            let filters =
                HashMap::from([("label".to_owned(), vec![format!("{LABEL_AGENT}={label}")])]);
            let options =
                ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
            for c in docker.list_containers(Some(options)).await.unwrap_or_default() {
                let remove = RemoveContainerOptions { force: true, v: true, link: false };
                let _ = docker.remove_container(&c.id.unwrap_or_default(), Some(remove)).await;
            }
            let filters =
                HashMap::from([("label".to_owned(), vec![format!("{LABEL_AGENT}={label}")])]);
            let options = bollard::query_parameters::ListNetworksOptions { filters: Some(filters) };
            for n in docker.list_networks(Some(options)).await.unwrap_or_default() {
                let _ = docker.remove_network(&n.name.unwrap_or_default()).await;
            }
        });
    }
}

pub fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        % 1_000_000
}

pub fn docker() -> Docker {
    Docker::connect_with_unix(
        &engine().url,
        60,
        &bollard::ClientVersion { major_version: 1, minor_version: 41 },
    )
    .expect("client")
}

/// Polls `check` every 50 ms until it returns Some, or panics after `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

pub fn log_of(spec: &WorkloadSpec) -> String {
    String::from_utf8_lossy(&std::fs::read(&spec.log_path).unwrap_or_default()).into_owned()
}

pub fn wait_log(spec: &WorkloadSpec, needle: &str) -> String {
    wait_for(SOON, &format!("{needle:?} in the log"), || {
        let log = log_of(spec);
        if log.contains(needle) { Ok(log) } else { Err(format!("{log:?}")) }
    })
}

pub fn raw_event(rt: &Runtime, events: &mut mpsc::UnboundedReceiver<RuntimeEvent>) -> RuntimeEvent {
    rt.block_on(async { tokio::time::timeout(SOON, events.recv()).await })
        .expect("an event in time")
        .expect("the runtime is alive")
}

/// The workload's end, past the `Running` event a container sends once it has started.
pub fn next_event(
    rt: &Runtime,
    events: &mut mpsc::UnboundedReceiver<RuntimeEvent>,
) -> RuntimeEvent {
    loop {
        let event = raw_event(rt, events);
        if event.state != WorkloadState::Running {
            return event;
        }
    }
}

/// The engine's view of a container: (exists, running).
pub fn container_state(rt: &Runtime, id: &InstanceId) -> (bool, bool) {
    let name = container_name(id);
    rt.block_on(async {
        match docker().inspect_container(&name, None::<InspectContainerOptions>).await {
            Ok(info) => (true, info.state.and_then(|s| s.running).unwrap_or(false)),
            Err(_) => (false, false),
        }
    })
}

/// Waits until the instance's container is gone (it is removed after its end is reported).
pub fn wait_removed(rt: &Runtime, id: &InstanceId) {
    wait_for(SOON, "the container to be removed", || match container_state(rt, id) {
        (false, _) => Ok(()),
        state => Err(format!("{state:?}")),
    });
}
