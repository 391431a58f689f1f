//! The gateway's routing table: per deployment (by id, and by name for the oldest live
//! deployment of that name in any case: first come, first named, so a later one, perhaps another
//! tenant's, cannot take over a name that is in use), the ready, non-draining replicas with their outstanding requests. A new table
//! from the cluster replaces the old at once; counters of replicas and deployments that
//! stay carry over, so the least-outstanding choice and the request rate see no jump.

use crate::core::routes::Route;
use gpuspot_common::{DeploymentId, InstanceId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub struct Backend {
    pub instance_id: InstanceId,
    pub address: String,
    pub outstanding: Arc<AtomicUsize>,
}

pub struct RouteState {
    pub deployment_id: DeploymentId,
    pub backends: Vec<Backend>,
    /// Requests ever received for this deployment (rates are taken from differences).
    pub requests: Arc<AtomicU64>,
    /// Where the next scan for the least loaded replica starts, so ties rotate.
    next: AtomicUsize,
}

impl RouteState {
    /// The replica with the fewest requests in flight, skipping `tried`.
    pub fn pick(&self, tried: &BTreeSet<usize>) -> Option<(usize, &Backend)> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !tried.contains(i))
            .min_by_key(|&i| self.backends[i].outstanding.load(Ordering::Relaxed))
            .map(|i| (i, &self.backends[i]))
    }
}

#[derive(Default)]
pub struct Table {
    by_id: HashMap<String, Arc<RouteState>>,
    /// By name in ASCII lowercase: `/d/BobWeb/` is `/d/bobweb/` (the cluster keeps live
    /// names unique whatever their case).
    by_name: HashMap<String, Arc<RouteState>>,
}

impl Table {
    /// Deployment `key`: its id, else its unique name in any case.
    pub fn get(&self, key: &str) -> Option<Arc<RouteState>> {
        self.by_id.get(key).or_else(|| self.by_name.get(&key.to_ascii_lowercase())).cloned()
    }

    /// The table for `routes` (oldest first), keeping `previous`'s counters where they still
    /// apply. Ids are claimed before names, so no name can shadow another deployment's id.
    pub fn build(routes: Vec<Route>, previous: &Table) -> Table {
        let mut old_requests = HashMap::new();
        let mut old_outstanding = HashMap::new();
        for state in previous.by_id.values() {
            old_requests.insert(state.deployment_id.clone(), state.requests.clone());
            for b in &state.backends {
                old_outstanding.insert(b.instance_id.clone(), b.outstanding.clone());
            }
        }
        let mut by_id = HashMap::new();
        let mut by_name = HashMap::new();
        for route in routes {
            let backends = route
                .backends
                .into_iter()
                .map(|(instance_id, address)| Backend {
                    outstanding: old_outstanding.get(&instance_id).cloned().unwrap_or_default(),
                    instance_id,
                    address,
                })
                .collect();
            let state = Arc::new(RouteState {
                requests: old_requests.get(&route.deployment_id).cloned().unwrap_or_default(),
                deployment_id: route.deployment_id.clone(),
                backends,
                next: AtomicUsize::new(0),
            });
            by_name.entry(route.name.to_ascii_lowercase()).or_insert(state.clone());
            by_id.insert(route.deployment_id.0, state);
        }
        Table { by_id, by_name }
    }

    /// Requests received so far, per deployment.
    pub fn request_counts(&self) -> HashMap<DeploymentId, u64> {
        self.by_id
            .values()
            .map(|s| (s.deployment_id.clone(), s.requests.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuspot_common::AccountId;

    fn route(id: &str, name: &str, replicas: &[&str]) -> Route {
        Route {
            deployment_id: DeploymentId(id.into()),
            name: name.into(),
            account_id: AccountId("a".into()),
            backends: replicas
                .iter()
                .map(|r| (InstanceId((*r).into()), format!("127.0.0.1:{}", r.len())))
                .collect(),
        }
    }

    #[test]
    fn the_least_loaded_replica_is_picked_and_ties_rotate() {
        let table = Table::build(vec![route("d-1", "svc", &["a", "b", "c"])], &Table::default());
        let state = table.get("svc").expect("by name");
        state.backends[0].outstanding.store(5, Ordering::Relaxed);
        state.backends[2].outstanding.store(1, Ordering::Relaxed);
        assert_eq!(state.pick(&BTreeSet::new()).unwrap().1.instance_id.0, "b");
        let tried = BTreeSet::from([1]);
        assert_eq!(state.pick(&tried).unwrap().1.instance_id.0, "c");
        state.backends[0].outstanding.store(0, Ordering::Relaxed);
        state.backends[2].outstanding.store(0, Ordering::Relaxed);
        let picks: BTreeSet<String> =
            (0..3).map(|_| state.pick(&BTreeSet::new()).unwrap().1.instance_id.0.clone()).collect();
        assert_eq!(picks.len(), 3, "ties rotate over every replica");
        assert!(state.pick(&BTreeSet::from([0, 1, 2])).is_none());
    }

    #[test]
    fn counters_carry_over_and_the_first_deployment_of_a_name_keeps_it() {
        let first = Table::build(vec![route("d-1", "svc", &["a", "b"])], &Table::default());
        let state = first.get("d-1").unwrap();
        state.requests.store(7, Ordering::Relaxed);
        state.backends[1].outstanding.store(3, Ordering::Relaxed);
        let routes = vec![route("d-1", "svc", &["b", "c"]), route("d-2", "svc", &[])];
        let second = Table::build(routes, &first);
        let by_name = second.get("svc").expect("svc");
        assert_eq!(by_name.deployment_id.0, "d-1", "the older deployment keeps the name");
        assert_eq!(second.get("d-2").unwrap().deployment_id.0, "d-2", "the newer by id");
        let state = second.get("d-1").unwrap();
        assert_eq!(state.backends[0].outstanding.load(Ordering::Relaxed), 3);
        assert_eq!(second.request_counts()[&DeploymentId("d-1".into())], 7);
    }

    #[test]
    fn a_name_is_found_whatever_its_case() {
        let table = Table::build(vec![route("d-1", "BobWeb", &["a"])], &Table::default());
        for key in ["bobweb", "BOBWEB", "BobWeb", "d-1"] {
            assert_eq!(table.get(key).expect(key).deployment_id.0, "d-1", "{key}");
        }
        assert!(table.get("bobweb.").is_none() && table.get("D-1").is_none());
    }

    #[test]
    fn a_name_cannot_shadow_another_deployments_id() {
        let routes = vec![route("d-1", "d-2", &["a"]), route("d-2", "svc", &["b"])];
        let table = Table::build(routes, &Table::default());
        assert_eq!(table.get("d-2").unwrap().deployment_id.0, "d-2");
    }
}
