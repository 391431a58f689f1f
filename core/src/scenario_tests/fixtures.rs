//! What the scenarios run on: production-like timer settings (an hour's hold, half an
//! hour's notice — simulated time costs nothing), one H100 pool, hosts, requests, and the
//! price integral a user expects to be charged.

use crate::deployment::{DeploymentSpec, Mode, Template};
use crate::deployments::NewDeployment;
use crate::model::{Billing, GpuRequest, InstanceRequest, Range, SnapshotOptions};
use crate::settings::{PoolSettings, Timers};
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::{GpuInfo, HostInventory, Money};

pub const HOLD: Duration = Duration::minutes(60);
pub const NOTICE: Duration = Duration::minutes(30);
pub const OVERDUE_GRACE: Duration = Duration::minutes(5);
pub const PRICE_TICK: Duration = Duration::minutes(5);
pub const METER_TICK: Duration = Duration::seconds(60);
pub const HEARTBEAT: Duration = Duration::seconds(5);
pub const HOST_LOST_AFTER: Duration = Duration::seconds(30);

/// List price of an H100 hour: 2.00.
pub const LIST: Money = Money(2_000_000);
pub const GPU_MODEL: &str = "NVIDIA H100 80GB HBM3";

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-04-08T05:00:00Z").unwrap().with_timezone(&Utc)
}

fn std(d: Duration) -> std::time::Duration {
    d.to_std().expect("positive duration")
}

pub fn timers() -> Timers {
    Timers {
        hold_period: std(HOLD),
        notice_period: std(NOTICE),
        overdue_grace: std(OVERDUE_GRACE),
        price_tick: std(PRICE_TICK),
        meter_tick: std(METER_TICK),
        heartbeat: std(HEARTBEAT),
        host_lost_after: std(HOST_LOST_AFTER),
        ..Timers::default()
    }
}

pub fn pools() -> Vec<PoolSettings> {
    vec![PoolSettings {
        model: "H100".into(),
        list_price: LIST,
        floor_ppm: 100_000,
        busy_ppm: 200_000,
        notice_period: std(NOTICE),
        pricing: Default::default(),
    }]
}

pub fn inventory(name: &str, gpus: u32) -> HostInventory {
    HostInventory {
        hostname: name.into(),
        gpus: (0..gpus)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{name}-{i}"),
                model: GPU_MODEL.into(),
                memory_mib: 81_920,
                pci_bus_id: String::new(),
                healthy: true,
            })
            .collect(),
        cpu_cores: 16 * gpus,
        memory_gib: 64 * gpus as u64,
    }
}

/// Money from cents: `cents(50)` is 0.50.
pub const fn cents(cents: i64) -> Money {
    Money(cents * 10_000)
}

pub fn spot(max_cents: i64) -> Billing {
    Billing::Spot { max_price: cents(max_cents) }
}

/// One H100 running a long command.
pub fn request(billing: Billing) -> InstanceRequest {
    InstanceRequest {
        name: String::new(),
        gpu: GpuRequest { models: vec!["H100".into()], count: 1 },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing,
        command: vec!["train".into(), "--epochs=100".into()],
        env: Default::default(),
        snapshot: SnapshotOptions::default(),
        image: None,
        data_disk_gib: 50,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    }
}

/// A ReplicaSet of `replicas` regular one-H100 replicas.
pub fn replica_set(replicas: u32) -> NewDeployment {
    NewDeployment {
        autoscaling: None,
        schedule: Vec::new(),
        name: "inference".into(),
        mode: Mode::Replicaset,
        replicas,
        completions: 0,
        parallelism: 0,
        retry_limit: 1,
        specs: vec![DeploymentSpec {
            gpu: GpuRequest { models: vec!["H100".into()], count: 1 },
            cpu_cores: Range::default(),
            memory_gib: Range::default(),
            billing: Billing::Regular,
        }],
        template: Template {
            command: vec!["serve".into()],
            env: Default::default(),
            snapshot: Default::default(),
            image: None,
            data_disk_gib: 50,
            ports: Vec::new(),
            readiness: None,
        },
    }
}

/// What a run of `gpus` GPUs from `from` to `to` costs, in micro-units, when the price
/// shown to it changed at the given moments (oldest first): the exact integral, rounded
/// down once, as the meter promises (docs/contracts.md#billing).
pub fn cost(
    prices: &[(DateTime<Utc>, Money)],
    gpus: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> i64 {
    let mut total: i128 = 0;
    for (n, (since, price)) in prices.iter().enumerate() {
        let until = prices.get(n + 1).map_or(to, |(next, _)| *next).min(to);
        let since = (*since).max(from);
        if until > since {
            let ms = (until - since).num_milliseconds() as i128;
            total += price.micros() as i128 * gpus as i128 * ms;
        }
    }
    (total / 3_600_000) as i64
}
