//! Placement on hand-built registries: best fit, shapes, models and health.

use super::*;
use crate::model::{Billing, GpuRequest, Range, SnapshotOptions};
use chrono::DateTime;
use gpuspot_common::{GpuInfo, HostInventory};

pub fn inventory(name: &str, model: &str, gpus: u32, cores: u32, mem: u64) -> HostInventory {
    HostInventory {
        hostname: name.into(),
        gpus: (0..gpus)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{name}-{i}"),
                model: model.into(),
                memory_mib: 32_768,
                pci_bus_id: String::new(),
                healthy: true,
            })
            .collect(),
        cpu_cores: cores,
        memory_gib: mem,
    }
}

fn seed_004() -> Registry {
    let mut registry = Registry::default();
    for (id, model, cores, mem) in [
        ("h-a", "NVIDIA GeForce RTX 5090", 128, 720),
        ("h-b", "NVIDIA GeForce RTX 4090", 64, 720),
        ("h-c", "NVIDIA RTX PRO 6000 Blackwell Server Edition", 128, 360),
    ] {
        let inv = inventory(id, model, 8, cores, mem);
        registry.insert(Host::new(HostId::from(id), &inv, "test", DateTime::UNIX_EPOCH));
    }
    registry
}

fn request(models: &[&str], count: u32, cores: (u64, u64), mem: (u64, u64)) -> InstanceRequest {
    InstanceRequest {
        name: "r".into(),
        gpu: GpuRequest { models: models.iter().map(|m| m.to_string()).collect(), count },
        cpu_cores: Range { min: Some(cores.0), max: Some(cores.1) },
        memory_gib: Range { min: Some(mem.0), max: Some(mem.1) },
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

const ALL: [&str; 3] = ["RTX 5090", "RTX 4090", "RTX PRO 6000"];

#[test]
fn seed_004_example_matches_a_or_c_never_b() {
    let registry = seed_004();
    let req = request(&ALL, 8, (100, 200), (224, 1024));
    let first = place(&registry, &req, |_| Money(1), |_| true).unwrap();
    assert!(["h-a", "h-c"].contains(&first.host_id.as_str()));
    assert_eq!(first.cpu_cores, 128);
    // Only B left once A and C are excluded: it must never match.
    let mut only_b = Registry::default();
    only_b.insert(registry.get(&HostId::from("h-b")).unwrap().clone());
    assert!(matches!(place(&only_b, &req, |_| Money(1), |_| true), Err(NoFit::Never(_))));
}

#[test]
fn seed_004_shares_follow_the_host() {
    let registry = seed_004();
    let req = request(&["RTX PRO 6000"], 8, (100, 200), (224, 1024));
    let placed = place(&registry, &req, |_| Money(1), |_| true).unwrap();
    assert_eq!((placed.host_id.as_str(), placed.cpu_cores, placed.memory_gib), ("h-c", 128, 360));
    let req = request(&["5090"], 8, (100, 200), (224, 1024));
    let placed = place(&registry, &req, |_| Money(1), |_| true).unwrap();
    assert_eq!((placed.host_id.as_str(), placed.cpu_cores, placed.memory_gib), ("h-a", 128, 720));
}

#[test]
fn best_fit_prefers_the_host_left_fullest_then_the_cheaper() {
    let mut registry = seed_004();
    let a = registry.get_mut(&HostId::from("h-a")).unwrap();
    for slot in a.units.iter_mut().take(6) {
        slot.instance = Some("i-x".into());
    }
    let req = request(&ALL, 1, (0, 1000), (0, 10_000));
    assert_eq!(place(&registry, &req, |_| Money(1), |_| true).unwrap().host_id.as_str(), "h-a");
    let fresh = seed_004();
    let cheapest_b = |m: &str| {
        if m.contains("4090") { Money(1) } else { Money(5) }
    };
    assert_eq!(place(&fresh, &req, cheapest_b, |_| true).unwrap().host_id.as_str(), "h-b");
}

#[test]
fn full_hosts_mean_wait_not_never() {
    let mut registry = seed_004();
    for host in registry.iter_mut() {
        for slot in &mut host.units {
            slot.instance = Some("i-x".into());
        }
    }
    let req = request(&["5090"], 1, (0, 1000), (0, 10_000));
    assert!(matches!(place(&registry, &req, |_| Money(1), |_| true), Err(NoFit::Wait(_))));
    let too_many = request(&["5090"], 9, (0, 10_000), (0, 100_000));
    assert!(matches!(place(&registry, &too_many, |_| Money(1), |_| true), Err(NoFit::Never(_))));
}

#[test]
fn unhealthy_and_disconnected_hosts_take_nothing() {
    let mut registry = seed_004();
    let req = request(&["5090"], 8, (0, 1000), (0, 10_000));
    registry.get_mut(&HostId::from("h-a")).unwrap().units[0].unit.gpu.healthy = false;
    assert!(matches!(place(&registry, &req, |_| Money(1), |_| true), Err(NoFit::Never(_))));
    let mut registry = seed_004();
    registry.get_mut(&HostId::from("h-a")).unwrap().disconnect().unwrap();
    assert!(matches!(place(&registry, &req, |_| Money(1), |_| true), Err(NoFit::Wait(_))));
}
