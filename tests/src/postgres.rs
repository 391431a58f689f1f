//! A private PostgreSQL server for one test (docs/architecture.md, PostgreSQL store): `initdb`
//! into a temp dir, the server on a free 127.0.0.1 port, stopped (fast shutdown) on drop.
//! initdb refuses to run as root, so under root the server runs as the `postgres` user that
//! Debian's package creates. Binaries come from `GPUSPOT_PG_BIN` or Debian's
//! /usr/lib/postgresql/15/bin (scripts/install-test-deps.sh installs them).

use crate::process::Proc;
use crate::wait::wait_until;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser initdb creates, and the database the coordinators use.
const USER: &str = "gpuspot";
const DATABASE: &str = "gpuspot";
const STARTUP: Duration = Duration::from_secs(30);

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    /// Owned by the server's user: the cluster dir, its socket dir and its log.
    root: tempfile::TempDir,
    owner: Option<(u32, u32)>,
    proc: Option<Proc>,
}

impl Postgres {
    /// initdb and start; panics with initdb's or the server's output when either fails.
    pub fn start() -> Postgres {
        let bin =
            std::env::var_os("GPUSPOT_PG_BIN").map_or_else(|| DEFAULT_BIN.into(), PathBuf::from);
        assert!(
            bin.join("initdb").exists(),
            "no initdb in {} (scripts/install-test-deps.sh)",
            bin.display()
        );
        let root = tempfile::Builder::new().prefix("gpuspot-pg-").tempdir().expect("temp dir");
        let owner = server_user();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid)).expect("chown pg dir");
        }
        let mut pg = Postgres { port: free_port(), bin, root, owner, proc: None };
        pg.initdb();
        pg.start_server();
        pg.run("createdb", &["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", USER, DATABASE]);
        pg
    }

    /// `postgres://gpuspot@127.0.0.1:PORT/gpuspot`
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// Fast shutdown (SIGINT): clients are cut, what was committed stays.
    pub fn stop(&mut self) {
        let Some(mut proc) = self.proc.take() else { return };
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe {
            libc::kill(proc.pid() as i32, libc::SIGINT);
        }
        let stopped = std::time::Instant::now();
        while proc.try_wait().is_none() && stopped.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        proc.kill();
    }

    /// Starts the server again on the same cluster and port (after [`Postgres::stop`]).
    pub fn restart(&mut self) {
        self.stop();
        self.start_server();
    }

    /// Runs `sql` with psql and returns its unaligned output (`-At`).
    pub fn query(&self, sql: &str) -> String {
        let port = self.port.to_string();
        self.run(
            "psql",
            &["-h", "127.0.0.1", "-p", &port, "-U", USER, "-d", DATABASE, "-At", "-c", sql],
        )
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn initdb(&self) {
        let data = self.data();
        let args =
            ["-D", path(&data), "-U", USER, "-A", "trust", "--locale=C", "-E", "UTF8", "--no-sync"];
        self.run("initdb", &args);
    }

    fn start_server(&mut self) {
        let data = self.data();
        let mut command = self.command("postgres");
        command.args(["-D", path(&data), "-p", &self.port.to_string(), "-h", "127.0.0.1"]);
        command.args(["-c", &format!("unix_socket_directories={}", path(self.root.path()))]);
        // The tests stop and restart it; a crash recovery must not be needed for that.
        command.args(["-c", "fsync=on", "-c", "max_connections=200"]);
        let log = self.root.path().join("postgres.log");
        self.proc = Some(Proc::spawn("postgres", command, &log));
        let port = self.port.to_string();
        let ready = self.bin.join("pg_isready");
        wait_until(STARTUP, "PostgreSQL to accept connections", || {
            let status = Command::new(&ready).args(["-q", "-h", "127.0.0.1", "-p", &port]).status();
            match status {
                Ok(s) if s.success() => Ok(()),
                other => Err(format!("{other:?}; log: {}", crate::process::log_tail(&log, 2000))),
            }
        });
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.root.path()).env("PGCONNECT_TIMEOUT", "5");
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let out =
            self.command(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// The `postgres` user's ids when we are root (initdb refuses root), else none.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let out = Command::new("id").args(["-u", "postgres"]).output().expect("id -u postgres");
    let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("a postgres user");
    let out = Command::new("id").args(["-g", "postgres"]).output().expect("id -g postgres");
    let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("a postgres group");
    Some((uid, gid))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
