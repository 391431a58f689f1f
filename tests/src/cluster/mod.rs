//! One test's cluster: a temp dir, a coordinator and the agents started from it. Dropping it
//! (panics included) kills every process it started, workloads too, and a failing test gets
//! the tail of every log printed.

//!
//! Starting, restarting and holding its agents is `agents`.

mod agents;

pub use agents::Agent;

use crate::api::{Api, s};
use crate::coordinator::{Coordinator, LogList};
use crate::process::kill_processes_under;
use crate::wait::wait_until;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Paths of the wrapper binaries; build one with [`crate::binaries!`] inside a test crate.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub coordinator: PathBuf,
    pub agent: PathBuf,
}

/// The binaries of this package, as seen from an integration test.
#[macro_export]
macro_rules! binaries {
    () => {
        $crate::Binaries {
            coordinator: env!("CARGO_BIN_EXE_e2e-coordinator").into(),
            agent: env!("CARGO_BIN_EXE_e2e-agent").into(),
        }
    };
}

/// A cluster of this package's binaries; the usual way to start a scenario.
/// `cluster!(config)` starts its coordinator on `config` (a whole TOML text, e.g. from
/// [`crate::coordinator::config_with_timers`]) instead of [`crate::TEST_CONFIG`].
#[macro_export]
macro_rules! cluster {
    () => {
        $crate::Cluster::start($crate::binaries!())
    };
    ($config:expr) => {
        $crate::Cluster::start_with_config($crate::binaries!(), $config)
    };
}

/// Default deadline for a state change that should take a few seconds.
pub const SOON: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub coordinator: Coordinator,
    pub api: Api,
    bins: Binaries,
    logs: LogList,
    agents_started: Mutex<u32>,
    /// `--coordinator` for agents started from now on, when not this coordinator alone.
    agent_coordinators: Mutex<Option<String>>,
    // Dropped last: the processes above die before their files go.
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(bins: Binaries) -> Cluster {
        Cluster::start_with_config(bins, crate::TEST_CONFIG)
    }

    /// A cluster whose coordinator runs on `config` (a whole coordinator TOML).
    pub fn start_with_config(bins: Binaries, config: &str) -> Cluster {
        let dir = tempfile::Builder::new().prefix("e2e").tempdir().expect("temp dir");
        // Guests run under their own uids (docs/contracts.md#guests) and must reach their dirs
        // below it.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .expect("chmod temp dir");
        let logs: LogList = Arc::new(Mutex::new(Vec::new()));
        let coordinator =
            Coordinator::start_with_config(&bins.coordinator, dir.path(), logs.clone(), config);
        let api = coordinator.api();
        let agent_coordinators = Mutex::new(None);
        Cluster {
            coordinator,
            api,
            bins,
            logs,
            agents_started: Mutex::new(0),
            agent_coordinators,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Agents started from now on get `addresses` (`HOST:PORT,HOST:PORT`) as their
    /// `--coordinator`: standby coordinators on one PostgreSQL.
    pub fn agents_use(&self, addresses: &str) {
        *self.agent_coordinators.lock().expect("agent coordinators") = Some(addresses.to_owned());
    }

    /// The test's log files so far (and a place to add others, e.g. a second coordinator's).
    pub fn logs(&self) -> LogList {
        self.logs.clone()
    }

    /// A fresh single-use join token.
    pub fn join_token(&self) -> String {
        self.coordinator.create_join_token(1)
    }

    /// A fresh join token that admits `uses` hosts.
    pub fn join_token_for(&self, uses: u32) -> String {
        self.coordinator.create_join_token(uses)
    }

    /// One of seed 004's host profiles in `config/hosts/` ("host-a", "host-b", "host-c").
    pub fn seed_profile(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hosts").join(format!("{name}.toml"))
    }

    /// Writes a simulated host profile into the test dir.
    pub fn write_profile(
        &self,
        name: &str,
        model: &str,
        gpus: u32,
        cores: u32,
        mem: u32,
    ) -> PathBuf {
        let path = self.dir().join(format!("{name}.toml"));
        let text = format!(
            "name = {name:?}\nmodel = {model:?}\ngpu_count = {gpus}\ngpu_memory_mib = 81920\n\
             cpu_cores = {cores}\nmemory_gib = {mem}\n"
        );
        std::fs::write(&path, text).expect("write profile");
        path
    }

    /// The address of the coordinator's gateway, when its config has `[gateway]`.
    pub fn gateway(&self) -> Option<String> {
        let text =
            std::fs::read_to_string(self.coordinator.data_dir.join("endpoints.json")).ok()?;
        let endpoints: Value = serde_json::from_str(&text).ok()?;
        endpoints["gateway"].as_str().map(str::to_owned)
    }

    /// The host named `hostname`, if the coordinator knows it.
    pub fn host(&self, hostname: &str) -> Option<Value> {
        self.api.hosts().into_iter().find(|h| s(h, "hostname") == hostname)
    }

    /// Waits until the host named `hostname` is in `state`; the host.
    pub fn wait_host(&self, hostname: &str, state: &str) -> Value {
        wait_until(SOON, &format!("host {hostname} to be {state}"), || match self.host(hostname) {
            Some(host) if s(&host, "state") == state => Ok(host),
            Some(host) => Err(format!("state {}", s(&host, "state"))),
            None => Err("not listed in GET /v1/hosts".into()),
        })
    }

    /// Waits until instance `id` is in `state`; the instance. Reaching `terminated` or `failed` while
    /// waiting for another state fails at once.
    pub fn wait_state(&self, id: &str, state: &str) -> Value {
        self.wait_state_within(id, state, SOON)
    }

    pub fn wait_state_within(&self, id: &str, state: &str, timeout: Duration) -> Value {
        wait_until(timeout, &format!("instance {id} to be {state}"), || {
            let instance = self.api.instance(id);
            let now = s(&instance, "state");
            if now == state {
                return Ok(instance);
            }
            if now == "terminated" || now == "failed" {
                panic!("instance {id} ended while waiting for {state}: {instance}");
            }
            Err(instance.to_string())
        })
    }

    /// Waits until the instance's output contains `needle`; the whole output.
    pub fn wait_logs(&self, id: &str, needle: &str) -> String {
        wait_until(SOON, &format!("the output of {id} to contain {needle:?}"), || {
            let logs = self.api.logs(id);
            if logs.contains(needle) { Ok(logs) } else { Err(format!("{logs:?}")) }
        })
    }

    fn print_logs(&self) {
        for path in self.logs.lock().map(|l| l.clone()).unwrap_or_default() {
            eprintln!(
                "----- {} (tail) -----\n{}",
                path.display(),
                crate::process::log_tail(&path, 6000)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.coordinator.kill();
        kill_processes_under(self.dir.path());
        crate::guests::kill_guests_under(self.dir.path());
        crate::mounts::unmount_under(self.dir.path());
        if std::thread::panicking() {
            self.print_logs();
            if std::env::var_os("E2E_KEEP").is_some() {
                eprintln!("keeping {}", self.dir.path().display());
                self.dir.disable_cleanup(true);
            }
        }
    }
}
