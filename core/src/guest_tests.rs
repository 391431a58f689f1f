//! Image requests through the cluster state machine (docs/contracts.md#guests,
//! #failures-and-quotas): they wait for a host that runs containers, carry their image and data
//! disk to the agent, and a failed pull ends them `failed`, charged nothing, and counts as a crash
//! for a replica set.

use super::accounts::OPERATOR;
use super::cluster::Cluster;
use super::deployment::{DeploymentSpec, Mode, Template};
use super::deployments::NewDeployment;
use super::model::{Billing, EndReason, GpuRequest, InstanceRequest, InstanceState, Range};
use crate::settings::{PoolSettings, Timers};
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::protocol::{CoordinatorMessage, GuestRuntime, InstanceReport, WorkloadState};
use gpuspot_common::{AccountId, GpuInfo, HostId, HostInventory, InstanceId, Money};
use gpuspot_common::{Failure, FailureKind};

const PROCESS: &[GuestRuntime] = &[GuestRuntime::Process];
const BOTH: &[GuestRuntime] = &[GuestRuntime::Process, GuestRuntime::Container];
const PULL_FAILED: &str = "image_pull_failed: registry.example/nope:1: manifest unknown";

/// What an agent reports when it cannot pull `registry.example/nope:1` (see [`PULL_FAILED`]).
fn pull_failed() -> WorkloadState {
    let detail = "registry.example/nope:1: manifest unknown";
    WorkloadState::Failed(Failure::new(FailureKind::ImagePull, detail))
}

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-08T05:00:00Z").unwrap().with_timezone(&Utc)
        + Duration::seconds(seconds)
}

fn cluster() -> Cluster {
    let timers =
        Timers { host_lost_after: std::time::Duration::from_secs(86_400), ..Timers::default() };
    let pool = PoolSettings {
        model: "H100".into(),
        list_price: Money(3_600_000),
        floor_ppm: 100_000,
        busy_ppm: 200_000,
        notice_period: std::time::Duration::from_secs(60),
        pricing: Default::default(),
    };
    Cluster::new(vec![pool], timers)
}

fn connect(c: &mut Cluster, name: &str, runtimes: &[GuestRuntime], at: DateTime<Utc>) -> HostId {
    let inventory = HostInventory {
        hostname: name.into(),
        gpus: (0..2)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{name}-{i}"),
                model: "NVIDIA H100".into(),
                memory_mib: 1,
                pci_bus_id: String::new(),
                healthy: true,
            })
            .collect(),
        cpu_cores: 16,
        memory_gib: 128,
    };
    let id = HostId::from(name);
    c.host_connected(&id, &inventory, "test", runtimes, &[], at);
    id
}

fn request(image: Option<&str>) -> InstanceRequest {
    InstanceRequest {
        name: String::new(),
        gpu: GpuRequest { models: vec!["H100".into()], count: 1 },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing: Billing::Regular,
        command: vec![],
        env: Default::default(),
        snapshot: Default::default(),
        image: image.map(str::to_owned),
        data_disk_gib: 20,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    }
}

fn report(c: &mut Cluster, id: &InstanceId, state: WorkloadState, at: DateTime<Utc>) {
    let host = c.instance(id).and_then(|i| i.host_id().cloned()).expect("placed");
    c.instance_update(&host, &InstanceReport { instance_id: id.clone(), state }, at);
}

#[test]
fn an_image_request_waits_for_a_container_host_and_carries_its_image_there() {
    let mut c = cluster();
    connect(&mut c, "plain", PROCESS, t(0));
    let id =
        c.create_instance(AccountId::from(OPERATOR), request(Some("busybox:1")), t(1)).unwrap();
    let queued = c.instance(&id).unwrap();
    assert_eq!(queued.state(), InstanceState::Queued);
    let reason = queued.reason().unwrap_or_default().to_owned();
    assert!(reason.starts_with("no host with a matching GPU runs containers"), "{reason}");
    c.take_changes();

    let boxes = connect(&mut c, "boxes", BOTH, t(2));
    let placed = c.instance(&id).unwrap();
    assert_eq!((placed.state(), placed.host_id()), (InstanceState::Scheduled, Some(&boxes)));
    let start = c.take_changes().sends.into_iter().find_map(|(host, m)| match m {
        CoordinatorMessage::Start(a) if host == boxes => Some(a),
        _ => None,
    });
    let start = start.expect("a Start for the container host");
    assert_eq!((start.image.as_deref(), start.data_disk_gib), (Some("busybox:1"), 20));
    assert_eq!(c.assignment(&id).unwrap().image.as_deref(), Some("busybox:1"));
}

#[test]
fn a_failed_pull_ends_the_instance_failed_with_its_reason_and_charges_nothing() {
    let mut c = cluster();
    let host = connect(&mut c, "boxes", BOTH, t(0));
    let id = c.create_instance(AccountId::from(OPERATOR), request(Some("nope:1")), t(1)).unwrap();
    c.take_changes();
    report(&mut c, &id, pull_failed(), t(30));
    let failed = c.instance(&id).unwrap().clone();
    assert_eq!(failed.state(), InstanceState::Failed);
    assert_eq!(failed.state().as_str(), "failed");
    assert_eq!(failed.reason(), Some(PULL_FAILED));
    assert_eq!(failed.termination_reason(), Some(EndReason::Failed));
    assert_eq!((failed.started_at(), failed.ended_at()), (None, Some(t(30))));
    assert!(failed.is_terminated());
    let changes = c.take_changes();
    assert!(changes.ledger.is_empty(), "nothing ran, nothing is charged: {:?}", changes.ledger);
    let event = changes.events.iter().find(|e| e.instance_id.as_ref() == Some(&id));
    let event = event.expect("an event about the failure");
    assert_eq!(
        (event.kind.as_str(), &serde_json::to_value(&event.data).unwrap()["state"]),
        ("instance_failed", &"failed".into())
    );
    assert_eq!(c.registry().get(&host).unwrap().free_units(), 2, "its unit is released");

    // Other failures of a workload keep ending it `terminated` with reason `failed: …`.
    let other = c.create_instance(AccountId::from(OPERATOR), request(Some("ok:1")), t(40)).unwrap();
    report(
        &mut c,
        &other,
        WorkloadState::Failed(Failure::new(FailureKind::Start, "no such file")),
        t(41),
    );
    let ended = c.instance(&other).unwrap();
    assert_eq!(ended.state(), InstanceState::Terminated);
    assert_eq!(ended.reason(), Some("failed: no such file"));
}

#[test]
fn a_replica_set_whose_image_cannot_be_pulled_backs_off() {
    let mut c = cluster();
    connect(&mut c, "boxes", BOTH, t(0));
    let template = Template {
        command: vec![],
        env: Default::default(),
        snapshot: Default::default(),
        image: Some("nope:1".into()),
        data_disk_gib: 50,
        ports: Vec::new(),
        readiness: None,
    };
    let new = NewDeployment {
        autoscaling: None,
        schedule: Vec::new(),
        name: "svc".into(),
        mode: Mode::Replicaset,
        replicas: 1,
        completions: 0,
        parallelism: 0,
        retry_limit: 0,
        specs: vec![DeploymentSpec {
            gpu: GpuRequest { models: vec!["H100".into()], count: 1 },
            cpu_cores: Range::default(),
            memory_gib: Range::default(),
            billing: Billing::Regular,
        }],
        template,
    };
    let d = c.create_deployment(AccountId::from(OPERATOR), new, t(0)).unwrap();
    let first = c.deployment_instances(&d)[0].clone();
    assert_eq!(first.request.image.as_deref(), Some("nope:1"));
    report(&mut c, &first.id, pull_failed(), t(1));
    let shown = c.deployment(&d).unwrap();
    assert_eq!(shown.failed, 1);
    let expected = format!("crash_loop: {PULL_FAILED}, next start in 10s");
    assert_eq!(shown.reason.as_deref(), Some(expected.as_str()));
    assert_eq!(c.deployment_instances(&d).len(), 1, "no replacement before the backoff");
    c.tick(t(12));
    assert_eq!(c.deployment_instances(&d).len(), 2, "replaced once the backoff is over");
}
