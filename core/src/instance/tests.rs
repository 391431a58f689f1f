//! The lifecycle's guards and the stored form: each transition starts only where it says,
//! and every state survives the store's flat record unchanged.

use super::lifecycle::{Ending, Lifecycle, Notice, Placement, Run};
use super::{Instance, Owner};
use crate::instance::effects::Effect;
use crate::model::{
    Billing, EndReason, GpuRequest, InstanceRequest, InstanceState, Range, SnapshotOptions,
};
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::{AccountId, DeploymentId, HostId, InstanceId, Money};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::seconds(s)
}

fn instance() -> Instance {
    let request = InstanceRequest {
        name: "train".into(),
        gpu: GpuRequest { models: vec!["H100".into()], count: 1 },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing: Billing::Spot { max_price: Money(1_000_000) },
        command: vec!["python3".into()],
        env: Default::default(),
        snapshot: SnapshotOptions::default(),
        image: None,
        data_disk_gib: 20,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    };
    Instance::new(InstanceId::from("i-1"), AccountId::from("a-1"), request, t(0), 7)
}

fn placement() -> Placement {
    Placement {
        host_ports: Vec::new(),
        host_id: HostId::from("h-1"),
        gpu_uuids: vec!["GPU-1".into()],
        gpu_model: "NVIDIA H100 80GB HBM3".into(),
        cpu_cores: 16,
        memory_gib: 128,
        price: Money(300_000),
    }
}

fn run() -> Run {
    Run { started_at: t(5), hold_until: Some(t(3605)) }
}

#[test]
fn transitions_start_only_where_they_say() {
    let mut lifecycle = Lifecycle::Queued { waiting: "waiting".into(), promise: None };
    assert!(lifecycle.start(run()).is_err(), "a queued request has not run");
    assert!(lifecycle.stop(EndReason::User).is_err(), "nothing to stop yet");
    let effects = lifecycle.place(placement()).unwrap();
    assert!(effects.contains(&Effect::Start { host: HostId::from("h-1") }));
    assert!(lifecycle.place(placement()).is_err(), "placed once");
    assert!(lifecycle.cancel_notice().is_err(), "no notice to cancel");
    lifecycle.start(run()).unwrap();
    assert_eq!(lifecycle.state(), InstanceState::Running);
    assert!(lifecycle.start(run()).is_err(), "started once");
    let notice = Notice { at: t(100), reason: EndReason::ReclaimedPrice };
    lifecycle.give_notice(notice).unwrap();
    assert!(lifecycle.cancel_notice().is_err(), "only an overdue notice is cancelled");
    lifecycle.stop(EndReason::ReclaimedPrice).unwrap();
    let ending =
        Ending::new(InstanceState::Terminated, EndReason::ReclaimedPrice, "x".into(), t(9));
    let effects = lifecycle.end(ending.clone()).unwrap();
    assert_eq!(effects.first(), Some(&Effect::Release { host: HostId::from("h-1") }));
    assert!(lifecycle.end(ending).is_err(), "ended once");
    assert_eq!(lifecycle.notice_at(), Some(t(100)), "the deadline is still shown");
}

#[test]
fn a_notice_before_the_run_keeps_both_and_a_payment_returns_it_to_scheduled() {
    let mut lifecycle = Lifecycle::Scheduled { placement: placement() };
    lifecycle.give_notice(Notice { at: t(300), reason: EndReason::Overdue }).unwrap();
    lifecycle.cancel_notice().unwrap();
    assert_eq!(lifecycle.state(), InstanceState::Scheduled, "not running without a start");
    lifecycle.give_notice(Notice { at: t(300), reason: EndReason::Overdue }).unwrap();
    lifecycle.start(run()).unwrap();
    assert_eq!(lifecycle.state(), InstanceState::TerminationScheduled);
    assert_eq!(lifecycle.run(), Some(&run()), "it runs, so it is metered and has its hold");
    lifecycle.cancel_notice().unwrap();
    assert_eq!(lifecycle.state(), InstanceState::Running);
}

#[test]
fn every_state_survives_the_stored_record() {
    let mut states = vec![instance()];
    let mut next = instance();
    next.owner = Some(Owner { deployment_id: DeploymentId::from("d-1"), spec_index: Some(1) });
    let steps: [fn(&mut Lifecycle); 5] = [
        |l| {
            l.place(placement()).unwrap();
        },
        |l| {
            l.start(run()).unwrap();
        },
        |l| {
            l.give_notice(Notice { at: t(60), reason: EndReason::ReclaimedCapacity }).unwrap();
        },
        |l| {
            l.stop(EndReason::ReclaimedCapacity).unwrap();
        },
        |l| {
            let ending = Ending::new(
                InstanceState::Terminated,
                EndReason::Exited,
                "exited: code 3".into(),
                t(70),
            );
            l.end(ending.with_exit_code(Some(3))).unwrap();
        },
    ];
    for step in steps {
        step(next.lifecycle_mut());
        states.push(next.clone());
    }
    for instance in states {
        let json = serde_json::to_value(&instance).unwrap();
        let back: Instance = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, instance, "{json}");
    }
    let ended = serde_json::to_value(&next).unwrap();
    assert_eq!(ended["state"], "terminated");
    assert_eq!(ended["termination_time"], serde_json::json!(t(60)));
    assert_eq!(
        (ended["exit_code"].clone(), ended["reason"].clone()),
        (3.into(), "exited: code 3".into())
    );
    assert_eq!(ended["deployment_id"], "d-1");
}

#[test]
fn an_older_record_running_without_a_start_reads_as_scheduled() {
    let mut placed = instance();
    placed.lifecycle_mut().place(placement()).unwrap();
    let mut json = serde_json::to_value(&placed).unwrap();
    json["state"] = "running".into();
    let back: Instance = serde_json::from_value(json).unwrap();
    assert_eq!(back.state(), InstanceState::Scheduled);
    let mut json = serde_json::to_value(&placed).unwrap();
    json["host_id"] = serde_json::Value::Null;
    assert!(serde_json::from_value::<Instance>(json).is_err(), "placed without a host");
}
