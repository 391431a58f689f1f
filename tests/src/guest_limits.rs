//! Helpers for the guest limit scenarios (docs/contracts.md#limits): an agent started with its own
//! agent config file (`--config`, e.g. `[logs] max_bytes`), guests that print their metadata
//! socket's path, a flood of connections held open on a socket, and the test process's own
//! descriptor limit.

use crate::api::{request, s, sh};
use crate::cluster::Cluster;
use crate::process::{Proc, kill_processes_under};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// An agent process started with an agent config file; killed, with its workloads, on drop.
/// Its log is printed when the test fails.
pub struct ConfiguredAgent {
    pub state_dir: PathBuf,
    pub hostname: String,
    proc: Proc,
}

impl ConfiguredAgent {
    /// Starts the agent binary `bin` (`binaries!().agent`) for `profile` (whose `name` is
    /// `hostname`) with `config` (agent TOML) and a fresh join token in
    /// `GPUSPOT_JOIN_TOKEN`, and waits until its host is connected.
    pub fn start(
        c: &Cluster,
        bin: &Path,
        profile: &Path,
        hostname: &str,
        config: &str,
    ) -> ConfiguredAgent {
        let state_dir = c.dir().join(format!("configured-{hostname}"));
        let config_path = c.dir().join(format!("configured-{hostname}.toml"));
        std::fs::write(&config_path, config).expect("write the agent config");
        let mut command = Command::new(bin);
        command
            .arg("--config")
            .arg(&config_path)
            .arg("--coordinator")
            .arg(c.coordinator.quic.to_string())
            .arg("--simulate")
            .arg(profile)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["--link-timeout", "3s"])
            .env("GPUSPOT_JOIN_TOKEN", c.join_token())
            .env_remove("GPUSPOT_AGENT_CONFIG")
            .env_remove("GPUSPOT_STATE_DIR");
        let log = c.dir().join(format!("configured-{hostname}.log"));
        let proc = Proc::spawn(&format!("agent {hostname}"), command, &log);
        let agent = ConfiguredAgent { state_dir, hostname: hostname.to_owned(), proc };
        c.wait_host(hostname, "connected");
        agent
    }

    /// `<state-dir>/instances/<id>/output.log`: the workload's output on the agent.
    pub fn output_log(&self, id: &str) -> PathBuf {
        self.state_dir.join("instances").join(id).join("output.log")
    }
}

impl Drop for ConfiguredAgent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- {} (tail) -----\n{}", self.proc.name, self.proc.log_tail(6000));
        }
        self.proc.kill();
        kill_processes_under(&self.state_dir);
    }
}

/// Starts a one-GPU guest that prints its socket path and then sleeps; (id, socket).
pub fn start_guest(c: &Cluster, name: &str, model: &str) -> (String, PathBuf) {
    let script = "echo SOCKET=$GPUSPOT_METADATA_SOCKET; exec sleep 300";
    let created = c.api.create(&request(name, &[model], 1, &sh(script)));
    let id = s(&created, "id").to_owned();
    c.wait_state(&id, "running");
    let logs = c.wait_logs(&id, "SOCKET=/");
    let socket = logs
        .lines()
        .find_map(|line| line.trim().strip_prefix("SOCKET="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no socket line in {logs:?}"));
    (id, socket)
}

/// Raises this process's soft descriptor limit to its hard limit; the limit now in force.
pub fn raise_own_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "getrlimit");
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0, "setrlimit");
    }
    limit.rlim_cur
}

/// Opens `n` connections to `socket` and holds them (the agent keeps at most its cap of
/// them; the others it closes at once, but this side still holds their descriptors).
/// A connect blocks while the socket's backlog is full, so the flood runs on a thread
/// with a deadline: an agent that stopped accepting fails the test instead of hanging it.
pub fn flood(socket: &Path, n: usize, within: Duration) -> Vec<UnixStream> {
    let (done, result) = std::sync::mpsc::channel();
    let socket = socket.to_owned();
    std::thread::spawn(move || {
        let opened: std::io::Result<Vec<UnixStream>> =
            (0..n).map(|_| UnixStream::connect(&socket)).collect();
        let _ = done.send(opened);
    });
    match result.recv_timeout(within) {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => panic!("opening {n} connections: {e}"),
        Err(_) => panic!("{n} connections were not accepted within {within:?}"),
    }
}
