//! The cluster's agents: starting them (a fresh join token, or the credentials kept in a
//! state dir), the command line they get (simulated hosts, a private block of guest ports),
//! and [`Agent`], the handle that kills an agent and its workloads when dropped.

use super::{Cluster, SOON};
use crate::join::JoinVia;
use crate::process::{Proc, kill_processes_under};
use crate::wait::wait_until;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
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

impl Cluster {
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
