//! Placements per second through the scheduler core alone (no actor, store or network):
//! a `Cluster` with N hosts of mixed GPU models and shapes is filled with instance requests
//! of 1–8 GPUs, regular and spot, until a request no longer fits. Every operation's outbox
//! is taken, as the actor does after each request.
//!
//! `cargo bench -p gpuspot-coordinator --bench scheduler -- [--hosts N]`; prints one line
//! `placements_per_s=… hosts=… placements=… units_used_pct=…` for scripts/bench.sh.

use chrono::Utc;
use gpuspot_common::{AccountId, GpuInfo, HostId, HostInventory, Money};
use gpuspot_coordinator::config::{PoolSettings, Timers};
use gpuspot_coordinator::core::model::{
    Billing, GpuRequest, InstanceRequest, InstanceState, Range, SnapshotOptions,
};
use gpuspot_coordinator::core::{Cluster, accounts::OPERATOR};
use std::time::{Duration, Instant};

/// (NVML name, pool pattern, list price in micros)
const MODELS: [(&str, &str, i64); 4] = [
    ("NVIDIA H100 80GB HBM3", "H100", 2_580_000),
    ("NVIDIA A100-SXM4-80GB", "A100", 1_600_000),
    ("NVIDIA L40S", "L40S", 1_000_000),
    ("NVIDIA GeForce RTX 4090", "RTX 4090", 600_000),
];

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn pools() -> Vec<PoolSettings> {
    MODELS
        .iter()
        .map(|(_, pattern, price)| PoolSettings {
            model: (*pattern).into(),
            list_price: Money(*price),
            floor_ppm: 100_000,
            busy_ppm: 200_000,
            notice_period: Duration::from_secs(1800),
            pricing: Default::default(),
        })
        .collect()
}

fn inventory(n: usize, rng: &mut Rng) -> HostInventory {
    let (model, _, _) = MODELS[n % MODELS.len()];
    let gpus = [8, 8, 8, 4][rng.below(4) as usize];
    HostInventory {
        hostname: format!("bench-{n:05}"),
        gpus: (0..gpus)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{n:05}-{i}"),
                model: model.into(),
                memory_mib: 81_920,
                pci_bus_id: format!("00000000:{:02X}:00.0", i + 1),
                healthy: true,
            })
            .collect(),
        cpu_cores: [64, 128][rng.below(2) as usize],
        memory_gib: [512, 1024, 2048][rng.below(3) as usize],
    }
}

fn request(rng: &mut Rng) -> InstanceRequest {
    let count = [1, 1, 1, 2, 2, 4, 8][rng.below(7) as usize];
    let first = rng.below(MODELS.len() as u64) as usize;
    let mut models = vec![MODELS[first].1.to_owned()];
    if rng.below(2) == 0 {
        models.push(MODELS[(first + 1) % MODELS.len()].1.to_owned());
    }
    let billing = match rng.below(2) {
        0 => Billing::Regular,
        _ => Billing::Spot { max_price: Money(3_000_000) },
    };
    InstanceRequest {
        name: String::new(),
        gpu: GpuRequest { models, count },
        cpu_cores: Range { min: Some(count as u64 * 4), max: None },
        memory_gib: Range::default(),
        billing,
        command: vec!["sleep".into(), "infinity".into()],
        env: Default::default(),
        snapshot: SnapshotOptions::default(),
        image: None,
        data_disk_gib: 50,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    }
}

fn hosts_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--hosts")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn main() {
    let hosts = hosts_arg();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let now = Utc::now();
    let mut cluster = Cluster::new(pools(), Timers::default());
    let started = Instant::now();
    let mut units = 0;
    for n in 0..hosts {
        let inventory = inventory(n, &mut rng);
        units += inventory.gpus.len();
        let id = HostId::from(format!("h-{n:05}").as_str());
        cluster.host_connected(
            &id,
            &inventory,
            "bench",
            &[gpuspot_common::protocol::GuestRuntime::Process],
            &[],
            now,
        );
        cluster.take_changes();
    }
    let connect = started.elapsed();
    cluster.market_tick(now);
    cluster.take_changes();
    let account = AccountId::from(OPERATOR);
    let (mut placed, mut used) = (0usize, 0usize);
    let started = Instant::now();
    loop {
        let request = request(&mut rng);
        let count = request.gpu.count as usize;
        let id = cluster.create_instance(account.clone(), request, now).unwrap();
        cluster.take_changes();
        if cluster.instance(&id).is_none_or(|i| i.state() != InstanceState::Scheduled) {
            break;
        }
        placed += 1;
        used += count;
    }
    let elapsed = started.elapsed();
    println!(
        "placements_per_s={:.0} hosts={hosts} placements={placed} units_used_pct={:.1} seconds={:.3} connect_per_s={:.0}",
        placed as f64 / elapsed.as_secs_f64(),
        100.0 * used as f64 / units as f64,
        elapsed.as_secs_f64(),
        hosts as f64 / connect.as_secs_f64(),
    );
}
