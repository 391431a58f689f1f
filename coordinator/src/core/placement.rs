//! Where a request fits (DESIGN §3, seed 004). A host matches when it has k free healthy
//! units of one accepted model and k shares of cores and memory fall in the requested
//! ranges, and it runs the request's kind of guest (a container for an `image`, DESIGN
//! §14). Among matches the best fit wins: fewest free units left, then the lowest list
//! price, then the host id, so the choice is deterministic.
//!
//! The registry's index (see [`super::registry::index`]) makes this cost a few lookups per
//! class of interchangeable hosts rather than a walk over every host; only hosts that mix
//! GPU models are examined one by one, with [`fit_on_host`].

use super::guest::{host_runs, required_runtime, runtime_phrase};
use super::model::InstanceRequest;
use super::registry::{Host, HostState, Registry};
use gpuspot_common::inventory::model_matches;
use gpuspot_common::{HostId, Money};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub host_id: HostId,
    pub unit_indices: Vec<usize>,
    pub gpu_model: String,
    pub cpu_cores: u32,
    pub memory_gib: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoFit {
    /// Some known host could take it once units free up or it reconnects.
    Wait(String),
    /// No known host could ever take it as asked.
    Never(String),
}

impl NoFit {
    pub fn reason(&self) -> &str {
        match self {
            NoFit::Wait(r) | NoFit::Never(r) => r,
        }
    }
}

enum HostFit {
    Fits(Placement),
    Busy,
    Never,
}

pub fn describe(request: &InstanceRequest) -> String {
    let range = |r: &super::model::Range, unit: &str| match (r.min, r.max) {
        (None, None) => None,
        (min, max) => Some(format!(
            "{}-{} {unit}",
            min.map_or("0".into(), |v| v.to_string()),
            max.map_or("any".into(), |v| v.to_string())
        )),
    };
    let mut parts = vec![format!("{} x [{}]", request.gpu.count, request.gpu.models.join(", "))];
    parts.extend(range(&request.cpu_cores, "cores"));
    parts.extend(range(&request.memory_gib, "GiB"));
    parts.join(", ")
}

fn fit_on_host(host: &Host, request: &InstanceRequest, allowed: &impl Fn(&str) -> bool) -> HostFit {
    if !host_runs(host, request) {
        return HostFit::Never;
    }
    fit_units(host, request, allowed)
}

/// Whether the host's units and shares suit the request, whatever its runtimes.
fn fit_units(host: &Host, request: &InstanceRequest, allowed: &impl Fn(&str) -> bool) -> HostFit {
    let k = request.gpu.count as usize;
    let Some(first) = host.units.first() else {
        return HostFit::Never;
    };
    let cores = first.unit.cpu_cores * request.gpu.count;
    let memory = first.unit.memory_gib * request.gpu.count as u64;
    if !request.cpu_cores.contains(cores as u64) || !request.memory_gib.contains(memory) {
        return HostFit::Never;
    }
    let mut any_model_could = false;
    for wanted in &request.gpu.models {
        let of_model = |free_only: bool| {
            host.units
                .iter()
                .enumerate()
                .filter(move |(_, s)| {
                    model_matches(wanted, &s.unit.gpu.model) && allowed(&s.unit.gpu.model)
                })
                .filter(move |(_, s)| if free_only { s.is_free() } else { s.unit.gpu.healthy })
        };
        if of_model(false).count() < k {
            continue;
        }
        any_model_could = true;
        if host.state != HostState::Connected {
            continue;
        }
        let free: Vec<(usize, _)> = of_model(true).take(k).collect();
        if free.len() == k {
            return HostFit::Fits(Placement {
                host_id: host.id.clone(),
                gpu_model: free[0].1.unit.gpu.model.clone(),
                unit_indices: free.into_iter().map(|(i, _)| i).collect(),
                cpu_cores: cores,
                memory_gib: memory,
            });
        }
    }
    if any_model_could { HostFit::Busy } else { HostFit::Never }
}

/// A class of hosts that could take the request, found under the index lock.
struct Candidate {
    model: String,
    /// Its hosts run the request's kind of guest.
    runs: bool,
    /// Its best-fitting connected host with enough free units: (free units, id).
    best: Option<(usize, HostId)>,
}

/// Reads the index: the classes whose model and shares suit `request` and that have a
/// host with enough healthy units, plus the hosts that mix models (examined one by one).
fn candidates(registry: &Registry, request: &InstanceRequest) -> (Vec<Candidate>, Vec<HostId>) {
    let k = request.gpu.count as usize;
    let wanted: Vec<String> = request
        .gpu
        .models
        .iter()
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    let runtime = required_runtime(request);
    let index = registry.index();
    let classes = index
        .classes()
        .filter(|(_, class)| wanted.iter().any(|w| class.lower_model.contains(w.as_str())))
        .filter(|(shape, _)| {
            let cores = shape.cpu_cores * request.gpu.count;
            let memory = shape.memory_gib * request.gpu.count as u64;
            request.cpu_cores.contains(cores as u64) && request.memory_gib.contains(memory)
        })
        .filter(|(_, class)| class.most_healthy() >= k)
        .map(|(shape, class)| Candidate {
            model: shape.model.clone(),
            runs: shape.runtimes.contains(&runtime),
            best: class.best_fit(k).cloned(),
        })
        .collect();
    (classes, index.irregular().iter().cloned().collect())
}

/// The host's first `k` free units of its (single) model, as a placement.
fn take_units(host: &Host, request: &InstanceRequest, model: &str) -> Option<Placement> {
    let k = request.gpu.count as usize;
    let first = host.units.first()?;
    let unit_indices: Vec<usize> = host
        .units
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_free() && s.unit.gpu.model == model)
        .map(|(i, _)| i)
        .take(k)
        .collect();
    (unit_indices.len() == k).then(|| Placement {
        host_id: host.id.clone(),
        unit_indices,
        gpu_model: model.to_owned(),
        cpu_cores: first.unit.cpu_cores * request.gpu.count,
        memory_gib: first.unit.memory_gib * request.gpu.count as u64,
    })
}

/// The best fit so far: its key (free units left, price, host id), and its placement, or
/// the model of the class host whose units are only taken once it has won.
struct Best {
    key: (usize, Money, HostId),
    placement: Option<Placement>,
    model: String,
}

fn offer(best: &mut Option<Best>, candidate: Best) {
    if best.as_ref().is_none_or(|b| candidate.key < b.key) {
        *best = Some(candidate);
    }
}

/// What the examined hosts say beyond the best fit.
#[derive(Default)]
struct Outlook {
    /// A host that runs the request could take it once units free up.
    could_wait: bool,
    /// A host would suit it but does not run its kind of guest.
    wrong_runtime: bool,
}

/// Hosts that mix GPU models, examined one by one.
fn consider_mixed(
    registry: &Registry,
    ids: &[HostId],
    request: &InstanceRequest,
    price_of: &impl Fn(&str) -> Money,
    allowed: &impl Fn(&str) -> bool,
    best: &mut Option<Best>,
    outlook: &mut Outlook,
) {
    let mixed = ids.iter().filter_map(|id| registry.get(id));
    for host in mixed.filter(|h| h.state != HostState::Lost) {
        if !host_runs(host, request) {
            outlook.wrong_runtime |= !matches!(fit_units(host, request, allowed), HostFit::Never);
            continue;
        }
        match fit_on_host(host, request, allowed) {
            HostFit::Fits(placement) => {
                let left = host.free_units() - placement.unit_indices.len();
                let key = (left, price_of(&placement.gpu_model), host.id.clone());
                offer(best, Best { key, placement: Some(placement), model: String::new() });
            }
            HostFit::Busy => outlook.could_wait = true,
            HostFit::Never => {}
        }
    }
}

/// The best host for `request`, or why there is none. `price_of` gives a GPU model's
/// price for the tie-break; only GPU models `allowed` accepts are considered (a spot bid
/// below a pool's market price excludes that pool).
pub fn place(
    registry: &Registry,
    request: &InstanceRequest,
    price_of: impl Fn(&str) -> Money,
    allowed: impl Fn(&str) -> bool,
) -> Result<Placement, NoFit> {
    let k = request.gpu.count as usize;
    let (classes, irregular) =
        if k == 0 { Default::default() } else { candidates(registry, request) };
    let mut best = None;
    let mut outlook = Outlook::default();
    for candidate in classes.into_iter().filter(|c| allowed(&c.model)) {
        if !candidate.runs {
            outlook.wrong_runtime = true;
            continue;
        }
        outlook.could_wait = true;
        if let Some((free, host_id)) = candidate.best {
            let key = (free - k, price_of(&candidate.model), host_id);
            offer(&mut best, Best { key, placement: None, model: candidate.model });
        }
    }
    consider_mixed(registry, &irregular, request, &price_of, &allowed, &mut best, &mut outlook);
    let placed = best.and_then(|b| {
        b.placement.or_else(|| take_units(registry.get(&b.key.2)?, request, &b.model))
    });
    match placed {
        Some(placement) => Ok(placement),
        None if outlook.could_wait => Err(NoFit::Wait(format!(
            "waiting for capacity: no matching host has free units for {}",
            describe(request)
        ))),
        None if outlook.wrong_runtime => Err(NoFit::Never(format!(
            "no host with a matching GPU {}: {} (waiting for one that does to join)",
            runtime_phrase(required_runtime(request)),
            describe(request)
        ))),
        None => Err(NoFit::Never(format!(
            "no known host can satisfy {} (waiting for one to join)",
            describe(request)
        ))),
    }
}

#[cfg(test)]
mod equivalence;
#[cfg(test)]
mod runtimes;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Billing, GpuRequest, Range, SnapshotOptions};
    use chrono::Utc;
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
            registry.insert(Host::new(HostId::from(id), &inv, "test", Utc::now()));
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
        assert_eq!(
            (placed.host_id.as_str(), placed.cpu_cores, placed.memory_gib),
            ("h-c", 128, 360)
        );
        let req = request(&["5090"], 8, (100, 200), (224, 1024));
        let placed = place(&registry, &req, |_| Money(1), |_| true).unwrap();
        assert_eq!(
            (placed.host_id.as_str(), placed.cpu_cores, placed.memory_gib),
            ("h-a", 128, 720)
        );
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
        assert!(matches!(
            place(&registry, &too_many, |_| Money(1), |_| true),
            Err(NoFit::Never(_))
        ));
    }

    #[test]
    fn unhealthy_and_disconnected_hosts_take_nothing() {
        let mut registry = seed_004();
        let req = request(&["5090"], 8, (0, 1000), (0, 10_000));
        registry.get_mut(&HostId::from("h-a")).unwrap().units[0].unit.gpu.healthy = false;
        assert!(matches!(place(&registry, &req, |_| Money(1), |_| true), Err(NoFit::Never(_))));
        let mut registry = seed_004();
        registry.get_mut(&HostId::from("h-a")).unwrap().state = HostState::Disconnected;
        assert!(matches!(place(&registry, &req, |_| Money(1), |_| true), Err(NoFit::Wait(_))));
    }
}
