//! Real-process tests of what docs/contracts.md#limits promises about isolated process guests:
//! their own PID, mount and IPC namespaces (own `/proc`, `/tmp`, `/run/lock`, SysV IPC), `/tmp` on
//! the data disk, and memory and pids limits on this host's cgroups (v1 or v2). They need root;
//! elsewhere they say so and pass.

use super::isolation::{command, exec};
use super::*;
use crate::runtime::cgroup::{DEFAULT_PIDS_MAX, Limit};
use crate::runtime::disk;
use crate::runtime::sweep::processes_of;

/// A harness whose guests get own uids, namespaces, data disks and cgroups with
/// `pids_max`; `None` when not root.
fn confined(pids_max: u64) -> Option<Harness> {
    let dir = tempfile::tempdir().expect("tempdir");
    let isolation = Isolation::detect(crate::config::DEFAULT_UID_RANGE);
    if matches!(isolation, Isolation::Shared) {
        println!("not root: guests get no namespaces here");
        return None;
    }
    let options = ProcessOptions {
        isolation,
        cgroups: Cgroups::detect_with(pids_max, true),
        disks: DataDisks::detect(),
        ..shared_options(dir.path())
    };
    Some(Harness::with_options(options, dir))
}

fn read(h: &Harness, id: &str, name: &str) -> String {
    std::fs::read_to_string(h.data_dir(id).join(name)).unwrap_or_default()
}

/// SysV shared-memory segments on the host (outside any guest) owned by `uid`.
fn host_segments_of(uid: u32) -> usize {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    // Columns: key shmid perms size cpid lpid nattch uid ...
    table.lines().skip(1).filter(|l| l.split_whitespace().nth(7) == Some(&uid.to_string())).count()
}

#[tokio::test]
async fn a_guest_sees_only_its_own_processes_tmp_lock_and_ipc() {
    let Some(mut h) = confined(DEFAULT_PIDS_MAX) else { return };
    h.start("i-other", "exec sleep 300");
    let agent = std::process::id();
    let script = format!(
        "echo $$ > pid; ls /proc | grep -E '^[0-9]+$' > procs; \
         cat /proc/{agent}/cmdline > agent 2>&1; \
         echo secret > /tmp/gpuspot-ns-test; touch /run/lock/gpuspot-ns-test; \
         ipcmk -M 4096 > ipc 2>&1; id -u > uid; echo done > done; exec sleep 300"
    );
    h.start("i-ns", &script);
    read_when_written(&h.data_dir("i-ns").join("done")).await;
    let procs: Vec<u32> =
        read(&h, "i-ns", "procs").lines().filter_map(|l| l.parse().ok()).collect();
    // Its shell and `ls` at most; init is root's and hidden; nothing of the host or i-other.
    assert!(!procs.is_empty() && procs.len() <= 3, "{procs:?}");
    assert!(procs.iter().all(|pid| *pid < 10), "host pids visible: {procs:?}");
    assert!(read(&h, "i-ns", "agent").contains("No such file"), "{}", read(&h, "i-ns", "agent"));
    assert!(read(&h, "i-ns", "ipc").contains("Shared memory id"), "{}", read(&h, "i-ns", "ipc"));
    assert!(!Path::new("/tmp/gpuspot-ns-test").exists(), "the guest wrote the host's /tmp");
    assert!(!Path::new("/run/lock/gpuspot-ns-test").exists(), "the guest wrote /run/lock");
    let uid: u32 = read(&h, "i-ns", "uid").trim().parse().expect("uid");
    assert_eq!(host_segments_of(uid), 0, "the guest's segment is in the host's IPC namespace");

    // Commands run in the guest share its view.
    let see = "cat /tmp/gpuspot-ns-test; ls /run/lock; ipcs -m | grep -c 0x; cat pid";
    let (output, code) = exec(&h, "i-ns", command(&["sh", "-c", see]), vec![]).await;
    assert_eq!(code, Some(0), "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[..3], ["secret", "gpuspot-ns-test", "1"], "{output}");
    assert_eq!(lines[3], read(&h, "i-ns", "pid").trim(), "{output}");

    h.runtime.stop(&InstanceId::from("i-ns"), Duration::from_secs(2));
    assert_eq!(h.next_event().await.state, WorkloadState::Stopped);
    assert_eq!(host_segments_of(uid), 0);
    h.runtime.stop(&InstanceId::from("i-other"), Duration::from_secs(2));
    h.next_event().await;
    for id in ["i-ns", "i-other"] {
        disk::release(&h.data_dir(id)).expect("release");
    }
}

#[tokio::test]
async fn a_guest_ends_on_sigterm_and_tmp_counts_against_its_data_disk() {
    let Some(mut h) = confined(DEFAULT_PIDS_MAX) else { return };
    if !DataDisks::detect().enforced() {
        println!("no data disks here");
        return;
    }
    // What fallocate got is written once its file is gone: the disk is full until then.
    let script = "out=$(fallocate -l 2G /tmp/big 2>&1); rc=$?; rm -f /tmp/big; echo $rc $out > full; \
                  trap 'echo term > term; exit 0' TERM; echo ready > ready; \
                  while :; do sleep 0.05; done";
    h.start("i-tmp", script);
    read_when_written(&h.data_dir("i-tmp").join("ready")).await;
    let full = read(&h, "i-tmp", "full");
    assert!(full.contains("No space left"), "2 GiB fit in /tmp on a 1 GiB disk: {full}");
    let began = Instant::now();
    h.runtime.stop(&InstanceId::from("i-tmp"), Duration::from_secs(20));
    assert_eq!(h.next_event().await.state, WorkloadState::Stopped);
    assert!(began.elapsed() < Duration::from_secs(10), "SIGTERM did not reach the workload");
    assert_eq!(read(&h, "i-tmp", "term"), "term\n");
    disk::release(&h.data_dir("i-tmp")).expect("release");
}

#[tokio::test]
async fn a_guest_over_its_memory_is_oom_killed_and_its_pids_are_capped() {
    const PIDS: u64 = 32;
    let Some(mut h) = confined(PIDS) else { return };
    let limits = h.runtime.inner.options.cgroups.limits();
    if !limits.contains(&Limit::Memory) || !limits.contains(&Limit::Pids) {
        println!("no memory or pids limits here: {limits:?}");
        return;
    }
    // 1.5 GiB touched at once by a 1 GiB guest.
    h.start("i-oom", "exec dd if=/dev/zero of=/dev/null bs=1536M count=1");
    let event = h.next_event().await;
    let WorkloadState::Failed(failure) = &event.state else { panic!("{event:?}") };
    assert_eq!(failure.kind, gpuspot_common::FailureKind::OutOfMemory, "{failure}");
    assert!(failure.to_string().starts_with("out of memory: "), "{failure}");

    // awk goes on when a fork fails (a shell would exit).
    let bomb = "id -u > uid; awk 'BEGIN { for (i = 0; i < 200; i++) \
                if (system(\"sleep 300 &\") == 0) n++; print n > \"started\" }'; exec sleep 300";
    h.start("i-bomb", bomb);
    let started = read_when_written(&h.data_dir("i-bomb").join("started")).await;
    let started: u64 = started.trim().parse().expect("a count");
    let uid: u32 = read(&h, "i-bomb", "uid").trim().parse().expect("uid");
    let running = processes_of(uid).len() as u64;
    assert!(started < PIDS && running <= PIDS, "{started} started, {running} run; pids_max {PIDS}");
    assert!(running > 8, "only {running} processes run");
    h.runtime.stop(&InstanceId::from("i-bomb"), Duration::from_secs(2));
    h.next_event().await;
    for id in ["i-oom", "i-bomb"] {
        disk::release(&h.data_dir(id)).expect("release");
    }
}

#[tokio::test]
async fn a_host_without_limits_refuses_process_guests_unless_unlimited_ok() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refusing = Cgroups::from_mountinfo("", DEFAULT_PIDS_MAX, false);
    let options = ProcessOptions { cgroups: refusing, ..shared_options(dir.path()) };
    let h = Harness::with_options(options, dir);
    let err = h.runtime.start(h.spec("i-1", "true")).unwrap_err();
    assert!(matches!(err, RuntimeError::Unlimited(_)), "{err}");
    assert!(err.to_string().contains("unlimited_ok"), "{err}");
    assert!(h.runtime.running().is_empty());
}
