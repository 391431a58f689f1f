//! Where a request fits (docs/contracts.md#placement, seed 004). A host matches when it has k free
//! healthy units of one accepted model and k shares of cores and memory fall in the requested
//! ranges, and it runs the request's kind of guest (a container for an `image`,
//! docs/contracts.md#guests). Among matches the best fit wins: fewest free units left, then the
//! lowest list price, then the host id, so the choice is deterministic.
//!
//! The registry's index (see [`super::registry::index`]) makes this cost a few lookups per
//! class of interchangeable hosts rather than a walk over every host; only hosts that mix
//! GPU models are examined one by one, with [`fit_on_host`].

use super::guest::{host_runs, required_runtime, runtime_phrase};
use super::model::InstanceRequest;
use super::registry::{Host, HostState, Registry};
use gpuspot_common::{HostId, Money};
pub use models::ModelFilter;

pub mod models;

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

fn fit_on_host(
    host: &Host,
    request: &InstanceRequest,
    filter: &ModelFilter,
    allowed: &impl Fn(&str) -> bool,
) -> HostFit {
    if !host_runs(host, request) {
        return HostFit::Never;
    }
    fit_units(host, request, filter, allowed)
}

/// Whether the host's units and shares suit the request, whatever its runtimes.
fn fit_units(
    host: &Host,
    request: &InstanceRequest,
    filter: &ModelFilter,
    allowed: &impl Fn(&str) -> bool,
) -> HostFit {
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
    for wanted in 0..filter.len() {
        let of_model = |free_only: bool| {
            host.units
                .iter()
                .enumerate()
                .filter(move |(_, s)| {
                    filter.names(wanted, &s.unit.gpu.model) && allowed(&s.unit.gpu.model)
                })
                .filter(move |(_, s)| if free_only { s.is_free() } else { s.unit.gpu.healthy })
        };
        if of_model(false).count() < k {
            continue;
        }
        any_model_could = true;
        if !host.takes_placements() {
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
fn candidates(
    registry: &Registry,
    request: &InstanceRequest,
    filter: &ModelFilter,
) -> (Vec<Candidate>, Vec<HostId>) {
    let k = request.gpu.count as usize;
    let runtime = required_runtime(request);
    let index = registry.index();
    let classes = index
        .classes()
        .filter(|(shape, _)| filter.any(&shape.model))
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
struct Mixed<'a> {
    registry: &'a Registry,
    ids: &'a [HostId],
    request: &'a InstanceRequest,
    filter: &'a ModelFilter,
}

impl Mixed<'_> {
    fn consider(
        &self,
        price_of: &impl Fn(&str) -> Money,
        allowed: &impl Fn(&str) -> bool,
        best: &mut Option<Best>,
        outlook: &mut Outlook,
    ) {
        let (request, filter) = (self.request, self.filter);
        let mixed = self.ids.iter().filter_map(|id| self.registry.get(id));
        for host in mixed.filter(|h| h.state() != HostState::Lost) {
            if !host_runs(host, request) {
                let fit = fit_units(host, request, filter, allowed);
                outlook.wrong_runtime |= !matches!(fit, HostFit::Never);
                continue;
            }
            match fit_on_host(host, request, filter, allowed) {
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
    let filter = ModelFilter::new(&request.gpu);
    let (classes, irregular) =
        if k == 0 { Default::default() } else { candidates(registry, request, &filter) };
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
    let mixed = Mixed { registry, ids: &irregular, request, filter: &filter };
    mixed.consider(&price_of, &allowed, &mut best, &mut outlook);
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
            "no host with a matching GPU {}: {}",
            runtime_phrase(required_runtime(request)),
            describe(request)
        ))),
        None => Err(NoFit::Never(format!("no known host can satisfy {}", describe(request)))),
    }
}

#[cfg(test)]
mod equivalence;
#[cfg(test)]
mod runtimes;

#[cfg(test)]
mod tests;
