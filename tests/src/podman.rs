//! Podman for the container scenarios (docs/contracts.md#guests): `scripts/container-engine.sh`
//! starts one Podman API service for the whole machine and builds the test image (busybox, bash,
//! curl) if it is missing; every test process runs the script once and shares the service.
//!
//! The service's lifetime: parallel test binaries share it (the script serialises them with
//! a lock file and reuses a service that answers), so no test may stop it. It is started
//! with an idle timeout instead (`--time`, 900 s): it exits by itself once no client has
//! talked to it for that long, so it never outlives a test run by more than that. The
//! containers live on without it (conmon keeps them), and each [`ContainerAgent`] removes
//! the containers labelled with its state dir when it is dropped.

use crate::cluster::Cluster;
use crate::process::{Proc, kill_processes_under};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The shared engine: its API URL (`unix:///…`) and the test image.
#[derive(Debug)]
pub struct Podman {
    pub url: String,
    pub image: String,
}

/// The engine, started (or found running) once per test process.
pub fn podman() -> &'static Podman {
    static PODMAN: OnceLock<Podman> = OnceLock::new();
    PODMAN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/container-engine.sh");
        let output = Command::new(&script).output().expect("run scripts/container-engine.sh");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{} failed: {stdout}{stderr}", script.display());
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("container-engine.sh printed no {key}=: {stdout}"))
                .to_owned()
        };
        Podman { url: value("engine"), image: value("image") }
    })
}

/// `podman --remote --url URL ARGS…`: its stdout, or its stderr as the error.
pub fn podman_cli(args: &[&str]) -> Result<String, String> {
    let output = Command::new("podman")
        .args(["--remote", "--url", &podman().url])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run podman: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The engine's view of an instance's container `gpuspot-<id>`: whether it runs, and its
/// first process's host pid. None when there is no such container.
pub fn container_of(instance_id: &str) -> Option<(bool, u32)> {
    let name = format!("gpuspot-{instance_id}");
    let text =
        podman_cli(&["inspect", "--format", "{{.State.Running}} {{.State.Pid}}", &name]).ok()?;
    let (running, pid) = text.trim().split_once(' ')?;
    Some((running == "true", pid.parse().ok()?))
}

/// The address of an instance's container on its own network.
pub fn container_ip(instance_id: &str) -> String {
    let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
    let name = format!("gpuspot-{instance_id}");
    let ip = podman_cli(&["inspect", "--format", format, &name]).expect("inspect the container");
    assert!(!ip.trim().is_empty(), "container {name} has no address");
    ip.trim().to_owned()
}

/// The networks labelled with agent `label`.
pub fn networks_of(label: &str) -> Vec<String> {
    let filter = format!("label=gpuspot.agent={label}");
    let names = podman_cli(&["network", "ls", "-q", "--filter", &filter]).unwrap_or_default();
    names.split_whitespace().map(str::to_owned).collect()
}

/// Removes every container and network labelled with agent `label` (a state dir).
pub fn remove_containers_of(label: &str) {
    let filter = format!("label=gpuspot.agent={label}");
    let ids = podman_cli(&["ps", "-a", "-q", "--filter", &filter]).unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        let _ = podman_cli(&args);
    }
    let networks = networks_of(label);
    if !networks.is_empty() {
        let mut args = vec!["network", "rm", "-f"];
        args.extend(networks.iter().map(String::as_str));
        let _ = podman_cli(&args);
    }
}

/// A regular request for `count` GPUs of `models` running `command` in the test image.
pub fn image_request(name: &str, models: &[&str], count: u32, command: &[&str]) -> Value {
    json!({
        "name": name,
        "gpu": { "models": models, "count": count },
        "billing": { "mode": "regular" },
        "image": podman().image,
        "command": command,
    })
}

/// An agent process with `--container-engine` on the shared engine. Dropping it kills it,
/// its process workloads and its containers; a failing test gets its log printed.
pub struct ContainerAgent {
    pub state_dir: PathBuf,
    pub hostname: String,
    engine: String,
    bin: PathBuf,
    profile: PathBuf,
    starts: u32,
    proc: Proc,
}

impl ContainerAgent {
    /// Starts the agent binary `bin` (`binaries!().agent`) for `profile` with a fresh join
    /// token, and waits until its host is connected.
    pub fn start(c: &Cluster, bin: &Path, profile: &Path) -> ContainerAgent {
        ContainerAgent::start_on(c, bin, profile, &podman().url)
    }

    /// [`ContainerAgent::start`] on the engine at `engine` (e.g. a [`PrivateEngine`]).
    pub fn start_on(c: &Cluster, bin: &Path, profile: &Path, engine: &str) -> ContainerAgent {
        let hostname = profile.file_stem().map(|s| s.to_string_lossy().into_owned());
        let hostname = hostname.expect("a profile file name");
        let state_dir = c.dir().join(format!("containers-{hostname}"));
        let token = c.join_token();
        let proc = spawn(c, bin, profile, &state_dir, Some(&token), 1, engine);
        let agent = ContainerAgent {
            state_dir,
            hostname,
            engine: engine.to_owned(),
            bin: bin.to_owned(),
            profile: profile.to_owned(),
            starts: 1,
            proc,
        };
        c.wait_host(&agent.hostname, "connected");
        agent
    }

    /// SIGKILL: the agent only; its containers and process workloads live on.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts the agent again on its state dir (it reconnects with the credentials kept
    /// there) without waiting for anything.
    pub fn respawn(&mut self, c: &Cluster) {
        self.proc.kill();
        self.starts += 1;
        let (bin, profile, dir) = (&self.bin, &self.profile, &self.state_dir);
        self.proc = spawn(c, bin, profile, dir, None, self.starts, &self.engine);
    }

    /// `<state-dir>/instances/<id>/data`: the instance's data dir, `/data` in its container.
    pub fn instance_data_dir(&self, id: &str) -> PathBuf {
        self.state_dir.join("instances").join(id).join("data")
    }

    /// The agent's label on its containers.
    pub fn label(&self) -> String {
        self.state_dir.display().to_string()
    }

    pub fn log(&self) -> String {
        self.proc.log_tail(1 << 20)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

fn spawn(
    c: &Cluster,
    bin: &Path,
    profile: &Path,
    state_dir: &Path,
    token: Option<&str>,
    n: u32,
    engine: &str,
) -> Proc {
    let mut command = c.agent_command(bin, profile, state_dir, token);
    command.arg("--container-engine").arg(engine);
    let log = PathBuf::from(format!("{}.{n}.log", state_dir.display()));
    Proc::spawn(&format!("agent {}", state_dir.display()), command, &log)
}

impl Drop for ContainerAgent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- {} (tail) -----\n{}", self.proc.name, self.proc.log_tail(8000));
        }
        self.proc.kill();
        kill_processes_under(&self.state_dir);
        remove_containers_of(&self.label());
    }
}

/// A Podman service of one test's own, on a socket under `dir` (the same storage and image
/// as the shared one, so [`podman_cli`] sees its containers): what it costs can be measured
/// without the load of other tests. Stopped when dropped.
pub struct PrivateEngine {
    pub url: String,
    /// The `podman system service` process.
    pub pid: u32,
}

impl PrivateEngine {
    pub fn start(dir: &Path) -> PrivateEngine {
        podman();
        let socket = dir.join("engine").join("podman.sock");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/container-engine.sh");
        let output = Command::new(&script)
            .arg("--socket")
            .arg(&socket)
            .args(["--idle", "300"])
            .output()
            .expect("run scripts/container-engine.sh");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{} --socket failed: {said}", script.display());
        let pid = service_pid(&socket).expect("the private podman service's pid");
        PrivateEngine { url: format!("unix://{}", socket.display()), pid }
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        crate::process::kill_tree(self.pid);
    }
}

/// The pid of the `podman system service` serving `socket`.
fn service_pid(socket: &Path) -> Option<u32> {
    let wanted = format!("unix://{}", socket.display());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let serves = args.iter().any(|a| *a == b"service") && args.contains(&wanted.as_bytes());
        serves.then_some(pid)
    })
}
