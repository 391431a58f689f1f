//! One test's cluster: a temp dir, a coordinator and the agents started from it. Dropping it
//! (panics included) kills every process it started, workloads too, and a failing test gets
//! the tail of every log printed.

use crate::api::{Api, s};
use crate::coordinator::{Coordinator, LogList};
use crate::join::JoinVia;
use crate::process::{Proc, kill_processes_under};
use crate::wait::wait_until;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 16 host ports for the guests of the agent on `state_dir`: agents of parallel tests share
/// this machine, so each gets a block of its own (the same on every restart), below the
/// kernel's ephemeral ports (32768 and up), which clients' sockets take.
fn port_block(state_dir: &Path) -> String {
    let (first, last) = port_range(state_dir);
    format!("{first}-{last}")
}

/// The block of [`port_block`], as numbers.
fn port_range(state_dir: &Path) -> (u16, u16) {
    static BLOCKS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut blocks = BLOCKS.lock().unwrap_or_else(|p| p.into_inner());
    let index = match blocks.iter().position(|d| d == state_dir) {
        Some(index) => index,
        None => {
            blocks.push(state_dir.to_owned());
            blocks.len() - 1
        }
    };
    // Test binaries run one after another; the pid staggers them anyway.
    let block = (std::process::id() as usize * 31 + index) % 700;
    let first = 21_000 + block as u16 * 16;
    (first, first + 15)
}

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

    /// Starts an agent for `profile` with a fresh join token and waits until its host is
    /// connected.
    pub fn agent(&self, profile: &Path) -> Agent {
        let agent = self.spawn_agent(profile, Some(&self.join_token()));
        self.wait_host(&agent.hostname, "connected");
        agent
    }

    /// Starts an agent without waiting for anything; `token` (in a private file, given
    /// with `--join-token-file`) None means none.
    pub fn spawn_agent(&self, profile: &Path, token: Option<&str>) -> Agent {
        self.spawn_agent_via(profile, token.map(JoinVia::File))
    }

    /// Starts an agent that is handed its join token `via` a file, stdin, the environment
    /// or the command line, without waiting for anything.
    pub fn spawn_agent_via(&self, profile: &Path, via: Option<JoinVia<'_>>) -> Agent {
        let hostname = profile_name(profile);
        let n = {
            let mut started = self.agents_started.lock().expect("counter");
            *started += 1;
            *started
        };
        let state_dir = self.dir().join(format!("agent-{n}"));
        self.spawn_agent_in(profile, via, &state_dir, &hostname)
    }

    /// SIGKILLs `agent` and starts it again on its state dir (it reconnects with the
    /// credentials kept there, no token); its workloads are left alone.
    pub fn restart_agent(&self, agent: &mut Agent, profile: &Path) {
        agent.kill();
        agent.proc = self.spawn_agent_proc(profile, None, &agent.state_dir, &agent.hostname);
    }

    /// Starts another agent process on an existing state dir (no token), without waiting.
    pub fn spawn_agent_on(&self, profile: &Path, state_dir: &Path, hostname: &str) -> Agent {
        self.spawn_agent_in(profile, None, state_dir, hostname)
    }

    fn spawn_agent_in(
        &self,
        profile: &Path,
        via: Option<JoinVia<'_>>,
        state_dir: &Path,
        hostname: &str,
    ) -> Agent {
        let proc = self.spawn_agent_proc(profile, via, state_dir, hostname);
        Agent { proc, state_dir: state_dir.to_owned(), hostname: hostname.to_owned() }
    }

    fn spawn_agent_proc(
        &self,
        profile: &Path,
        via: Option<JoinVia<'_>>,
        state_dir: &Path,
        hostname: &str,
    ) -> Proc {
        let log = {
            let mut logs = self.logs.lock().expect("log list");
            let log = PathBuf::from(format!("{}.{}.log", state_dir.display(), logs.len()));
            logs.push(log.clone());
            log
        };
        let mut command = self.agent_command(&self.bins.agent, profile, state_dir, None);
        let stdin = match via {
            Some(via) => via.apply(&mut command, state_dir),
            None => Stdio::null(),
        };
        Proc::spawn_with_stdin(&format!("agent {hostname}"), command, &log, stdin)
    }

    /// How the tests start an agent binary: simulated hosts from `profile`, state in
    /// `state_dir`, a short link timeout, and nothing taken from the caller's environment;
    /// `token` goes into a private file given with `--join-token-file`.
    pub fn agent_command(
        &self,
        bin: &Path,
        profile: &Path,
        state_dir: &Path,
        token: Option<&str>,
    ) -> Command {
        let mut command = Command::new(bin);
        let coordinators = self.agent_coordinators.lock().expect("agent coordinators").clone();
        command
            .arg("--coordinator")
            .arg(coordinators.unwrap_or_else(|| self.coordinator.quic.to_string()))
            .arg("--simulate")
            .arg(profile)
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--link-timeout", "3s"])
            .arg("--ports")
            .arg(port_block(state_dir))
            .env_remove("GPUSPOT_PORTS")
            .env_remove("GPUSPOT_ADVERTISE_ADDRESS")
            .env_remove("GPUSPOT_JOIN_TOKEN")
            .env_remove("GPUSPOT_AGENT_CONFIG")
            .env_remove("GPUSPOT_STATE_DIR")
            .env_remove("GPUSPOT_CONTAINER_ENGINE");
        if let Some(token) = token {
            JoinVia::File(token).apply(&mut command, state_dir);
        }
        command
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

/// The `name` of a host profile (the hostname the agent reports), else the file stem.
fn profile_name(profile: &Path) -> String {
    std::fs::read_to_string(profile)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let value = line.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
                Some(value.trim().trim_matches('"').to_owned())
            })
        })
        .or_else(|| profile.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// A running agent process; SIGKILLed on drop, and its workloads with it.
pub struct Agent {
    pub state_dir: PathBuf,
    pub hostname: String,
    proc: Proc,
}

impl Agent {
    /// SIGKILL the agent only: its workloads live on, as after a crash.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Waits for the agent to exit by itself; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("agent {} to exit", self.hostname);
        let proc = &mut self.proc;
        wait_until(timeout, &what, || proc.try_wait().ok_or_else(|| proc.log_tail(1500)))
    }

    pub fn log(&self) -> String {
        self.proc.log_tail(1 << 20)
    }

    /// The host ports it hands to guests (`--ports`), inclusive.
    pub fn ports(&self) -> (u16, u16) {
        port_range(&self.state_dir)
    }

    /// `<state-dir>/instances/<id>/data`: the instance's GPUSPOT_DATA_DIR.
    pub fn instance_data_dir(&self, id: &str) -> PathBuf {
        self.state_dir.join("instances").join(id).join("data")
    }

    /// Waits for the file `pid` that a workload (`echo $$ > pid`) wrote in its data dir;
    /// the pid on the host (the guest sees its own PID namespace's).
    pub fn workload_pid(&self, id: &str) -> u32 {
        let data_dir = self.instance_data_dir(id);
        let file = data_dir.join("pid");
        wait_until(SOON, &format!("{} to hold a running pid", file.display()), || {
            let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
            let pid = text.trim().parse::<u32>().map_err(|e| format!("{text:?}: {e}"))?;
            crate::guests::host_pid_of(&data_dir, pid).ok_or(format!("pid {pid} does not run"))
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.proc.kill();
        kill_processes_under(&self.state_dir);
    }
}
