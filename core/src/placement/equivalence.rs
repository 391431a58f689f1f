//! The indexed placement must choose exactly what a walk over every host chooses. This keeps
//! that walk (the original algorithm) and compares both on random registries as hosts
//! connect, fill, fail, empty and get lost.

use super::{HostFit, ModelFilter, NoFit, Placement, fit_on_host, place};
use crate::model::{Billing, GpuRequest, InstanceRequest, Range, SnapshotOptions};
use crate::pools::{PoolUsage, usage};
use crate::registry::{Host, HostState, Registry};
use chrono::DateTime;
use gpuspot_common::inventory::model_matches;
use gpuspot_common::protocol::GuestRuntime;
use gpuspot_common::{GpuInfo, HostId, HostInventory, Money};

const MODELS: [&str; 3] = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L4"];

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn place_by_scan(
    registry: &Registry,
    request: &InstanceRequest,
    price_of: impl Fn(&str) -> Money,
    allowed: impl Fn(&str) -> bool,
) -> Result<Placement, NoFit> {
    let mut best: Option<((usize, Money, HostId), Placement)> = None;
    let mut could_wait = false;
    let filter = ModelFilter::new(&request.gpu);
    for host in registry.iter().filter(|h| h.state() != HostState::Lost) {
        match fit_on_host(host, request, &filter, &allowed) {
            HostFit::Fits(placement) => {
                let left = host.free_units() - placement.unit_indices.len();
                let key = (left, price_of(&placement.gpu_model), host.id.clone());
                if best.as_ref().is_none_or(|(best_key, _)| key < *best_key) {
                    best = Some((key, placement));
                }
            }
            HostFit::Busy => could_wait = true,
            HostFit::Never => {}
        }
    }
    match best {
        Some((_, placement)) => Ok(placement),
        None if could_wait => Err(NoFit::Wait(String::new())),
        None => Err(NoFit::Never(String::new())),
    }
}

fn usage_by_scan(registry: &Registry, model: &str) -> PoolUsage {
    let mut usage = PoolUsage::default();
    for host in registry.iter().filter(|h| h.state() != HostState::Lost) {
        for slot in host.units.iter().filter(|s| model_matches(model, &s.unit.gpu.model)) {
            if slot.unit.gpu.healthy {
                usage.total += 1;
                usage.used += usize::from(slot.instance.is_some());
                if slot.instance.is_none() && host.takes_placements() {
                    usage.free += 1;
                }
            }
        }
    }
    usage
}

fn random_host(rng: &mut Rng, n: usize) -> Host {
    let gpus = [1, 2, 4, 8][rng.below(4) as usize];
    let mixed = rng.below(10) == 0;
    let model = rng.below(3) as usize;
    let inventory = HostInventory {
        hostname: format!("h{n}"),
        gpus: (0..gpus)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{n}-{i}"),
                model: MODELS[if mixed { (model + i as usize) % 3 } else { model }].into(),
                memory_mib: 1,
                pci_bus_id: String::new(),
                healthy: true,
            })
            .collect(),
        cpu_cores: [64, 128][rng.below(2) as usize],
        memory_gib: [512, 1024][rng.below(2) as usize],
    };
    let mut host = Host::new(
        HostId::from(format!("h-{n:04}").as_str()),
        &inventory,
        "t",
        DateTime::UNIX_EPOCH,
    );
    if rng.below(2) == 0 {
        host.set_runtimes(&[GuestRuntime::Process, GuestRuntime::Container]);
    }
    host
}

fn mutate(registry: &mut Registry, rng: &mut Rng, hosts: usize) {
    let id = HostId::from(format!("h-{:04}", rng.below(hosts as u64)).as_str());
    let roll = rng.below(100);
    let Some(host) = registry.get_mut(&id) else {
        return;
    };
    let unit = rng.below(host.units.len() as u64) as usize;
    match roll {
        0..=49 => host.units[unit].instance = Some(format!("i-{roll}").as_str().into()),
        50..=79 => host.units[unit].instance = None,
        80..=87 => host.units[unit].unit.gpu.healthy = !host.units[unit].unit.gpu.healthy,
        // A transition the state does not allow changes nothing, as in the cluster.
        88..=90 => drop(host.disconnect()),
        91..=93 => {
            let toggled = if host.runtimes.contains(&GuestRuntime::Container) {
                vec![GuestRuntime::Process]
            } else {
                vec![GuestRuntime::Process, GuestRuntime::Container]
            };
            host.set_runtimes(&toggled);
        }
        94..=96 => drop(host.lose()),
        _ => host.connect(host.last_seen),
    }
}

fn random_request(rng: &mut Rng) -> InstanceRequest {
    let patterns = ["H100", "a100", "L4", "NVIDIA", "B200"];
    let models = (0..1 + rng.below(2)).map(|_| patterns[rng.below(5) as usize].into()).collect();
    let range = |rng: &mut Rng, lo: u64, hi: u64| match rng.below(3) {
        0 => Range::default(),
        _ => Range { min: Some(rng.below(lo)), max: Some(lo + rng.below(hi)) },
    };
    InstanceRequest {
        name: String::new(),
        gpu: GpuRequest { models, count: 1 + rng.below(8) as u32 },
        cpu_cores: range(rng, 64, 128),
        memory_gib: range(rng, 512, 1024),
        billing: Billing::Regular,
        command: vec!["true".into()],
        env: Default::default(),
        snapshot: SnapshotOptions::default(),
        image: (rng.below(3) == 0).then(|| "busybox".into()),
        data_disk_gib: 50,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    }
}

#[test]
fn indexed_placement_chooses_what_a_full_scan_chooses() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let hosts = 60;
    let mut registry = Registry::default();
    for n in 0..hosts {
        registry.insert(random_host(&mut rng, n));
    }
    let price = |m: &str| Money(if m.contains("H100") { 3 } else { 2 });
    let no_l4 = |m: &str| !m.contains("L4");
    for round in 0..3000 {
        for _ in 0..rng.below(4) {
            mutate(&mut registry, &mut rng, hosts);
        }
        let request = random_request(&mut rng);
        let expected = place_by_scan(&registry, &request, price, no_l4);
        let got = place(&registry, &request, price, no_l4);
        match (&expected, &got) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "round {round}: {request:?}"),
            (Err(NoFit::Wait(_)), Err(NoFit::Wait(_)))
            | (Err(NoFit::Never(_)), Err(NoFit::Never(_))) => {}
            _ => panic!("round {round}: scan {expected:?}, index {got:?} for {request:?}"),
        }
        for pattern in ["H100", "A100", "NVIDIA", "l4"] {
            assert_eq!(usage(&registry, pattern), usage_by_scan(&registry, pattern));
        }
    }
}
