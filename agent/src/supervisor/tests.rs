use super::*;
use crate::runtime::FakeRuntime;
use crate::snapshots::tasks::Packed;
use gpuspot_common::protocol::AgentMessage;
use gpuspot_common::protocol::{SnapshotPlan, SnapshotRef};
use tokio::sync::mpsc;

struct Fixture {
    _tmp: tempfile::TempDir,
    runtime: Arc<FakeRuntime>,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    supervisor: Supervisor,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let (tx, events) = mpsc::unbounded_channel();
    let runtime = Arc::new(FakeRuntime::new(tx));
    let sockets = tmp.path().join("s");
    std::fs::create_dir_all(&sockets).unwrap();
    let supervisor = Supervisor::new(runtime.clone(), tmp.path().join("state"), sockets)
        .with_data_disks(crate::runtime::DataDisks::disabled());
    Fixture { _tmp: tmp, runtime, events, supervisor }
}

fn snapshot_ref() -> SnapshotRef {
    SnapshotRef { id: "s-0123456789abcdef".into(), sha256: "ab".repeat(32), size: 42 }
}

pub(crate) fn assignment(id: &str, save: bool, restore: Option<SnapshotRef>) -> Assignment {
    Assignment {
        instance_id: InstanceId::from(id),
        gpu_uuids: vec![],
        cpu_cores: 1,
        memory_gib: 1,
        command: vec!["train".into()],
        env: Default::default(),
        metadata: GuestMetadata::default(),
        log_offset: 0,
        kill_timeout_ms: 1000,
        snapshot: Some(SnapshotPlan { save, restore, max_bytes: 1 << 20 }),
        image: None,
        data_disk_gib: 1,
        ports: Vec::new(),
        readiness: None,
    }
}

fn report(id: &str, state: WorkloadState) -> Option<Followup> {
    Some(Followup::Report(InstanceReport { instance_id: InstanceId::from(id), state }))
}

impl Fixture {
    fn end(&mut self, id: &str, state: WorkloadState) -> Option<Followup> {
        assert!(self.runtime.finish(&InstanceId::from(id), state));
        let event = self.events.try_recv().unwrap();
        self.supervisor.on_runtime_event(event)
    }
}

#[tokio::test]
async fn the_command_starts_only_after_its_snapshot_is_restored() {
    let mut f = fixture();
    let id = InstanceId::from("i-r");
    let Some(Followup::Restore(job)) =
        f.supervisor.start(assignment("i-r", false, Some(snapshot_ref()))).pop()
    else {
        panic!("a restore comes first");
    };
    assert_eq!(job.snapshot, snapshot_ref());
    assert!(job.data_dir.ends_with("instances/i-r/data"), "{job:?}");
    assert!(job.scratch.starts_with(job.data_dir.parent().unwrap()));
    assert!(f.runtime.started().is_empty());
    assert_eq!(
        f.supervisor.start(assignment("i-r", false, Some(snapshot_ref()))).pop(),
        None,
        "no second restore"
    );
    assert!(f.supervisor.reports().is_empty(), "nothing runs yet");
    assert_eq!(f.supervisor.restored(&id, Ok(())).pop(), report("i-r", WorkloadState::Running));
    assert_eq!(f.runtime.started().len(), 1);
    assert!(!f.supervisor.is_restoring(&id));
}

#[tokio::test]
async fn a_failed_restore_fails_the_instance_without_starting_it() {
    let mut f = fixture();
    let id = InstanceId::from("i-r");
    f.supervisor.start(assignment("i-r", false, Some(snapshot_ref())));
    let Some(Followup::Report(report)) =
        f.supervisor.restored(&id, Err("sha256 mismatch".into())).pop()
    else {
        panic!("a report");
    };
    let WorkloadState::Failed { message } = report.state else { panic!("{report:?}") };
    assert_eq!(message, "snapshot s-0123456789abcdef could not be restored: sha256 mismatch");
    assert!(f.runtime.started().is_empty());
    assert!(f.supervisor.finished_ids().contains(&id));
}

#[tokio::test]
async fn a_restore_stopped_meanwhile_ends_as_stopped() {
    let mut f = fixture();
    let id = InstanceId::from("i-r");
    f.supervisor.start(assignment("i-r", false, Some(snapshot_ref())));
    f.supervisor.stop(&id, Duration::from_secs(1));
    assert_eq!(f.supervisor.restore_retry(&id), None, "cancelled restores are not retried");
    assert_eq!(f.supervisor.restored(&id, Ok(())).pop(), report("i-r", WorkloadState::Stopped));
    assert!(f.runtime.started().is_empty());
    // A restore the coordinator no longer wants is cancelled by the welcome.
    f.supervisor.start(assignment("i-s", false, Some(snapshot_ref())));
    assert!(f.supervisor.reconcile(vec![], &BTreeSet::new()).is_empty());
    let resumed = f.supervisor.resume_snapshots(|_| false);
    assert_eq!(resumed, vec![report("i-s", WorkloadState::Stopped).unwrap()]);
}

#[tokio::test]
async fn a_save_is_reported_before_the_end_and_the_end_waits_for_it() {
    let mut f = fixture();
    let id = InstanceId::from("i-s");
    assert_eq!(
        f.supervisor.start(assignment("i-s", true, None)).pop(),
        report("i-s", WorkloadState::Running)
    );
    let Some(Followup::Save(job)) = f.end("i-s", WorkloadState::Exited { code: Some(0) }) else {
        panic!("a save comes first");
    };
    assert_eq!((job.max_bytes, job.packed.clone()), (1 << 20, None));
    assert!(job.data_dir.ends_with("instances/i-s/data"));
    // Until the save is reported, a hello says it still runs and nothing forgets it.
    let running = InstanceReport { instance_id: id.clone(), state: WorkloadState::Running };
    assert_eq!(f.supervisor.reports(), vec![running]);
    assert!(f.supervisor.finished_ids().is_empty());
    assert_eq!(f.supervisor.resume_snapshots(|_| true), vec![], "busy: left alone");

    let packed = Packed { sha256: "cd".repeat(32), size: 7 };
    let retry = f.supervisor.save_interrupted(&id, Some(packed.clone())).unwrap();
    assert_eq!(retry.packed, Some(packed));
    assert_eq!(f.supervisor.resume_snapshots(|_| false), vec![Followup::Save(retry)]);

    assert_eq!(f.supervisor.save_done(&id, Ok(snapshot_ref())), Some(Followup::Close(id.clone())));
    assert_eq!(f.supervisor.resume_snapshots(|_| false), vec![Followup::Close(id.clone())]);
    let closing = f.supervisor.closing(&id);
    let n = closing.len();
    assert!(n >= 2);
    assert_eq!(
        closing[n - 2],
        AgentMessage::SnapshotSaved { instance_id: id.clone(), result: Ok(snapshot_ref()) }
    );
    let ended =
        InstanceReport { instance_id: id.clone(), state: WorkloadState::Exited { code: Some(0) } };
    assert_eq!(closing[n - 1], AgentMessage::InstanceUpdate(ended.clone()));
    assert_eq!(
        f.supervisor.reports(),
        vec![InstanceReport { state: WorkloadState::Running, ..ended.clone() }]
    );
    f.supervisor.closed(&id);
    assert_eq!(f.supervisor.reports(), vec![ended]);
    assert!(f.supervisor.finished_ids().contains(&id));
    assert!(f.supervisor.closing(&id).is_empty());
}

#[tokio::test]
async fn without_a_save_plan_the_end_is_reported_at_once() {
    let mut f = fixture();
    let mut plain = assignment("i-p", false, None);
    plain.snapshot = None;
    f.supervisor.start(plain);
    assert_eq!(f.end("i-p", WorkloadState::Stopped), report("i-p", WorkloadState::Stopped));
    f.supervisor.start(assignment("i-q", false, None));
    assert_eq!(f.end("i-q", WorkloadState::Stopped), report("i-q", WorkloadState::Stopped));
}

/// With workers, a start returns at once; its report comes through `next_started`, and a
/// stop or an end that came meanwhile is applied then, not lost.
#[tokio::test]
async fn starts_on_workers_report_later_and_keep_what_came_meanwhile() {
    let mut f = fixture();
    f.supervisor = std::mem::replace(
        &mut f.supervisor,
        Supervisor::new(f.runtime.clone(), f._tmp.path().join("other"), f._tmp.path().join("s")),
    )
    .with_start_workers(StartWorkers::new(2));
    assert!(f.supervisor.start(assignment("i-a", false, None)).is_empty(), "nothing inline");
    assert!(f.supervisor.start(assignment("i-a", false, None)).is_empty(), "no second start");
    let running =
        InstanceReport { instance_id: InstanceId::from("i-a"), state: WorkloadState::Running };
    assert_eq!(f.supervisor.reports(), vec![running], "a hello counts it as running");
    let started = f.supervisor.next_started().await;
    assert_eq!(f.supervisor.started(started), vec![report("i-a", WorkloadState::Running).unwrap()]);

    // Stopped while starting: the stop reaches the runtime once the workload runs.
    f.supervisor.start(assignment("i-b", false, None));
    f.supervisor.stop(&InstanceId::from("i-b"), Duration::from_secs(2));
    let started = f.supervisor.next_started().await;
    f.supervisor.started(started);
    assert_eq!(f.runtime.stopped(), vec![(InstanceId::from("i-b"), Duration::from_secs(2))]);
    let event = f.events.try_recv().unwrap();
    assert_eq!(f.supervisor.on_runtime_event(event), report("i-b", WorkloadState::Stopped));

    // Ended before its start was seen: reported running, then ended.
    f.supervisor.start(assignment("i-c", false, None));
    let started = f.supervisor.next_started().await;
    assert!(f.runtime.finish(&InstanceId::from("i-c"), WorkloadState::Exited { code: Some(3) }));
    let event = f.events.try_recv().unwrap();
    assert_eq!(f.supervisor.on_runtime_event(event), None, "kept for the start");
    assert_eq!(
        f.supervisor.started(started),
        vec![
            report("i-c", WorkloadState::Running).unwrap(),
            report("i-c", WorkloadState::Exited { code: Some(3) }).unwrap(),
        ]
    );
}
