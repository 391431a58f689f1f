//! A real workload printing far more than `[logs] max_bytes`: the agent keeps at most about
//! `max_bytes` of it on disk while it runs, and ships the real tail, never the hole's zeros.

use super::*;
use crate::runtime::{Cgroups, DataDisks, Isolation, ProcessOptions, ProcessRuntime};
use gpuspot_common::logcap;
use gpuspot_common::protocol::AgentMessage;
use std::time::Instant;
use tokio::sync::mpsc;

const MAX: u64 = 256 * 1024;
/// `drop_head` keeps the partly dropped block whole.
const BLOCK_SLACK: u64 = 8192;
const DEADLINE: Duration = Duration::from_secs(20);

fn assignment(id: &str, script: &str) -> Assignment {
    Assignment {
        instance_id: InstanceId::from(id),
        gpu_uuids: vec![],
        cpu_cores: 1,
        memory_gib: 1,
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: Default::default(),
        metadata: GuestMetadata::default(),
        log_offset: 0,
        kill_timeout_ms: 1000,
        snapshot: None,
        image: None,
        data_disk_gib: 1,
        ports: Vec::new(),
        readiness: None,
    }
}

/// Length and allocated bytes of the log, once the cap has caught up with `len_at_least`.
async fn capped(path: &std::path::Path, len_at_least: u64) -> (u64, u64) {
    let began = Instant::now();
    loop {
        if let Ok(file) = std::fs::File::open(path) {
            let len = file.metadata().expect("metadata").len();
            let allocated = logcap::allocated_bytes(&file).expect("blocks");
            if len >= len_at_least && allocated <= MAX + BLOCK_SLACK {
                return (len, allocated);
            }
            assert!(began.elapsed() < DEADLINE, "log {len} bytes, {allocated} allocated");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loud_workload_keeps_max_bytes_on_disk_and_its_real_tail_is_shipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (tx, mut events) = mpsc::unbounded_channel();
    let options = ProcessOptions {
        isolation: Isolation::Shared,
        cgroups: Cgroups::disabled(),
        disks: DataDisks::disabled(),
        network: crate::runtime::Networking::default(),
        instances_dir: None,
    };
    let runtime = Arc::new(ProcessRuntime::with_options(tx, options));
    let sockets = tmp.path().join("s");
    let mut supervisor = Supervisor::new(runtime, tmp.path().join("state"), sockets)
        .with_log_limit(MAX, Some(Duration::from_millis(50)))
        .with_data_disks(DataDisks::disabled());
    let printed: u64 = 20_000_000;
    // It keeps running: the cap must hold without the workload ending.
    let script = format!("head -c {printed} /dev/zero | tr '\\0' x; echo; echo the-end; sleep 300");
    let id = InstanceId::from("i-loud");
    supervisor.start(assignment("i-loud", &script));
    let log = tmp.path().join("state/instances/i-loud/output.log");
    let end = printed + "\nthe-end\n".len() as u64;
    let (len, allocated) = capped(&log, end).await;
    eprintln!("log length {len}, allocated {allocated} bytes (max_bytes {MAX})");
    assert_eq!(len, end, "offsets count every byte printed");

    let frames = supervisor.pending_logs(None);
    let mut shipped = Vec::new();
    for frame in &frames {
        let AgentMessage::Log { offset, data, .. } = frame else { panic!("{frame:?}") };
        assert_eq!(*offset, len - MAX + shipped.len() as u64, "contiguous from the oldest kept");
        shipped.extend_from_slice(data);
    }
    assert_eq!(shipped.len() as u64, MAX);
    assert!(shipped.ends_with(b"xxx\nthe-end\n"));
    assert!(shipped[..shipped.len() - 9].iter().all(|&b| b == b'x'), "zeros or junk shipped");
    assert!(supervisor.pending_logs(None).is_empty(), "shipped once");

    supervisor.stop(&id, Duration::from_secs(1));
    let event = tokio::time::timeout(DEADLINE, events.recv()).await.expect("ended").expect("event");
    assert!(supervisor.on_runtime_event(event).is_some());
}
