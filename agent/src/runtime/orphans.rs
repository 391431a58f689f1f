//! Workloads left behind by an earlier agent process on this host. The agent cannot adopt
//! them (they are not its children, so it could never learn their exit), and the
//! coordinator will ask for whatever should run again, so they are killed at start-up.
//! They are recognised by their environment: `GPUSPOT_DATA_DIR` under our instances dir.

use super::group::signal_group;
use std::path::Path;

/// Kills the process group of every process whose `GPUSPOT_DATA_DIR` lies under
/// `instances_dir`; returns how many groups were killed.
pub fn kill_orphans(instances_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let prefix = format!("GPUSPOT_DATA_DIR={}/", instances_dir.display());
    let own_group = std::process::id() as i32;
    let mut groups: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| owned_by_us(*pid, &prefix))
        .filter_map(process_group)
        .filter(|pgid| *pgid > 1 && *pgid != own_group)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    for pgid in &groups {
        tracing::warn!(pgid, "killing a workload left by an earlier agent process");
        signal_group(*pgid, libc::SIGKILL);
    }
    groups.len()
}

fn owned_by_us(pid: i32, prefix: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|var| var.starts_with(prefix.as_bytes())))
        .unwrap_or(false)
}

fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 1..)?.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn leftover_workloads_under_our_dir_are_killed_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let instances = dir.path().join("instances");
        let spawn = |data: &Path| {
            use std::os::unix::process::CommandExt;
            let mut cmd = std::process::Command::new("sleep");
            cmd.arg("30").env("GPUSPOT_DATA_DIR", data);
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            cmd.spawn().unwrap()
        };
        let mut ours = spawn(&instances.join("i-1").join("data"));
        let mut other = spawn(&dir.path().join("elsewhere"));
        assert_eq!(kill_orphans(&instances), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = ours.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "orphan still alive");
            std::thread::yield_now();
        };
        assert!(!status.success());
        assert!(other.try_wait().unwrap().is_none(), "an unrelated process was killed");
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
