//! Child processes that cannot outlive a test: spawned with their output in a log file,
//! SIGKILLed on drop (panics included), and a sweep that kills every workload whose working
//! directory lies under a test's temp dir (agents start workloads in their own sessions, so
//! killing an agent leaves them running).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A spawned binary whose stdout and stderr both go to `log`.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    /// Spawns `command` with stdin closed and its output appended to `log`.
    pub fn spawn(name: &str, command: Command, log: &Path) -> Proc {
        Proc::spawn_with_stdin(name, command, log, Stdio::null())
    }

    /// [`Proc::spawn`] with `stdin` as the process's standard input.
    pub fn spawn_with_stdin(name: &str, mut command: Command, log: &Path, stdin: Stdio) -> Proc {
        let out = File::options().create(true).append(true).open(log).expect("open log file");
        let err = out.try_clone().expect("clone log file");
        command.stdin(stdin).stdout(out).stderr(err);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        Proc { name: name.to_owned(), log: log.to_owned(), child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap; a process that already ended is fine.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// The last `bytes` of the log.
    pub fn log_tail(&self, bytes: usize) -> String {
        log_tail(&self.log, bytes)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `bytes` of a file, lossily decoded; empty when it cannot be read.
pub fn log_tail(path: &Path, bytes: usize) -> String {
    let data = std::fs::read(path).unwrap_or_default();
    let start = data.len().saturating_sub(bytes);
    String::from_utf8_lossy(&data[start..]).into_owned()
}

/// Whether `pid` is alive: present in /proc and not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name, which may contain spaces.
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

/// SIGKILLs `pid` and its process group (workloads lead their own session).
pub fn kill_tree(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill has no memory preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Kills every process of ours whose current directory is under `root`: the workloads the
/// agents of one test started (their cwd is the instance's data dir in the agent state dir).
pub fn kill_processes_under(root: &Path) {
    let Ok(root) = root.canonicalize() else { return };
    // Two passes: a workload that was forking during the first one is caught by the second.
    for _ in 0..2 {
        let Ok(entries) = std::fs::read_dir("/proc") else { return };
        let me = std::process::id();
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
                && cwd.starts_with(&root)
            {
                kill_tree(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
