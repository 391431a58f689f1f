//! An agent restart as the supervisor lives it: a real workload started by one supervisor
//! (whose process "crashes") is adopted by the next one on the same state dir, with its
//! socket answering and its log continuing; and data dirs released at the right moment.

use super::*;
use crate::runtime::{Cgroups, FakeRuntime, Isolation, ProcessOptions, ProcessRuntime};
use gpuspot_common::protocol::AgentMessage;
use gpuspot_common::protocol::{SnapshotPlan, SnapshotRef};
use std::path::Path;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(10);

fn assignment(id: &str, script: &str) -> Assignment {
    Assignment {
        instance_id: InstanceId::from(id),
        gpu_uuids: vec!["GPU-1".into()],
        cpu_cores: 1,
        memory_gib: 1,
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: Default::default(),
        metadata: GuestMetadata { instance_id: id.into(), ..Default::default() },
        log_offset: 0,
        kill_timeout_ms: 1000,
        snapshot: None,
        image: None,
        data_disk_gib: 1,
        ports: Vec::new(),
        readiness: None,
    }
}

/// A supervisor over real processes on `state` (guests as the test's user), and its events.
fn supervisor(state: &Path) -> (Supervisor, mpsc::UnboundedReceiver<RuntimeEvent>) {
    let (tx, events) = mpsc::unbounded_channel();
    let options = ProcessOptions {
        isolation: Isolation::Shared,
        cgroups: Cgroups::disabled(),
        disks: DataDisks::disabled(),
        network: crate::runtime::Networking::default(),
        instances_dir: Some(state.join("instances")),
    };
    let runtime = Arc::new(ProcessRuntime::with_options(tx, options));
    let supervisor = Supervisor::new(runtime, state.to_owned(), state.join("sock"))
        .with_data_disks(DataDisks::disabled());
    (supervisor, events)
}

/// Starts `assignments` under a supervisor whose process then dies without cleaning up.
fn start_in_a_crashing_agent(state: &Path, assignments: Vec<Assignment>) {
    let state = state.to_owned();
    std::thread::spawn(move || {
        let agent = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        agent.block_on(async {
            let (mut supervisor, _events) = supervisor(&state);
            for assignment in assignments {
                assert!(matches!(supervisor.start(assignment).pop(), Some(Followup::Report(_))));
            }
            std::mem::forget(supervisor); // a crash runs no destructors
        });
    })
    .join()
    .unwrap();
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let began = Instant::now();
    while !check() {
        assert!(began.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn instance_id_over(socket: &Path) -> String {
    let mut stream = tokio::net::UnixStream::connect(socket).await.expect("connect");
    let head = "GET /vm/metadata?key=instance_id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    raw.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or(raw)
}

fn shipped(supervisor: &mut Supervisor) -> String {
    let frames = supervisor.pending_logs(None);
    let data = frames.iter().flat_map(|f| match f {
        AgentMessage::Log { data, .. } => data.clone(),
        _ => Vec::new(),
    });
    String::from_utf8_lossy(&data.collect::<Vec<u8>>()).into_owned()
}

#[tokio::test]
async fn a_restarted_supervisor_adopts_its_workloads_and_keeps_what_the_welcome_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let script =
        "echo before; echo $$ > pid; while [ ! -e go ]; do sleep 0.05; done; echo after; exit 9";
    let (kept, dropped) = (assignment("i-kept", script), assignment("i-dropped", "exec sleep 300"));
    start_in_a_crashing_agent(&state, vec![kept.clone(), dropped.clone()]);
    let data = state.join("instances/i-kept/data");
    wait_for("the workload to run", || data.join("pid").exists()).await;

    let (mut supervisor, mut events) = supervisor(&state);
    let began = Instant::now();
    let mut adopted = supervisor.adopt();
    eprintln!("re-adopted 2 workloads in {:?}", began.elapsed());
    adopted.sort();
    assert_eq!(adopted, ["i-dropped", "i-kept"].map(InstanceId::from));
    assert!(supervisor.adopt().is_empty(), "adoption happens once");
    let running =
        |id: &str| InstanceReport { instance_id: id.into(), state: WorkloadState::Running };
    assert_eq!(supervisor.reports(), vec![running("i-dropped"), running("i-kept")]);
    let socket = state.join("sock/i-kept/metadata.sock");
    assert_eq!(instance_id_over(&socket).await, "\"i-kept\"");
    wait_for("the earlier output", || shipped(&mut supervisor).contains("before")).await;

    // The coordinator still wants one of them: it is kept; the other is stopped.
    let welcome = Assignment { log_offset: "before\n".len() as u64, ..kept.clone() };
    assert!(supervisor.reconcile(vec![welcome], &BTreeSet::new()).is_empty());
    let stopped = tokio::time::timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
    assert_eq!(
        (stopped.instance_id.as_str(), &stopped.state),
        ("i-dropped", &WorkloadState::Stopped)
    );
    assert!(supervisor.on_runtime_event(stopped).is_some());

    std::fs::write(data.join("go"), "").unwrap();
    let ended = tokio::time::timeout(DEADLINE, events.recv()).await.unwrap().unwrap();
    assert_eq!(
        supervisor.on_runtime_event(ended),
        Some(Followup::Report(InstanceReport {
            instance_id: "i-kept".into(),
            state: WorkloadState::Exited { code: Some(9) }
        }))
    );
    assert_eq!(shipped(&mut supervisor), "after\n", "the log continues where the coordinator is");
    wait_for("the data dir to be released", || !data.exists()).await;
    assert!(state.join("instances/i-kept/output.log").exists(), "output stays until acknowledged");
    assert!(!socket.exists());
}

fn fake_supervisor(
    tmp: &Path,
) -> (Supervisor, Arc<FakeRuntime>, mpsc::UnboundedReceiver<RuntimeEvent>) {
    let (tx, events) = mpsc::unbounded_channel();
    let runtime = Arc::new(FakeRuntime::new(tx));
    let supervisor = Supervisor::new(runtime.clone(), tmp.join("state"), tmp.join("sock"))
        .with_data_disks(DataDisks::disabled());
    (supervisor, runtime, events)
}

#[tokio::test]
async fn data_dirs_go_when_the_instance_ends_but_never_before_its_save() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut supervisor, runtime, mut events) = fake_supervisor(tmp.path());
    let data = |id: &str| tmp.path().join("state/instances").join(id).join("data");
    let mut saved = assignment("i-save", "true");
    saved.snapshot = Some(SnapshotPlan { save: true, restore: None, max_bytes: 1 << 20 });
    for a in [assignment("i-plain", "true"), saved] {
        let id = a.instance_id.clone();
        supervisor.start(a);
        std::fs::create_dir_all(data(id.as_str())).unwrap();
        std::fs::write(data(id.as_str()).join("checkpoint"), "x").unwrap();
        runtime.finish(&id, WorkloadState::Exited { code: Some(0) });
        let followup = supervisor.on_runtime_event(events.try_recv().unwrap());
        assert_eq!(matches!(followup, Some(Followup::Save(_))), id.as_str() == "i-save");
    }
    wait_for("the plain instance's data to go", || !data("i-plain").exists()).await;
    assert!(data("i-save").join("checkpoint").exists(), "deleted before its upload");
    let stored = SnapshotRef { id: "s-1".into(), sha256: "ab".repeat(32), size: 1 };
    supervisor.save_done(&InstanceId::from("i-save"), Ok(stored));
    wait_for("the saved instance's data to go", || !data("i-save").exists()).await;
}

#[tokio::test]
async fn what_an_earlier_agent_left_of_ended_instances_is_removed_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("state/instances/i-old");
    std::fs::create_dir_all(old.join("data")).unwrap();
    std::fs::write(old.join("output.log"), "old\n").unwrap();
    let (mut supervisor, _runtime, _events) = fake_supervisor(tmp.path());
    assert!(supervisor.adopt().is_empty());
    wait_for("the leftovers to go", || !old.exists()).await;
}
