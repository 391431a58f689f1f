//! Scenario tests of metering and overdue handling through the cluster state machine.

use super::billing::EntryKind;
use super::cluster::Cluster;
use super::model::{
    Billing, EndReason, GpuRequest, InstanceRequest, InstanceState, Range, SnapshotOptions,
};
use crate::settings::{PoolSettings, Timers};
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::protocol::{CoordinatorMessage, InstanceReport, WorkloadState};
use gpuspot_common::{AccountId, GpuInfo, HostId, HostInventory, InstanceId, Money};

const GRACE: i64 = 300;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-08T05:00:00Z").unwrap().with_timezone(&Utc)
        + Duration::seconds(seconds)
}

fn cluster() -> (Cluster, HostId) {
    let timers = Timers {
        overdue_grace: std::time::Duration::from_secs(GRACE as u64),
        host_lost_after: std::time::Duration::from_secs(86_400),
        ..Timers::default()
    };
    let pool = PoolSettings {
        model: "H100".into(),
        list_price: Money(3_600_000),
        floor_ppm: 100_000,
        busy_ppm: 200_000,
        notice_period: std::time::Duration::from_secs(60),
        pricing: Default::default(),
    };
    let mut cluster = Cluster::new(vec![pool], timers);
    let host = HostId::from("h-1");
    let inventory = HostInventory {
        hostname: "h".into(),
        gpus: (0..4)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{i}"),
                model: "NVIDIA H100".into(),
                memory_mib: 1,
                pci_bus_id: String::new(),
                healthy: true,
            })
            .collect(),
        cpu_cores: 64,
        memory_gib: 256,
    };
    cluster.host_connected(
        &host,
        &inventory,
        "test",
        &[gpuspot_common::protocol::GuestRuntime::Process],
        &[],
        t(0),
    );
    (cluster, host)
}

fn regular(count: u32) -> InstanceRequest {
    InstanceRequest {
        name: String::new(),
        gpu: GpuRequest { models: vec!["H100".into()], count },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing: Billing::Regular,
        command: vec!["true".into()],
        env: Default::default(),
        snapshot: SnapshotOptions::default(),
        image: None,
        data_disk_gib: 50,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    }
}

fn start(
    cluster: &mut Cluster,
    host: &HostId,
    account: &AccountId,
    at: DateTime<Utc>,
) -> InstanceId {
    let id = cluster.create_instance(account.clone(), regular(1), at).unwrap();
    let report = InstanceReport { instance_id: id.clone(), state: WorkloadState::Running };
    cluster.instance_update(host, &report, at);
    id
}

#[test]
fn a_run_is_charged_per_second_at_list_and_the_ledger_sums_to_the_balance() {
    let (mut cluster, host) = cluster();
    let account = cluster.create_account(crate::accounts::NewAccount::named("acme"), t(0));
    cluster.pay(&account, Money(100_000_000), t(0)).unwrap();
    let id = start(&mut cluster, &host, &account, t(0));
    cluster.meter_tick(t(60));
    cluster.meter_tick(t(90));
    cluster.delete_instance(&id, t(100)).unwrap();
    let report = InstanceReport { instance_id: id.clone(), state: WorkloadState::Stopped };
    cluster.instance_update(&host, &report, t(130));
    let ledger = cluster.take_changes().ledger;
    let charges: i64 =
        ledger.iter().filter(|e| e.kind == EntryKind::Charge).map(|e| e.amount.micros()).sum();
    assert_eq!(charges, -130_000, "3.60/h for the 130 s it ran");
    let sum: i64 = ledger.iter().map(|e| e.amount.micros()).sum();
    assert_eq!(cluster.account(&account).unwrap().balance, Money(sum));
    assert_eq!(ledger.last().unwrap().balance_after, Money(sum));
}

#[test]
fn running_out_of_money_schedules_overdue_terminations_and_a_payment_cancels_them() {
    let (mut cluster, host) = cluster();
    let account = cluster.create_account(crate::accounts::NewAccount::named("acme"), t(0));
    cluster.pay(&account, Money(100_000), t(0)).unwrap();
    let id = start(&mut cluster, &host, &account, t(0));
    cluster.meter_tick(t(60));
    assert!(!cluster.account(&account).unwrap().is_overdue());
    cluster.take_changes();
    cluster.meter_tick(t(120));
    let acme = cluster.account(&account).unwrap().clone();
    assert!(acme.is_overdue() && acme.balance < Money::ZERO);
    assert_eq!(acme.overdue_deadline, Some(t(120 + GRACE)));
    let instance = cluster.instance(&id).unwrap();
    assert_eq!(instance.state(), InstanceState::TerminationScheduled);
    assert_eq!(instance.termination_time(), Some(t(120 + GRACE)));
    assert!(cluster.take_changes().sends.iter().any(|(_, m)| matches!(m,
        CoordinatorMessage::Metadata(md) if md.termination_reason == Some(EndReason::Overdue))));
    let refused = cluster.may_start(&account);
    assert!(!refused, "no new instances while overdue");

    cluster.pay(&account, Money(1_000_000), t(200)).unwrap();
    let instance = cluster.instance(&id).unwrap();
    assert_eq!(instance.state(), InstanceState::Running);
    assert_eq!(instance.termination_time(), None);
    assert!(cluster.take_changes().sends.iter().any(|(_, m)| matches!(m,
        CoordinatorMessage::Metadata(md) if md.spot_termination_time.is_none())));
    cluster.tick(t(120 + GRACE + 1));
    assert_eq!(cluster.instance(&id).unwrap().state(), InstanceState::Running);
}

#[test]
fn an_unpaid_account_is_shut_down_at_the_deadline_even_inside_a_hold() {
    let (mut cluster, host) = cluster();
    let account = cluster.create_account(crate::accounts::NewAccount::named("acme"), t(0));
    let id = cluster
        .create_instance(
            account.clone(),
            InstanceRequest {
                billing: Billing::Spot { max_price: Money(9_000_000) },
                ..regular(1)
            },
            t(0),
        )
        .unwrap();
    let report = InstanceReport { instance_id: id.clone(), state: WorkloadState::Running };
    cluster.instance_update(&host, &report, t(0));
    cluster.meter_tick(t(10));
    assert_eq!(cluster.instance(&id).unwrap().state(), InstanceState::TerminationScheduled);
    cluster.tick(t(10 + GRACE - 1));
    assert_eq!(cluster.instance(&id).unwrap().state(), InstanceState::TerminationScheduled);
    cluster.tick(t(10 + GRACE));
    assert_eq!(cluster.instance(&id).unwrap().state(), InstanceState::Stopping);
}

#[test]
fn the_operator_account_is_never_overdue() {
    let (mut cluster, host) = cluster();
    let operator = AccountId::from(super::accounts::OPERATOR);
    let id = start(&mut cluster, &host, &operator, t(0));
    cluster.meter_tick(t(3600));
    assert!(cluster.account(&operator).unwrap().balance < Money::ZERO);
    assert_eq!(cluster.instance(&id).unwrap().state(), InstanceState::Running);
}
