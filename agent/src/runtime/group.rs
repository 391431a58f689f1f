//! Signals to a workload's process group, and whether any of it is still alive. A workload is
//! the leader of its own session, so its process group id is its pid.

use std::time::Duration;
use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(20);

/// Sends `signal` to every process in group `pgid`; a group already gone is not an error.
pub fn signal_group(pgid: i32, signal: libc::c_int) {
    if pgid <= 1 {
        return; // never signal "all processes" or init by accident
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Waits until no live process is left in group `pgid`, or `deadline` passes.
pub async fn wait_group_gone(pgid: i32, deadline: Instant) {
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
}

/// Whether group `pgid` has a member that is not a zombie. Zombies are ignored because an
/// orphan's zombie lingers until init reaps it, which some container inits never do.
pub fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // SAFETY: signal 0 only checks for existence.
        return unsafe { libc::kill(-pgid, 0) } == 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_state)
        .any(|(state, group)| group == pgid && !matches!(state, 'Z' | 'X'))
}

/// Whether `pid` is a live (non-zombie) process.
pub fn process_alive(pid: u32) -> bool {
    proc_state(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

/// When `pid` started, in clock ticks since boot (`/proc/<pid>/stat` field 22): with the
/// pid, it names one process even after the pid is reused.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 1..)?.split_whitespace().nth(19)?.parse().ok()
}

/// (state, process group) from `/proc/<pid>/stat`. The command name may contain spaces and
/// parentheses, so fields are counted from the last ')'.
fn proc_state(pid: u32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_in_its_group() {
        let pid = std::process::id();
        assert!(process_alive(pid));
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() };
        assert!(group_alive(pgid));
        assert!(!process_alive(u32::MAX - 1));
        assert!(start_time(pid).is_some_and(|t| t > 0));
        assert_eq!(start_time(pid), start_time(pid));
    }
}
