//! Real-process tests of [`ProcessRuntime`]: what a guest sees and how it ends.

use super::*;
use crate::runtime::group::{process_alive, signal_group};
use crate::runtime::record::ProcessRecord;
use gpuspot_common::protocol::WorkloadState;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

const EVENT_DEADLINE: Duration = Duration::from_secs(10);

struct Harness {
    runtime: ProcessRuntime,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    dir: tempfile::TempDir,
}

/// Guests run as the test's own user, without cgroups or data disks.
fn shared_options(dir: &Path) -> ProcessOptions {
    ProcessOptions {
        isolation: Isolation::Shared,
        cgroups: Cgroups::disabled(),
        disks: DataDisks::disabled(),
        network: crate::runtime::Networking::default(),
        instances_dir: Some(dir.to_owned()),
    }
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::with_options(shared_options(dir.path()), dir)
    }

    fn with_options(options: ProcessOptions, dir: tempfile::TempDir) -> Self {
        // Guests of other uids must be able to reach their dirs below it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        let (tx, events) = mpsc::unbounded_channel();
        Self { runtime: ProcessRuntime::with_options(tx, options), events, dir }
    }

    fn data_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join(id).join("data")
    }

    fn spec(&self, id: &str, script: &str) -> WorkloadSpec {
        WorkloadSpec {
            instance_id: InstanceId::from(id),
            command: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::new(),
            gpu_uuids: vec!["GPU-aaa".into(), "GPU-bbb".into()],
            cpu_cores: 2,
            memory_gib: 1,
            data_dir: self.data_dir(id),
            metadata_socket: self.dir.path().join("sock").join(id).join("metadata.sock"),
            log_path: self.dir.path().join(id).join("output.log"),
            image: None,
            data_disk_gib: 1,
            ports: Vec::new(),
        }
    }

    fn start(&self, id: &str, script: &str) {
        self.runtime.start(self.spec(id, script)).expect("start");
    }

    async fn next_event(&mut self) -> RuntimeEvent {
        tokio::time::timeout(EVENT_DEADLINE, self.events.recv())
            .await
            .expect("no runtime event before the deadline")
            .expect("events channel closed")
    }
}

/// Workloads a test left running die with it, whatever ran them (the watchers follow).
impl Drop for Harness {
    fn drop(&mut self) {
        let dirs = std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten();
        for record in dirs.filter_map(|entry| ProcessRecord::load(&entry.path())) {
            signal_group(record.workload.pid as i32, libc::SIGKILL);
            if let Some((uid, _)) = record.ids {
                crate::runtime::sweep::kill_uid(uid);
            }
        }
    }
}

/// Polls `check` until it holds or `within` passes.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The host pid of `pid` as a guest whose data dir is `data_dir` sees it (in its PID
/// namespace, when it has one).
fn host_pid(data_dir: &Path, pid: u32) -> u32 {
    let record = ProcessRecord::load(&record::instance_dir(data_dir)).expect("record");
    if !record.namespaced {
        return pid;
    }
    let ns = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let guest_ns = ns(record.workload.pid).expect("the guest's init runs");
    let inner = |p: u32| {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
        line.split_whitespace().last()?.parse::<u32>().ok()
    };
    crate::runtime::procfs::all_pids()
        .map(|p| p as u32)
        .find(|p| ns(*p).as_ref() == Some(&guest_ns) && inner(*p) == Some(pid))
        .unwrap_or_else(|| panic!("no host pid for {pid} in {}", data_dir.display()))
}

async fn read_when_written(path: &Path) -> String {
    let written = eventually(EVENT_DEADLINE, || {
        std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    assert!(written, "{} was never written", path.display());
    std::fs::read_to_string(path).expect("read")
}

#[tokio::test]
async fn guest_sees_its_env_and_cannot_override_gpuspot_variables() {
    let mut h = Harness::new();
    let mut spec = h.spec("i-env", "env > env.txt");
    spec.env = BTreeMap::from([
        ("FOO".into(), "bar baz".into()),
        ("GPUSPOT_INSTANCE_ID".into(), "i-evil".into()),
        ("CUDA_VISIBLE_DEVICES".into(), "0".into()),
    ]);
    h.runtime.start(spec.clone()).expect("start");
    let event = h.next_event().await;
    assert_eq!(event.state, WorkloadState::Exited { code: Some(0) });

    let text = std::fs::read_to_string(spec.data_dir.join("env.txt")).expect("env.txt in cwd");
    let env: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let data_dir = spec.data_dir.to_str().expect("utf-8 path");
    assert_eq!(env.get("FOO"), Some(&"bar baz"));
    assert_eq!(env.get("GPUSPOT_INSTANCE_ID"), Some(&"i-env"));
    assert_eq!(env.get("GPUSPOT_DATA_DIR"), Some(&data_dir));
    assert_eq!(env.get("HOME"), Some(&data_dir));
    let socket = spec.metadata_socket.to_str().expect("utf-8 path");
    assert_eq!(env.get("GPUSPOT_METADATA_SOCKET"), Some(&socket));
    assert_eq!(env.get("CUDA_VISIBLE_DEVICES"), Some(&"GPU-aaa,GPU-bbb"));
    assert_eq!(env.get("NVIDIA_VISIBLE_DEVICES"), Some(&"GPU-aaa,GPU-bbb"));
    if std::env::var_os("PATH").is_some() {
        assert!(env.contains_key("PATH"));
    }
    // The agent's own environment does not leak (cargo sets this for test binaries).
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"));
}

#[tokio::test]
async fn output_is_appended_to_the_log_and_the_exit_code_comes_back() {
    let mut h = Harness::new();
    let spec = h.spec("i-out", "echo hi; echo oops >&2; exit 3");
    std::fs::create_dir_all(spec.log_path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&spec.log_path, "earlier output\n").expect("write");
    h.runtime.start(spec.clone()).expect("start");
    assert!(h.runtime.running().contains(&spec.instance_id));
    let event = h.next_event().await;
    assert_eq!(event.instance_id, spec.instance_id);
    assert_eq!(event.state, WorkloadState::Exited { code: Some(3) });
    let log = std::fs::read_to_string(&spec.log_path).expect("log");
    assert_eq!(log, "earlier output\nhi\noops\n");
    assert!(h.runtime.running().is_empty());
}

#[tokio::test]
async fn a_signal_death_has_no_exit_code() {
    let mut h = Harness::new();
    h.start("i-sig", "kill -KILL $$");
    assert_eq!(h.next_event().await.state, WorkloadState::Exited { code: None });
}

#[tokio::test]
async fn stop_ends_a_sleeping_workload_quickly_as_stopped() {
    let mut h = Harness::new();
    h.start("i-sleep", "sleep 300");
    let began = Instant::now();
    h.runtime.stop(&InstanceId::from("i-sleep"), Duration::from_secs(30));
    assert_eq!(h.next_event().await.state, WorkloadState::Stopped);
    assert!(began.elapsed() < Duration::from_secs(5), "{:?}", began.elapsed());
    assert!(h.runtime.running().is_empty());
}

#[tokio::test]
async fn a_workload_that_traps_sigterm_finishes_its_checkpoint() {
    let mut h = Harness::new();
    // Short foreground sleeps: a background child forked at the instant SIGTERM lands could
    // miss it (the signal hits the shell's handler, then exec drops it) and keep the group alive.
    let script = "trap 'echo saved > checkpoint; exit 0' TERM; echo ready > ready; \
                  while :; do sleep 0.05; done";
    h.start("i-trap", script);
    read_when_written(&h.data_dir("i-trap").join("ready")).await;
    let began = Instant::now();
    h.runtime.stop(&InstanceId::from("i-trap"), Duration::from_secs(20));
    assert_eq!(h.next_event().await.state, WorkloadState::Stopped);
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    let checkpoint = std::fs::read_to_string(h.data_dir("i-trap").join("checkpoint"));
    assert_eq!(checkpoint.expect("checkpoint written"), "saved\n");
}

#[tokio::test]
async fn a_workload_that_ignores_sigterm_is_killed_after_the_timeout() {
    let mut h = Harness::new();
    let script = "trap '' TERM; echo $$ > pid; while :; do sleep 0.05; done";
    h.start("i-stubborn", script);
    let pid_file = h.data_dir("i-stubborn").join("pid");
    let pid: u32 = read_when_written(&pid_file).await.trim().parse().expect("pid");
    let began = Instant::now();
    let kill_timeout = Duration::from_millis(500);
    h.runtime.stop(&InstanceId::from("i-stubborn"), kill_timeout);
    assert_eq!(h.next_event().await.state, WorkloadState::Stopped);
    let took = began.elapsed();
    assert!(took >= kill_timeout && took < Duration::from_secs(5), "{took:?}");
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn background_children_die_with_a_stopped_workload() {
    let mut h = Harness::new();
    h.start("i-bg", "sleep 300 & echo $! > bg.pid; sleep 300");
    let pid_file = h.data_dir("i-bg").join("bg.pid");
    let pid: u32 = read_when_written(&pid_file).await.trim().parse().expect("pid");
    assert!(process_alive(pid));
    h.runtime.stop(&InstanceId::from("i-bg"), Duration::from_secs(5));
    assert_eq!(h.next_event().await.state, WorkloadState::Stopped);
    assert!(eventually(EVENT_DEADLINE, || !process_alive(pid)).await);
}

#[tokio::test]
async fn background_children_die_when_the_command_exits() {
    let mut h = Harness::new();
    h.start("i-bg-exit", "sleep 300 & echo $! > bg.pid; exit 0");
    let event = h.next_event().await;
    assert_eq!(event.state, WorkloadState::Exited { code: Some(0) });
    let pid_file = h.data_dir("i-bg-exit").join("bg.pid");
    let pid: u32 = read_when_written(&pid_file).await.trim().parse().expect("pid");
    assert!(eventually(EVENT_DEADLINE, || !process_alive(pid)).await);
}

#[tokio::test]
async fn bad_starts_fail_synchronously_and_report_nothing() {
    let mut h = Harness::new();
    let mut missing = h.spec("i-missing", "");
    missing.command = vec!["/nonexistent/gpuspot-no-such-binary".into()];
    let error = h.runtime.start(missing).expect_err("must fail");
    assert!(matches!(error, RuntimeError::Spawn { .. }), "{error}");
    assert!(error.to_string().contains("gpuspot-no-such-binary"), "{error}");

    let mut empty = h.spec("i-empty", "");
    empty.command.clear();
    let error = h.runtime.start(empty).expect_err("must fail");
    assert!(matches!(error, RuntimeError::EmptyCommand(_)), "{error}");

    assert!(h.runtime.running().is_empty());
    assert!(h.events.try_recv().is_err());
}

#[tokio::test]
async fn an_instance_runs_once_and_unknown_stops_are_ignored() {
    let mut h = Harness::new();
    h.start("i-once", "sleep 300");
    let error = h.runtime.start(h.spec("i-once", "sleep 300")).expect_err("duplicate");
    assert!(matches!(error, RuntimeError::AlreadyRunning(_)), "{error}");
    h.runtime.stop(&InstanceId::from("i-unknown"), Duration::from_secs(1));
    assert_eq!(h.runtime.running(), vec![InstanceId::from("i-once")]);
    h.runtime.stop(&InstanceId::from("i-once"), Duration::from_secs(5));
    // A second stop while the first is in progress changes nothing.
    h.runtime.stop(&InstanceId::from("i-once"), Duration::from_secs(5));
    assert_eq!(h.next_event().await.state, WorkloadState::Stopped);
    assert!(h.events.try_recv().is_err());
}

/// Only meaningful on a cgroup v2 host where the agent may create cgroups (root, usually).
#[tokio::test]
async fn workload_runs_inside_its_limited_cgroups_on_v1_or_v2() {
    let cgroups = Cgroups::detect();
    if !cgroups.limits().contains(&crate::runtime::Limit::Cpu) {
        println!("skipped: CPU limits cannot be enforced on this machine");
        return;
    }
    let (tx, mut events) = mpsc::unbounded_channel();
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime =
        ProcessRuntime::with_options(tx, ProcessOptions { cgroups, ..shared_options(dir.path()) });
    let id = format!("i-cgtest-{}", std::process::id());
    let mut spec = Harness::new().spec(&id, "");
    spec.data_dir = dir.path().join("data");
    spec.log_path = dir.path().join("log");
    let (v2, v1) =
        (format!("/sys/fs/cgroup/gpuspot/{id}"), format!("/sys/fs/cgroup/cpu/gpuspot/{id}"));
    let script = format!(
        "cat /proc/self/cgroup > cg; cat {v2}/cpu.max > max || cat {v1}/cpu.cfs_quota_us > max"
    );
    spec.command = vec!["sh".into(), "-c".into(), script];
    runtime.start(spec).expect("start");
    let event = tokio::time::timeout(EVENT_DEADLINE, events.recv()).await;
    let event = event.expect("event before the deadline").expect("channel open");
    assert_eq!(event.state, WorkloadState::Exited { code: Some(0) });
    let cgroup = std::fs::read_to_string(dir.path().join("data/cg")).expect("cg");
    assert!(cgroup.contains(&format!("/gpuspot/{id}")), "{cgroup}");
    let max = std::fs::read_to_string(dir.path().join("data/max")).expect("max");
    assert!(["200000 100000", "200000"].contains(&max.trim()), "{max}");
    assert!(!Path::new(&v2).exists() && !Path::new(&v1).exists());
}

#[tokio::test]
async fn data_dirs_are_0700_and_logs_0600_even_when_they_existed() {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Harness::new();
    let spec = h.spec("i-modes", "exit 0");
    let logs = spec.log_path.parent().expect("parent");
    std::fs::create_dir_all(logs).expect("mkdir");
    std::fs::write(&spec.log_path, "old\n").expect("write");
    std::fs::set_permissions(&spec.log_path, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    h.runtime.start(spec.clone()).expect("start");
    assert_eq!(h.next_event().await.state, WorkloadState::Exited { code: Some(0) });
    let mode =
        |path: &Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&spec.data_dir), 0o700);
    assert_eq!(mode(spec.data_dir.parent().expect("parent")), 0o700, "created parents too");
    assert_eq!(mode(logs), 0o700);
    assert_eq!(mode(&spec.log_path), 0o600);
    let records = spec.data_dir.parent().expect("instance dir");
    assert_eq!(mode(&records.join(record::RECORD)), 0o600);
    assert_eq!(mode(&records.join(record::STATUS)), 0o600);
}

mod isolation;

mod namespaces;
