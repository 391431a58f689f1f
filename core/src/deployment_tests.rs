//! Scenario tests of deployments through the cluster state machine: a ReplicaSet through
//! reclamation, fallback and rebuild; a Job through reclaimed runs and real failures.

use super::accounts::OPERATOR;
use super::cluster::Cluster;
use super::deployment::{DeploymentSpec, DeploymentState, Mode, Template};
use super::deployments::{DeploymentChange, NewDeployment};
use super::instance::Instance;
use super::model::{Billing, GpuRequest, InstanceState, Range};
use crate::settings::{PoolSettings, Timers};
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::protocol::{InstanceReport, WorkloadState};
use gpuspot_common::{AccountId, DeploymentId, GpuInfo, HostId, HostInventory, Money};

const HOLD: i64 = 10;
const NOTICE: i64 = 5;

pub(super) fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-08T05:00:00Z").unwrap().with_timezone(&Utc)
        + Duration::seconds(seconds)
}

pub(super) fn cluster(hosts: &[(&str, u32)]) -> Cluster {
    cluster_of(&hosts.iter().map(|(n, g)| (*n, *g, "NVIDIA H100")).collect::<Vec<_>>())
}

fn cluster_of(hosts: &[(&str, u32, &str)]) -> Cluster {
    let timers = Timers {
        hold_period: std::time::Duration::from_secs(HOLD as u64),
        notice_period: std::time::Duration::from_secs(NOTICE as u64),
        host_lost_after: std::time::Duration::from_secs(86_400),
        ..Timers::default()
    };
    let pool = |model: &str| PoolSettings {
        model: model.into(),
        list_price: Money(2_000_000),
        floor_ppm: 100_000,
        busy_ppm: 200_000,
        notice_period: std::time::Duration::from_secs(NOTICE as u64),
        pricing: Default::default(),
    };
    let mut cluster = Cluster::new(vec![pool("H100"), pool("A100")], timers);
    for (name, gpus, model) in hosts {
        let inventory = HostInventory {
            hostname: name.to_string(),
            gpus: (0..*gpus)
                .map(|i| GpuInfo {
                    index: i,
                    uuid: format!("GPU-{name}-{i}"),
                    model: model.to_string(),
                    memory_mib: 1,
                    pci_bus_id: String::new(),
                    healthy: true,
                })
                .collect(),
            cpu_cores: 8 * gpus,
            memory_gib: 64 * *gpus as u64,
        };
        cluster.host_connected(
            &HostId::from(*name),
            &inventory,
            "test",
            &[gpuspot_common::protocol::GuestRuntime::Process],
            &[],
            t(0),
        );
    }
    cluster
}

fn spec(billing: Billing) -> DeploymentSpec {
    let model = if billing.bid().is_some() { "H100" } else { "A100" };
    DeploymentSpec {
        gpu: GpuRequest { models: vec![model.into()], count: 1 },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing,
    }
}

pub(super) fn new(mode: Mode, replicas: u32, completions: u32, parallelism: u32) -> NewDeployment {
    NewDeployment {
        autoscaling: None,
        schedule: Vec::new(),
        name: "d".into(),
        mode,
        replicas,
        completions,
        parallelism,
        retry_limit: 1,
        specs: vec![spec(Billing::Spot { max_price: Money(500_000) }), spec(Billing::Regular)],
        template: Template {
            command: vec!["run".into()],
            env: Default::default(),
            snapshot: Default::default(),
            image: None,
            data_disk_gib: 50,
            ports: Vec::new(),
            readiness: None,
        },
    }
}

/// The agents start whatever was placed.
pub(super) fn start_scheduled(cluster: &mut Cluster, at: DateTime<Utc>) {
    let scheduled: Vec<Instance> =
        cluster.instances().filter(|i| i.state() == InstanceState::Scheduled).cloned().collect();
    for i in scheduled {
        let report = InstanceReport { instance_id: i.id.clone(), state: WorkloadState::Running };
        cluster.instance_update(i.host_id().unwrap(), &report, at);
    }
}

pub(super) fn end(cluster: &mut Cluster, i: &Instance, state: WorkloadState, at: DateTime<Utc>) {
    let report = InstanceReport { instance_id: i.id.clone(), state };
    cluster.instance_update(i.host_id().unwrap(), &report, at);
}

pub(super) fn running(cluster: &Cluster, id: &DeploymentId) -> Vec<Instance> {
    cluster
        .deployment_instances(id)
        .into_iter()
        .filter(|i| i.state() == InstanceState::Running)
        .cloned()
        .collect()
}

#[test]
fn a_replicaset_replaces_noticed_replicas_at_once_falls_back_and_rebuilds() {
    // Spot H100s first, regular A100s as the fallback (seed 002's ordered specs).
    let mut c = cluster_of(&[("spot-host", 4, "NVIDIA H100"), ("regular-host", 4, "NVIDIA A100")]);
    let operator = AccountId::from(OPERATOR);
    let id = c.create_deployment(operator.clone(), new(Mode::Replicaset, 3, 0, 0), t(0)).unwrap();
    start_scheduled(&mut c, t(0));
    assert_eq!(running(&c, &id).len(), 3);
    assert!(running(&c, &id).iter().all(|i| i.spec_index() == Some(0)), "spot first");

    // Three higher bids for the H100s: after the hold, two replicas lose the auction.
    let high_request = super::model::InstanceRequest {
        billing: Billing::Spot { max_price: Money(1_900_000) },
        ..c.deployment(&id).unwrap().request(0)
    };
    let high: Vec<_> = (0..3)
        .map(|_| c.create_instance(operator.clone(), high_request.clone(), t(1)).unwrap())
        .collect();
    c.market_tick(t(HOLD + 1));
    let noticed: Vec<Instance> = c
        .deployment_instances(&id)
        .into_iter()
        .filter(|i| i.state() == InstanceState::TerminationScheduled)
        .cloned()
        .collect();
    assert_eq!(noticed.len(), 2, "two of the three replicas lose the auction");
    let replacements: Vec<Instance> = c
        .deployment_instances(&id)
        .into_iter()
        .filter(|i| i.state() == InstanceState::Scheduled)
        .cloned()
        .collect();
    assert_eq!(replacements.len(), 2, "replacements start at notice time");
    assert!(replacements.iter().all(|i| i.spec_index() == Some(1)), "on the regular fallback");
    start_scheduled(&mut c, t(HOLD + 2));
    for i in &noticed {
        c.tick(t(HOLD + 1 + NOTICE));
        end(&mut c, i, WorkloadState::Stopped, t(HOLD + 1 + NOTICE));
    }
    assert_eq!(running(&c, &id).len(), 3, "three running throughout");

    // The high bidders leave: spot capacity returns and a rebuild moves fallbacks to spot.
    for h in &high {
        let instance = c.instance(h).unwrap().clone();
        c.delete_instance(h, t(40)).unwrap();
        if instance.host_id().is_some() {
            end(&mut c, &instance, WorkloadState::Stopped, t(40));
        }
    }
    c.market_tick(t(41));
    assert_eq!(c.rebuild_deployment(&id, t(42)).unwrap(), 2);
    start_scheduled(&mut c, t(42));
    let on_spot = running(&c, &id).iter().filter(|i| i.spec_index() == Some(0)).count();
    assert_eq!(on_spot, 3, "all three replicas are on spot again");
}

#[test]
fn scaling_a_replicaset_is_immediate() {
    let mut c = cluster(&[("h", 8)]);
    let id = c
        .create_deployment(AccountId::from(OPERATOR), new(Mode::Replicaset, 2, 0, 0), t(0))
        .unwrap();
    start_scheduled(&mut c, t(0));
    c.change_deployment(&id, DeploymentChange { replicas: Some(5), ..Default::default() }, t(1))
        .unwrap();
    assert_eq!(c.deployment_instances(&id).iter().filter(|i| !i.is_terminated()).count(), 5);
    c.change_deployment(&id, DeploymentChange { replicas: Some(1), ..Default::default() }, t(2))
        .unwrap();
    let stopping = c
        .deployment_instances(&id)
        .iter()
        .filter(|i| matches!(i.state(), InstanceState::Stopping | InstanceState::Terminated))
        .count();
    assert_eq!(stopping, 4);
}

#[test]
fn a_job_counts_successes_reruns_reclaimed_runs_and_completes_at_its_target() {
    let mut c = cluster(&[("h", 2)]);
    let id = c.create_deployment(AccountId::from(OPERATOR), new(Mode::Job, 0, 5, 2), t(0)).unwrap();
    let mut now = 0;
    let mut reclaimed = 0;
    while c.deployment(&id).unwrap().state() != DeploymentState::Completed {
        now += 1;
        assert!(now < 100, "job never completed: {:?}", c.deployment(&id));
        start_scheduled(&mut c, t(now));
        let runs = running(&c, &id);
        for (n, run) in runs.iter().enumerate() {
            if reclaimed < 2 && n == 0 {
                // Lost with its host mid-run: not a failure, it runs again.
                c.schedule_termination(&run.id, super::model::EndReason::ReclaimedPrice, t(now));
                c.tick(t(now + NOTICE));
                end(&mut c, run, WorkloadState::Stopped, t(now + NOTICE));
                reclaimed += 1;
            } else {
                end(&mut c, run, WorkloadState::Exited { code: Some(0) }, t(now));
            }
        }
    }
    let d = c.deployment(&id).unwrap();
    assert_eq!((d.succeeded, d.failed), (5, 0));
    let successes = c.deployment_instances(&id).iter().filter(|i| i.exit_code() == Some(0)).count();
    assert_eq!(successes, 5, "exactly five successful runs");
}

#[test]
fn a_job_fails_once_real_failures_pass_the_retry_limit() {
    let mut c = cluster(&[("h", 1)]);
    let id = c.create_deployment(AccountId::from(OPERATOR), new(Mode::Job, 0, 3, 1), t(0)).unwrap();
    for now in 1..=2 {
        start_scheduled(&mut c, t(now));
        let run = running(&c, &id).remove(0);
        end(&mut c, &run, WorkloadState::Exited { code: Some(1) }, t(now));
    }
    let d = c.deployment(&id).unwrap();
    assert_eq!(d.state(), DeploymentState::Failed, "{d:?}");
    assert_eq!(d.failed, 2);
}

#[test]
fn a_container_follows_its_command() {
    let mut c = cluster(&[("h", 1)]);
    let id = c
        .create_deployment(AccountId::from(OPERATOR), new(Mode::Container, 0, 1, 1), t(0))
        .unwrap();
    start_scheduled(&mut c, t(0));
    assert_eq!(c.deployment(&id).unwrap().state(), DeploymentState::Running);
    let run = running(&c, &id).remove(0);
    end(&mut c, &run, WorkloadState::Exited { code: Some(0) }, t(3));
    assert_eq!(c.deployment(&id).unwrap().state(), DeploymentState::Completed);
    assert!(c.deployment_instances(&id).iter().all(|i| i.is_terminated()));
}

#[test]
fn a_container_whose_instance_the_user_deletes_completes_and_is_not_started_again() {
    let mut c = cluster(&[("h", 1)]);
    let id = c
        .create_deployment(AccountId::from(OPERATOR), new(Mode::Container, 0, 1, 1), t(0))
        .unwrap();
    start_scheduled(&mut c, t(0));
    let run = running(&c, &id).remove(0);
    c.delete_instance(&run.id, t(2)).unwrap();
    end(&mut c, &run, WorkloadState::Stopped, t(3));
    c.reconcile_deployments(t(4));
    let d = c.deployment(&id).unwrap();
    assert_eq!(d.state(), DeploymentState::Completed, "{d:?}");
    assert_eq!(d.reason.as_deref(), Some("stopped by user"));
    assert_eq!(c.deployment_instances(&id).len(), 1, "no new run");
}

#[test]
fn a_container_the_deployment_replaces_itself_runs_again() {
    let mut c = cluster(&[("h", 1)]);
    let id = c
        .create_deployment(AccountId::from(OPERATOR), new(Mode::Container, 0, 1, 1), t(0))
        .unwrap();
    start_scheduled(&mut c, t(0));
    let run = running(&c, &id).remove(0);
    let mut template = c.deployment(&id).unwrap().template.clone();
    template.command = vec!["run-v2".into()];
    c.change_deployment(
        &id,
        DeploymentChange { template: Some(template), ..Default::default() },
        t(1),
    )
    .unwrap();
    end(&mut c, &run, WorkloadState::Stopped, t(2));
    let d = c.deployment(&id).unwrap();
    assert_ne!(d.state(), DeploymentState::Completed, "{d:?}");
    assert!(d.stopped_by_deployment.is_empty(), "forgotten once ended: {d:?}");
    let live: Vec<_> =
        c.deployment_instances(&id).into_iter().filter(|i| !i.is_terminated()).collect();
    assert_eq!(live.len(), 1, "a new run of the new template");
    assert_eq!(live[0].request.command, vec!["run-v2".to_owned()]);
}
