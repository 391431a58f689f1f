//! Faults through the cluster state machine: a failed GPU leaves the market and stays off
//! it until cleared, its instance is noticed `gpu_fault` and not charged after the fault,
//! a free GPU's fault only takes its unit away; injection is for simulated hosts only.

use super::billing::EntryKind;
use super::cluster::Cluster;
use super::deployment_tests::{cluster, t};
use super::events::{EventData, EventKind};
use super::faults::FaultError;
use super::model::{Billing, EndReason, GpuRequest, InstanceRequest, InstanceState, Range};
use chrono::{DateTime, Utc};
use gpuspot_common::faults::{FaultCause, FaultCommand, FaultNote, GpuFault};
use gpuspot_common::protocol::{CoordinatorMessage, GpuStatus, InstanceReport, WorkloadState};
use gpuspot_common::{AccountId, HostId, InstanceId, Money};

/// `seconds` then `more` seconds after the tests' epoch.
pub(super) fn t_plus(seconds: i64, more: i64) -> DateTime<Utc> {
    t(seconds + more)
}

fn one_gpu(billing: Billing) -> InstanceRequest {
    InstanceRequest {
        name: String::new(),
        gpu: GpuRequest { models: vec!["H100".into()], count: 1 },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing,
        command: vec!["run".into()],
        env: Default::default(),
        snapshot: Default::default(),
        image: None,
        data_disk_gib: 50,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    }
}

/// A cluster of one 2-GPU host `h1` with one instance running on it since t(1).
pub(super) fn one_running(billing: Billing) -> (Cluster, InstanceId) {
    let mut c = cluster(&[("h1", 2)]);
    let account = c.create_account(crate::accounts::NewAccount::named("acme"), t(0));
    c.pay(&account, Money(100_000_000), t(0)).unwrap();
    let id = c.create_instance(account, one_gpu(billing), t(0)).unwrap();
    let host = HostId::from("h1");
    let report = InstanceReport { instance_id: id.clone(), state: WorkloadState::Running };
    c.instance_update(&host, &report, t(1));
    (c, id)
}

fn fault(c: &mut Cluster, uuid: &str, xid: u32, at: DateTime<Utc>) {
    let index = uuid.rsplit('-').next().and_then(|i| i.parse().ok()).unwrap_or(0);
    let note = FaultNote::Fault(GpuFault { index, uuid: uuid.into(), cause: FaultCause::Xid(xid) });
    c.fault_note(&HostId::from("h1"), &note, at);
}

fn healthy(c: &Cluster, uuid: &str) -> bool {
    let host = c.registry().get(&HostId::from("h1")).unwrap();
    host.units.iter().any(|s| s.unit.gpu.uuid == uuid && s.unit.gpu.healthy)
}

fn heartbeat(c: &mut Cluster, at: DateTime<Utc>) {
    let gpus: Vec<GpuStatus> = (0..2)
        .map(|i| GpuStatus {
            uuid: format!("GPU-h1-{i}"),
            healthy: true,
            utilization_percent: None,
            memory_used_mib: None,
            temperature_celsius: None,
        })
        .collect();
    c.heartbeat(&HostId::from("h1"), &gpus, at);
}

fn charged(c: &mut Cluster, account: &AccountId) -> i64 {
    let ledger = c.take_changes().ledger;
    let charges = ledger.iter().filter(|e| e.kind == EntryKind::Charge && &e.account_id == account);
    charges.map(|e| -e.amount.micros()).sum()
}

#[test]
fn a_fault_notices_the_instance_and_stops_its_charges_at_the_fault() {
    let (mut c, id) = one_running(Billing::Regular);
    let account = c.instance(&id).unwrap().account_id.clone();
    let uuid = c.instance(&id).unwrap().gpu_uuids()[0].clone();
    c.take_changes();
    fault(&mut c, &uuid, 79, t(61));
    let instance = c.instance(&id).unwrap();
    assert_eq!(instance.state(), InstanceState::TerminationScheduled);
    assert_eq!(instance.termination_reason(), Some(EndReason::GpuFault));
    assert_eq!(instance.termination_time(), Some(t(61 + 30)), "the default fault_notice");
    assert!(!healthy(&c, &uuid));
    let changes = c.take_changes();
    let event = changes.events.iter().find(|e| e.kind == EventKind::GpuFault).expect("gpu_fault");
    let EventData::GpuFault(payload) = &event.data else { panic!("{:?}", event.data) };
    assert_eq!(payload.xid, Some(79));
    assert_eq!(payload.gpu_uuid, uuid);
    // 60 s at list (2.00/h) were charged with the fault; nothing after it.
    let at_fault: i64 = changes.ledger.iter().map(|e| -e.amount.micros()).filter(|m| *m > 0).sum();
    assert_eq!(at_fault, 33_333);
    c.meter_tick(t(90));
    c.market_tick(t(90));
    c.meter_tick(t(91));
    assert_eq!(charged(&mut c, &account), 0, "no charge after the fault");
    // The same fault again changes nothing; a healthy heartbeat does not bring it back.
    fault(&mut c, &uuid, 79, t(92));
    heartbeat(&mut c, t(93));
    assert!(!healthy(&c, &uuid));
    assert!(c.take_changes().events.iter().all(|e| e.kind != EventKind::GpuFault));
}

#[test]
fn a_fault_on_a_free_gpu_only_takes_it_off_the_market_until_cleared() {
    let (mut c, id) = one_running(Billing::Regular);
    let held = c.instance(&id).unwrap().gpu_uuids()[0].clone();
    let free = if held.ends_with("-0") { "GPU-h1-1" } else { "GPU-h1-0" };
    fault(&mut c, free, 48, t(5));
    assert!(!healthy(&c, free));
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Running);
    let index: u32 = free.rsplit('-').next().unwrap().parse().unwrap();
    c.take_changes();
    c.clear_gpu(&HostId::from("h1"), index, t(6)).unwrap();
    let sends = c.take_changes().sends;
    let clear = CoordinatorMessage::Faults(FaultCommand::Clear { index });
    assert!(sends.iter().any(|(_, m)| *m == clear), "{sends:?}");
    assert!(!healthy(&c, free), "back once the agent says it is healthy");
    heartbeat(&mut c, t(7));
    assert!(healthy(&c, free));
}

#[test]
fn faults_are_injected_into_simulated_hosts_only() {
    let (mut c, _) = one_running(Billing::Regular);
    let host = HostId::from("h1");
    assert_eq!(c.inject_fault(&host, 0, 79), Err(FaultError::RealGpus("h1".into())));
    c.fault_note(&host, &FaultNote::Source { injectable: true }, t(2));
    assert_eq!(c.inject_fault(&host, 0, 13), Err(FaultError::NotCritical(13)));
    assert!(matches!(c.inject_fault(&host, 9, 79), Err(FaultError::UnknownGpu { .. })));
    c.take_changes();
    c.inject_fault(&host, 1, 79).unwrap();
    let inject = CoordinatorMessage::Faults(FaultCommand::Inject { index: 1, xid: 79 });
    assert!(c.take_changes().sends.iter().any(|(_, m)| *m == inject));
}

#[test]
fn a_fault_under_a_longer_notice_brings_the_deadline_forward_and_stops_the_charges() {
    let (mut c, id) = one_running(Billing::Spot { max_price: Money(9_000_000) });
    let account = c.instance(&id).unwrap().account_id.clone();
    let uuid = c.instance(&id).unwrap().gpu_uuids()[0].clone();
    // A drill of the pool's whole notice (5 s), then a fault whose notice is shorter.
    c.timers.fault_notice = std::time::Duration::from_secs(2);
    c.drill(&id, None, t(10)).unwrap();
    fault(&mut c, &uuid, 94, t(11));
    let instance = c.instance(&id).unwrap();
    assert_eq!(instance.termination_reason(), Some(EndReason::GpuFault));
    assert_eq!(instance.termination_time(), Some(t(13)));
    c.take_changes();
    // Nothing is charged after the fault, market ticks included.
    c.market_tick(t(12));
    c.meter_tick(t(12));
    assert_eq!(charged(&mut c, &account), 0);
}

#[test]
fn a_failed_gpu_stays_off_the_market_when_its_agent_says_hello_again() {
    let (mut c, id) = one_running(Billing::Regular);
    let uuid = c.instance(&id).unwrap().gpu_uuids()[0].clone();
    fault(&mut c, &uuid, 79, t(5));
    let host = HostId::from("h1");
    let inventory = gpuspot_common::HostInventory {
        hostname: "h1".into(),
        gpus: (0..2)
            .map(|i| gpuspot_common::GpuInfo {
                index: i,
                uuid: format!("GPU-h1-{i}"),
                model: "NVIDIA H100".into(),
                memory_mib: 1,
                pci_bus_id: String::new(),
                healthy: true,
            })
            .collect(),
        cpu_cores: 16,
        memory_gib: 128,
    };
    let process = [gpuspot_common::protocol::GuestRuntime::Process];
    c.host_connected(&host, &inventory, "test", &process, &[], t(6));
    assert!(!healthy(&c, &uuid), "a restarted agent's inventory does not clear a fault");
    let stored: crate::registry::Host =
        serde_json::from_value(serde_json::to_value(c.registry().get(&host).unwrap()).unwrap())
            .unwrap();
    assert!(stored.faults.has_failed(&uuid), "the fault is stored with the host");
}
