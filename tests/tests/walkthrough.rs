//! The README's walk-through, as written, against the `gpuspot dev` it starts (issue 25.3):
//! terminal 1's blocks run in the background until dev is up, terminal 2's then run with
//! `bash -euxo pipefail` and must all succeed, and Ctrl-C stops dev by itself. The
//! containers blocks run where Podman can (root, `podman` installed: CI). `gpuspot` is the
//! workspace's debug binary, first on `PATH`; nothing else of the caller's environment
//! points the scripts anywhere.

use gpuspot_e2e::api::Api;
use gpuspot_e2e::process::{kill_processes_under, log_tail};
use gpuspot_e2e::{mounts, podman, wait_until, walkthrough};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What dev listens on by default, which the walk-through relies on.
const TCP_PORTS: [u16; 2] = [8080, 8088];
const QUIC_PORT: u16 = 7443;
/// The hosts of dev's default hosts file.
const HOSTS: usize = 3;
/// The longest the walk-through's commands may take together.
const TERMINAL_2_LIMIT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the repository")
}

/// Root with `podman` installed: the containers blocks' script can start the engine.
fn containers_possible() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let podman = Command::new("podman").arg("--version").output();
    root && podman.is_ok_and(|o| o.status.success())
}

/// `bash -euxo pipefail SCRIPT` in the repository, as a reader's shell, in a process group
/// of its own (SIGKILLed on drop), its output in `log`.
struct Shell {
    child: Child,
    log: PathBuf,
}

impl Shell {
    fn start(script: &Path, log: &Path) -> Shell {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![gpuspot_e2e::cli::bin_dir()];
        dirs.extend(std::env::split_paths(&path));
        let out = std::fs::File::create(log).expect("log file");
        let mut command = Command::new("bash");
        command
            .args(["-euxo", "pipefail"])
            .arg(script)
            .current_dir(repo_root())
            .env("PATH", std::env::join_paths(dirs).expect("PATH"))
            .env_remove("COLUMNS")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .process_group(0);
        for var in
            ["GPUSPOT_API", "GPUSPOT_TOKEN", "GPUSPOT_ADMIN_TOKEN", "GPUSPOT_CONTAINER_ENGINE"]
        {
            command.env_remove(var);
        }
        let child = command.spawn().expect("spawn bash");
        Shell { child, log: log.to_owned() }
    }

    fn signal(&self, signal: libc::c_int) {
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill has no memory preconditions; the group is ours.
        unsafe { libc::kill(group, signal) };
    }

    fn log(&self) -> String {
        log_tail(&self.log, 64_000)
    }

    /// Its exit status once it ends, None when `limit` passes first.
    fn wait(&mut self, limit: Duration, what: &str) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        wait_until(limit + Duration::from_secs(5), what, || match self.child.try_wait() {
            Ok(Some(status)) => Ok(Some(status)),
            _ if Instant::now() >= deadline => Ok(None),
            _ => Err(log_tail(&self.log, 2000)),
        })
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Terminal 1: dev. Dropping it kills what is left: the group, the workloads, the
/// containers, the data disks' mounts; and removes dev's data dir.
struct Terminal1 {
    shell: Shell,
    data_dir: Option<PathBuf>,
    containers: bool,
}

impl Terminal1 {
    /// Dev's banner: its admin token and data dir.
    fn wait_banner(&mut self) -> (String, PathBuf) {
        let banner = wait_until(Duration::from_secs(120), "gpuspot dev's banner", || {
            if let Ok(Some(status)) = self.shell.child.try_wait() {
                panic!("terminal 1 ended ({status}) before dev was up:\n{}", self.shell.log());
            }
            let log = self.shell.log();
            if log.contains("Ctrl-C stops the cluster.") { Ok(log) } else { Err(log) }
        });
        let value = |key: &str| {
            let line = banner.lines().find_map(|l| l.trim().strip_prefix(key));
            line.unwrap_or_else(|| panic!("no {key:?} in the banner:\n{banner}")).trim().to_owned()
        };
        let data_dir = PathBuf::from(value("data dir:"));
        self.data_dir = Some(data_dir.clone());
        (value("admin token:"), data_dir)
    }
}

impl Drop for Terminal1 {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- terminal 1 (tail) -----\n{}", self.shell.log());
        }
        self.shell.signal(libc::SIGKILL);
        let Some(data_dir) = &self.data_dir else { return };
        kill_processes_under(data_dir);
        if self.containers {
            for host in std::fs::read_dir(data_dir.join("hosts")).into_iter().flatten().flatten() {
                podman::remove_containers_of(&host.path().display().to_string());
            }
        }
        // A dev killed before it stopped its workloads leaves their data disks mounted.
        mounts::unmount_under(data_dir);
        let _ = std::fs::remove_dir_all(data_dir);
    }
}

fn assert_ports_free() {
    for port in TCP_PORTS {
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        assert!(
            free,
            "127.0.0.1:{port} is taken: the walk-through uses gpuspot dev's default ports"
        );
    }
    let free = std::net::UdpSocket::bind(("127.0.0.1", QUIC_PORT)).is_ok();
    assert!(
        free,
        "udp 127.0.0.1:{QUIC_PORT} is taken: the walk-through uses dev's default QUIC port"
    );
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    gpuspot_e2e::cli::binary();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let containers = containers_possible();
    let scripts = walkthrough::scripts(&readme, containers).expect("the walk-through's scripts");
    if scripts.skipped > 0 {
        eprintln!("note: {} containers block(s) left out: no root or no podman", scripts.skipped);
    }
    assert_ports_free();
    let dir = tempfile::tempdir().expect("temp dir");
    let (script1, script2) = (dir.path().join("terminal1.sh"), dir.path().join("terminal2.sh"));
    std::fs::write(&script1, &scripts.terminal1).expect("write terminal 1");
    std::fs::write(&script2, &scripts.terminal2).expect("write terminal 2");

    let shell = Shell::start(&script1, &dir.path().join("terminal1.log"));
    let mut terminal1 = Terminal1 { shell, data_dir: None, containers };
    let (token, _) = terminal1.wait_banner();
    // A reader starts typing once dev says it is up and its hosts have joined (a second).
    let api = Api::new(&format!("http://127.0.0.1:{}", TCP_PORTS[0]), Some(&token));
    wait_until(Duration::from_secs(30), "dev's hosts to connect", || {
        let hosts = api.hosts();
        let connected = hosts.iter().filter(|h| h["state"] == "connected").count();
        if connected == HOSTS { Ok(()) } else { Err(format!("{hosts:?}")) }
    });

    let started = Instant::now();
    let mut terminal2 = Shell::start(&script2, &dir.path().join("terminal2.log"));
    let status = terminal2.wait(TERMINAL_2_LIMIT, "the walk-through to finish");
    let output = terminal2.log();
    let status = status.unwrap_or_else(|| panic!("the walk-through hung:\n{output}"));
    assert!(status.success(), "the walk-through failed ({status}):\n{output}");
    // Shown with --nocapture: what a reader sees.
    eprintln!("{output}\nthe walk-through ran in {:.1?}", started.elapsed());

    // Ctrl-C stops dev and its workloads, by itself.
    terminal1.shell.signal(libc::SIGINT);
    let stopped = terminal1.shell.wait(Duration::from_secs(60), "dev to stop after Ctrl-C");
    let stopped = stopped.unwrap_or_else(|| panic!("dev did not stop after Ctrl-C"));
    assert!(stopped.success(), "dev did not stop cleanly ({stopped})");
}
