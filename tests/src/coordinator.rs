//! A real coordinator process on loopback: started on ephemeral ports (read back from
//! `endpoints.json`), killed with SIGKILL, restarted on the same data dir and ports.

use crate::api::Api;
use crate::process::{Proc, log_tail};
use crate::wait::wait_until;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Short timers so that every lifecycle step takes seconds.
pub const TEST_CONFIG: &str = r#"[timers]
hold_period = "4s"
notice_period = "3s"
overdue_grace = "4s"
price_tick = "1s"
heartbeat = "500ms"
host_lost_after = "2s"
kill_timeout = "2s"
meter_tick = "1s"

[[pools]]
model = "RTX 5090"
list_price = "0.90"

[[pools]]
model = "RTX 4090"
list_price = "0.60"

[[pools]]
model = "RTX PRO 6000"
list_price = "1.80"

[[pools]]
model = "H100"
list_price = "2.58"
"#;

/// [`TEST_CONFIG`] with some `[timers]` values replaced, e.g.
/// `config_with_timers(&[("hold_period", "3s"), ("notice_period", "8s")])`. A key that
/// [`TEST_CONFIG`] does not set is added to `[timers]`.
pub fn config_with_timers(overrides: &[(&str, &str)]) -> String {
    let key_of = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
    let known: Vec<String> = TEST_CONFIG.lines().map(key_of).collect();
    let mut text = String::new();
    let mut in_timers = false;
    for line in TEST_CONFIG.lines() {
        if line.starts_with('[') {
            in_timers = line.trim() == "[timers]";
        }
        match overrides.iter().find(|(k, _)| in_timers && *k == key_of(line)) {
            Some((k, v)) => text.push_str(&format!("{k} = {v:?}\n")),
            None => text.push_str(&format!("{line}\n")),
        }
        if line.trim() == "[timers]" {
            for (k, v) in overrides.iter().filter(|(k, _)| !known.iter().any(|n| n == k)) {
                text.push_str(&format!("{k} = {v:?}\n"));
            }
        }
    }
    text
}

/// How long a (re)started coordinator may take to answer /healthz.
const STARTUP: Duration = Duration::from_secs(30);

/// Log files of one test, shown when it fails.
pub type LogList = Arc<Mutex<Vec<PathBuf>>>;

pub struct Coordinator {
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub admin_token: String,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    bin: PathBuf,
    dir: PathBuf,
    starts: u32,
    logs: LogList,
    proc: Option<Proc>,
}

impl Coordinator {
    /// Writes the test config into `dir` and starts a coordinator on ephemeral ports.
    pub fn start(bin: &Path, dir: &Path, logs: LogList) -> Coordinator {
        Coordinator::start_with_config(bin, dir, logs, TEST_CONFIG)
    }

    /// Like [`Coordinator::start`], with `config` (a whole coordinator TOML) instead of
    /// [`TEST_CONFIG`]; see [`config_with_timers`].
    pub fn start_with_config(bin: &Path, dir: &Path, logs: LogList, config: &str) -> Coordinator {
        Coordinator::start_sharing(bin, dir, logs, config, None)
    }

    /// Like [`Coordinator::start_with_config`], with `admin_token` when given: coordinators
    /// sharing one PostgreSQL store take the same one.
    pub fn start_sharing(
        bin: &Path,
        dir: &Path,
        logs: LogList,
        config: &str,
        admin_token: Option<&str>,
    ) -> Coordinator {
        let config_text = config;
        let config = dir.join("coordinator.toml");
        std::fs::write(&config, config_text).expect("write coordinator config");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let mut coordinator = Coordinator {
            data_dir: dir.join("coordinator-data"),
            config,
            admin_token: admin_token
                .map_or_else(|| format!("e2e-admin-{}-{nanos}", std::process::id()), str::to_owned),
            http: any,
            quic: any,
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            starts: 0,
            logs,
            proc: None,
        };
        coordinator.spawn();
        coordinator
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn api(&self) -> Api {
        Api::new(&self.url(), Some(&self.admin_token))
    }

    /// SIGSTOP or SIGCONT (a paused process, e.g. a leader past its lease).
    pub fn signal(&self, signal: i32) {
        let pid = self.pid().expect("a running coordinator");
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe {
            libc::kill(pid as i32, signal);
        }
    }

    /// The exit status once the process ended by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.as_mut().and_then(Proc::try_wait)
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// SIGTERM, as systemd stops it; returns how long it took to exit (panics past `within`).
    pub fn terminate(&mut self, within: Duration) -> Duration {
        let mut proc = self.proc.take().expect("a running coordinator");
        let started = std::time::Instant::now();
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe {
            libc::kill(proc.pid() as i32, libc::SIGTERM);
        }
        wait_until(within, "the coordinator to exit after SIGTERM", || {
            proc.try_wait().map(|_| ()).ok_or_else(|| "still running".to_owned())
        });
        started.elapsed()
    }

    /// Starts again on the same data dir and the ports the last run had (after
    /// [`Coordinator::terminate`] or [`Coordinator::kill`]).
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Starts again on the same data dir and the ports the last run had.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `e2e-coordinator --data-dir DIR token ARGS…` on this coordinator's data dir (works
    /// while the coordinator runs).
    pub fn token_command(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("token")
            .args(args)
            .env_remove("GPUSPOT_CONFIG")
            .env_remove("GPUSPOT_DATA_DIR")
            .output()
            .expect("run the token command")
    }

    /// `token create --uses USES`: a join token that admits `uses` hosts.
    pub fn create_join_token(&self, uses: u32) -> String {
        let output = self.token_command(&["create", "--uses", &uses.to_string()]);
        assert!(
            output.status.success(),
            "token create failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(token.starts_with("gpuspot1."), "unexpected join token {token:?}");
        token
    }

    /// The running coordinator's pid (to read its memory from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Lowers the running coordinator's descriptor limit (`RLIMIT_NOFILE`, soft and hard) to
    /// `limit`, as a busy host or a small `LimitNOFILE` would, so a test can flood it to
    /// the limit with a few hundred connections.
    pub fn limit_descriptors(&self, limit: u64) {
        let pid = self.pid().expect("a running coordinator");
        let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
        // SAFETY: prlimit reads `rlimit` and writes nothing (the old-limit pointer is null).
        let done = unsafe {
            libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, &rlimit, std::ptr::null_mut())
        };
        assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    /// How many descriptors the running coordinator holds open.
    pub fn open_descriptors(&self) -> usize {
        let pid = self.pid().expect("a running coordinator");
        std::fs::read_dir(format!("/proc/{pid}/fd")).map(|dir| dir.count()).unwrap_or(0)
    }

    /// The tail of the current run's log.
    pub fn log_tail(&self) -> String {
        self.proc.as_ref().map(|p| p.log_tail(4000)).unwrap_or_default()
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let endpoints = self.data_dir.join("endpoints.json");
        let _ = std::fs::remove_file(&endpoints);
        let log = self.dir.join(format!("coordinator-{}.log", self.starts));
        self.logs.lock().expect("log list").push(log.clone());
        let mut command = Command::new(&self.bin);
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--http")
            .arg(self.http.to_string())
            .arg("--quic")
            .arg(self.quic.to_string())
            .env("GPUSPOT_ADMIN_TOKEN", &self.admin_token)
            .env_remove("GPUSPOT_CONFIG")
            .env_remove("GPUSPOT_DATA_DIR");
        let proc = self.proc.insert(Proc::spawn("coordinator", command, &log));
        let (http, quic) = wait_until(STARTUP, "the coordinator to write endpoints.json", || {
            if let Some(status) = proc.try_wait() {
                panic!(
                    "the coordinator exited ({status}) while starting:\n{}",
                    log_tail(&log, 4000)
                );
            }
            read_endpoints(&endpoints)
        });
        self.http = http;
        self.quic = quic;
        let api = self.api();
        wait_until(STARTUP, "GET /healthz to answer 200", || match api.try_get("/healthz") {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("{status} {body}")),
            Err(e) => Err(e),
        });
    }
}

fn read_endpoints(path: &Path) -> Result<(SocketAddr, SocketAddr), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("endpoints.json {text:?}: {e}"))?;
    let addr = |key: &str| -> Result<SocketAddr, String> {
        value[key]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("endpoints.json has no {key} address: {text}"))
    };
    Ok((addr("http")?, addr("quic")?))
}
