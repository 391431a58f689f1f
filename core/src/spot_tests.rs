//! Scenario tests of the spot market through the cluster state machine, with a hand-moved
//! clock: hold, price reclamation (outbid, or a bid below the price), capacity
//! reclamation, notices and deadlines, and a `fixed_at_start` pool.

use super::cluster::Cluster;
use super::model::{Billing, GpuRequest, InstanceRequest, InstanceState, Range, SnapshotOptions};
use super::settings::PoolPricing;
use crate::settings::{PoolSettings, Timers};
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::protocol::{CoordinatorMessage, InstanceReport, WorkloadState};
use gpuspot_common::{AccountId, GpuInfo, HostId, HostInventory, InstanceId, Money};

const HOLD: i64 = 60;
const NOTICE: i64 = 30;

fn timers() -> Timers {
    Timers {
        hold_period: std::time::Duration::from_secs(HOLD as u64),
        notice_period: std::time::Duration::from_secs(NOTICE as u64),
        host_lost_after: std::time::Duration::from_secs(86_400),
        ..Timers::default()
    }
}

fn pool() -> PoolSettings {
    PoolSettings {
        model: "H100".into(),
        list_price: Money(2_000_000),
        floor_ppm: 100_000,
        busy_ppm: 200_000,
        notice_period: std::time::Duration::from_secs(NOTICE as u64),
        pricing: Default::default(),
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-08T05:00:00Z").unwrap().with_timezone(&Utc)
}

fn host(gpus: u32) -> HostInventory {
    HostInventory {
        hostname: "h".into(),
        gpus: (0..gpus)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{i}"),
                model: "NVIDIA H100 80GB HBM3".into(),
                memory_mib: 81_920,
                pci_bus_id: String::new(),
                healthy: true,
            })
            .collect(),
        cpu_cores: 16 * gpus,
        memory_gib: 64 * gpus as u64,
    }
}

fn request(count: u32, billing: Billing) -> InstanceRequest {
    InstanceRequest {
        name: String::new(),
        gpu: GpuRequest { models: vec!["H100".into()], count },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing,
        command: vec!["sleep".into(), "1000".into()],
        env: Default::default(),
        snapshot: SnapshotOptions::default(),
        image: None,
        data_disk_gib: 50,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    }
}

fn spot(cents: i64) -> Billing {
    Billing::Spot { max_price: Money(cents * 10_000) }
}

struct World {
    cluster: Cluster,
    host: HostId,
}

impl World {
    fn new(gpus: u32) -> Self {
        Self::with_pool(gpus, pool())
    }

    fn with_pool(gpus: u32, pool: PoolSettings) -> Self {
        let mut cluster = Cluster::new(vec![pool], timers());
        let host_id = HostId::from("h-1");
        cluster.host_connected(
            &host_id,
            &host(gpus),
            "test",
            &[gpuspot_common::protocol::GuestRuntime::Process],
            &[],
            t0(),
        );
        cluster.take_changes();
        Self { cluster, host: host_id }
    }

    /// Creates and, if placed, starts an instance (the agent reports it running).
    fn run(&mut self, count: u32, billing: Billing, at: DateTime<Utc>) -> InstanceId {
        let account = AccountId::from(super::accounts::OPERATOR);
        let id = self.cluster.create_instance(account, request(count, billing), at).unwrap();
        if self.state(&id) == InstanceState::Scheduled {
            self.report(&id, WorkloadState::Running, at);
        }
        id
    }

    fn report(&mut self, id: &InstanceId, state: WorkloadState, at: DateTime<Utc>) {
        let report = InstanceReport { instance_id: id.clone(), state };
        self.cluster.instance_update(&self.host, &report, at);
    }

    fn state(&self, id: &InstanceId) -> InstanceState {
        self.cluster.instance(id).unwrap().state()
    }

    fn sends(&mut self) -> Vec<CoordinatorMessage> {
        self.cluster.take_changes().sends.into_iter().map(|(_, m)| m).collect()
    }
}

#[test]
fn a_higher_bid_reclaims_only_after_the_hold_then_at_the_deadline() {
    let mut w = World::new(2);
    let low = w.run(2, spot(50), t0());
    let high = w.run(1, spot(90), t0());
    assert_eq!(w.state(&high), InstanceState::Queued);
    w.cluster.market_tick(t0() + Duration::seconds(10));
    assert_eq!(w.state(&low), InstanceState::Running, "inside the hold nobody is reclaimed");
    w.sends();

    let decided = t0() + Duration::seconds(HOLD + 1);
    w.cluster.market_tick(decided);
    let noticed = w.cluster.instance(&low).unwrap().clone();
    assert_eq!(noticed.state(), InstanceState::TerminationScheduled);
    assert_eq!(noticed.termination_time(), Some(decided + Duration::seconds(NOTICE)));
    assert_eq!(noticed.termination_reason().map(|r| r.as_str()), Some("reclaimed_price"));
    let metadata = w.sends().into_iter().find_map(|m| match m {
        CoordinatorMessage::Metadata(md) if md.instance_id == low => Some(md),
        _ => None,
    });
    let metadata = metadata.expect("the guest is told at once");
    assert_eq!(metadata.spot_termination_time, noticed.termination_time());
    assert_eq!(metadata.termination_reason.as_deref(), Some("reclaimed_price"));

    w.cluster.tick(decided + Duration::seconds(NOTICE - 1));
    assert_eq!(w.state(&low), InstanceState::TerminationScheduled, "not before the deadline");
    w.cluster.tick(decided + Duration::seconds(NOTICE));
    assert_eq!(w.state(&low), InstanceState::Stopping);
    assert!(
        w.sends().iter().any(
            |m| matches!(m, CoordinatorMessage::Stop { instance_id, .. } if *instance_id == low)
        )
    );
    w.report(&low, WorkloadState::Stopped, decided + Duration::seconds(NOTICE + 1));
    assert_eq!(w.state(&low), InstanceState::Terminated);
    assert_eq!(w.state(&high), InstanceState::Scheduled, "the winner takes the freed units");
}

#[test]
fn in_the_hold_everyone_pays_the_surplus_price_and_nobody_above_their_bid() {
    let mut w = World::new(4);
    let a = w.run(1, spot(30), t0());
    let b = w.run(1, spot(25), t0());
    w.cluster.market_tick(t0() + Duration::seconds(HOLD / 2));
    assert_eq!(w.state(&a), InstanceState::Running);
    assert_eq!(w.state(&b), InstanceState::Running, "inside the hold nobody is reclaimed");
    // Half the pool used: 0.1 + 0.5 * (0.2 - 0.1) = 15 % of 2.00.
    assert_eq!(w.cluster.market_price("NVIDIA H100 80GB HBM3"), Some(Money(300_000)));
    assert_eq!(
        w.cluster.instance(&a).unwrap().price(),
        Some(Money(300_000)),
        "pays the market, not the bid"
    );
    assert_eq!(
        w.cluster.instance(&b).unwrap().price(),
        Some(Money(250_000)),
        "never more than the bid"
    );
}

#[test]
fn without_competition_a_bid_below_the_price_is_reclaimed_after_its_hold() {
    let mut w = World::new(4);
    let a = w.run(1, spot(30), t0());
    let b = w.run(1, spot(25), t0());
    w.sends();
    let decided = t0() + Duration::seconds(HOLD + 1);
    w.cluster.market_tick(decided);
    let noticed = w.cluster.instance(&b).unwrap().clone();
    assert_eq!(noticed.state(), InstanceState::TerminationScheduled, "0.25 is below 0.30");
    assert_eq!(noticed.termination_reason().map(|r| r.as_str()), Some("reclaimed_price"));
    assert_eq!(noticed.termination_time(), Some(decided + Duration::seconds(NOTICE)));
    let metadata = w.sends().into_iter().find_map(|m| match m {
        CoordinatorMessage::Metadata(md) if md.instance_id == b => Some(md),
        _ => None,
    });
    let metadata = metadata.expect("the guest is told at once");
    assert_eq!(metadata.spot_termination_time, noticed.termination_time());
    assert_eq!(w.state(&a), InstanceState::Running, "a bid equal to the price stays");
    assert_eq!(w.cluster.instance(&a).unwrap().termination_time(), None);
}

#[test]
fn a_queued_bid_below_the_risen_price_waits_as_outbid() {
    let mut w = World::new(4);
    for _ in 0..3 {
        w.run(1, spot(50), t0());
    }
    w.cluster.market_tick(t0() + Duration::seconds(1));
    // Three of four used: 0.1 + 0.75 * 0.1 = 17.5 % of 2.00, above the idle 0.20.
    assert_eq!(w.cluster.market_price("NVIDIA H100 80GB HBM3"), Some(Money(350_000)));
    let late = w.run(1, spot(30), t0() + Duration::seconds(2));
    assert_eq!(w.state(&late), InstanceState::Queued, "a unit is free but the bid is short");
    let reason = w.cluster.instance(&late).unwrap().reason().unwrap();
    assert!(reason.starts_with("outbid") && reason.contains("0.35"), "{reason}");
}

#[test]
fn a_fixed_at_start_pool_keeps_the_start_price_and_reclaims_only_for_capacity() {
    let fixed = PoolSettings { pricing: PoolPricing::FixedAtStart, ..pool() };
    let mut w = World::with_pool(4, fixed);
    let cheap = w.run(1, spot(25), t0());
    let big = w.run(3, spot(60), t0());
    let start_prices: Vec<_> =
        [&cheap, &big].map(|id| w.cluster.instance(id).unwrap().price()).into();
    let high = w.run(1, spot(90), t0());
    assert_eq!(w.state(&high), InstanceState::Queued);
    let after_hold = t0() + Duration::seconds(HOLD + 1);
    w.cluster.market_tick(after_hold);
    assert_eq!(
        w.cluster.market_price("NVIDIA H100 80GB HBM3"),
        Some(Money(900_000)),
        "the waiting bid sets the market"
    );
    for (id, started_at) in [&cheap, &big].into_iter().zip(start_prices) {
        let instance = w.cluster.instance(id).unwrap();
        assert_eq!(instance.state(), InstanceState::Running, "no price reclaims: {id}");
        assert_eq!(instance.price(), started_at, "the price at its start: {id}");
    }
    w.run(1, Billing::Regular, after_hold + Duration::seconds(1));
    let reclaimed = w.cluster.instance(&cheap).unwrap();
    assert_eq!(reclaimed.state(), InstanceState::TerminationScheduled);
    assert_eq!(reclaimed.termination_reason().map(|r| r.as_str()), Some("reclaimed_capacity"));
    assert_eq!(w.state(&big), InstanceState::Running);
}

#[test]
fn a_regular_request_reclaims_the_lowest_bid_once_and_waits_for_it() {
    let mut w = World::new(2);
    let cheap = w.run(1, spot(30), t0());
    let dear = w.run(1, spot(60), t0());
    let after_hold = t0() + Duration::seconds(HOLD + 5);
    let regular = w.run(1, Billing::Regular, after_hold);
    assert_eq!(w.state(&regular), InstanceState::Queued);
    assert!(w.cluster.instance(&regular).unwrap().reason().unwrap().contains("reclaimed capacity"));
    assert_eq!(w.state(&cheap), InstanceState::TerminationScheduled);
    assert_eq!(
        w.cluster.instance(&cheap).unwrap().termination_reason().map(|r| r.as_str()),
        Some("reclaimed_capacity")
    );
    w.cluster.place_queued(after_hold + Duration::seconds(1));
    assert_eq!(w.state(&dear), InstanceState::Running, "one victim is enough");

    let deadline = after_hold + Duration::seconds(NOTICE);
    w.cluster.tick(deadline);
    w.report(&cheap, WorkloadState::Stopped, deadline);
    assert_eq!(w.state(&regular), InstanceState::Scheduled);
    assert_eq!(
        w.cluster.instance(&regular).unwrap().price(),
        Some(Money(2_000_000)),
        "regular pays list"
    );
}

#[test]
fn spot_instances_in_their_hold_are_safe_from_capacity_reclamation() {
    let mut w = World::new(1);
    let held = w.run(1, spot(30), t0());
    let regular = w.run(1, Billing::Regular, t0() + Duration::seconds(5));
    assert_eq!(w.state(&held), InstanceState::Running);
    assert_eq!(w.state(&regular), InstanceState::Queued);
    w.cluster.place_queued(t0() + Duration::seconds(HOLD + 1));
    assert_eq!(
        w.state(&held),
        InstanceState::TerminationScheduled,
        "reclaimed once the hold is over"
    );
}

#[test]
fn a_scheduled_termination_survives_a_restart_and_happens_at_the_same_time() {
    let mut w = World::new(2);
    let low = w.run(2, spot(50), t0());
    w.run(1, spot(90), t0());
    let decided = t0() + Duration::seconds(HOLD + 1);
    w.cluster.market_tick(decided);
    let changes = w.cluster.take_changes();
    let instances: Vec<_> = w.cluster.instances().cloned().collect();
    let hosts: Vec<_> = w.cluster.registry().iter().cloned().collect();
    let _ = changes;
    let mut restarted =
        Cluster::new(vec![pool()], timers()).restore(hosts, instances, 100, decided);
    restarted.tick(decided + Duration::seconds(NOTICE - 1));
    assert_eq!(restarted.instance(&low).unwrap().state(), InstanceState::TerminationScheduled);
    restarted.tick(decided + Duration::seconds(NOTICE));
    assert_eq!(restarted.instance(&low).unwrap().state(), InstanceState::Stopping);
}

#[test]
fn a_spot_bid_below_the_market_price_waits_as_outbid() {
    let mut w = World::new(4);
    let cheap = w.run(1, spot(5), t0());
    assert_eq!(w.state(&cheap), InstanceState::Queued);
    let reason = w.cluster.instance(&cheap).unwrap().reason().unwrap();
    assert!(reason.starts_with("outbid"), "{reason}");
}
