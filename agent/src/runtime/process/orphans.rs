//! Workloads under our instances dir that no agent can adopt: started by an agent that
//! died before it recorded them, or by an agent version without records. The agent cannot
//! follow them, and the coordinator will ask for whatever should run again, so they are
//! killed at start-up. They are recognised by their environment: `GPUSPOT_DATA_DIR` under
//! our instances dir. Recorded workloads are adopted instead (see [`super::adopt`]).

use crate::runtime::group::signal_group;
use gpuspot_common::InstanceId;
use std::path::Path;

/// Kills the process group of every process whose `GPUSPOT_DATA_DIR` lies under
/// `instances_dir` in an instance dir without a workload record; returns how many groups
/// were killed. [`crate::runtime::WorkloadRuntime::adopt`] does this itself; calling it
/// before adoption is harmless.
pub fn kill_orphans(instances_dir: &Path) -> usize {
    kill_where(instances_dir, |instance| {
        !instances_dir.join(instance).join(crate::runtime::record::RECORD).exists()
    })
}

/// Kills what runs under `instances_dir` but in none of the `adopted` instances.
pub(super) fn kill_unadopted(instances_dir: &Path, adopted: &[InstanceId]) -> usize {
    kill_where(instances_dir, |instance| !adopted.iter().any(|id| id.as_str() == instance))
}

/// Kills the groups of processes under `instances_dir` whose instance `doomed` says so.
fn kill_where(instances_dir: &Path, doomed: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let prefix = format!("GPUSPOT_DATA_DIR={}/", instances_dir.display());
    let own_group = std::process::id() as i32;
    let mut groups: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| instance_of(*pid, &prefix).is_some_and(|i| doomed(&i)))
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

/// The instance (first path component under our instances dir) of `pid`'s data dir.
fn instance_of(pid: i32, prefix: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let var = env.split(|b| *b == 0).find(|var| var.starts_with(prefix.as_bytes()))?;
    let rest = String::from_utf8_lossy(&var[prefix.len()..]).into_owned();
    rest.split('/').next().filter(|i| !i.is_empty()).map(str::to_owned)
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
        // A recorded workload is left for adoption.
        let recorded = instances.join("i-2");
        std::fs::create_dir_all(&recorded).unwrap();
        std::fs::write(recorded.join(crate::runtime::record::RECORD), "{}").unwrap();
        let mut adoptable = spawn(&recorded.join("data"));
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
        assert!(adoptable.try_wait().unwrap().is_none(), "a recorded workload was killed");
        assert_eq!(kill_unadopted(&instances, &[InstanceId::from("i-9")]), 1);
        adoptable.wait().unwrap();
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
