//! Where a deployment's replicas are reached (docs/contracts.md#serving): the host ports of an
//! assignment (drawn at placement, see [`super::ports`]), the readiness verdicts agents report,
//! each replica as an endpoint (address, ready, draining), and the table the gateway routes by. A
//! replica takes traffic while it is ready, not draining and its host is connected; a noticed one
//! drains once a replacement is ready or its drain margin came ([`super::rotation`]).

use super::cluster::Cluster;
use super::instance::Instance;
use super::model::InstanceState;
use super::registry::HostState;
use super::rotation::{self, Replica, Stage};
use gpuspot_common::protocol::PortMapping;
use gpuspot_common::{AccountId, DeploymentId, HostId, InstanceId};

/// One replica as `GET /v1/deployments/{id}/endpoints` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    pub instance_id: InstanceId,
    pub host_id: Option<HostId>,
    /// `HOST:PORT` of its first port.
    pub address: Option<String>,
    pub ready: bool,
    pub draining: bool,
}

/// What the gateway knows of one deployment: where its ready, non-draining replicas are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub deployment_id: DeploymentId,
    pub name: String,
    pub account_id: AccountId,
    /// (replica, `HOST:PORT`)
    pub backends: Vec<(InstanceId, String)>,
}

impl Cluster {
    /// The assignment's ports: host ports paired with the container's own, in order.
    pub(super) fn port_mappings(instance: &Instance) -> Vec<PortMapping> {
        let host_ports = instance.placement().map(|p| p.host_ports.as_slice()).unwrap_or(&[]);
        match instance.request.image {
            Some(_) => host_ports
                .iter()
                .zip(&instance.request.ports)
                .map(|(&host, &guest)| PortMapping { host, guest: Some(guest) })
                .collect(),
            None => host_ports.iter().map(|&host| PortMapping { host, guest: None }).collect(),
        }
    }

    /// An agent's readiness verdict for one of its instances.
    pub fn set_readiness(&mut self, host_id: &HostId, id: &InstanceId, ready: bool) {
        let on_host = self.instances.get(id).is_some_and(|i| i.host_id() == Some(host_id));
        if on_host && self.readiness.insert(id.clone(), ready) != Some(ready) {
            self.routes_changed = true;
        }
    }

    /// Whether any endpoint may have changed since the last call.
    pub fn take_routes_changed(&mut self) -> bool {
        std::mem::take(&mut self.routes_changed)
    }

    /// Running and draining replicas of a deployment, oldest first.
    pub fn endpoints(&self, id: &DeploymentId) -> Vec<(&Instance, EndpointInfo)> {
        let mut list: Vec<&Instance> = self
            .deployment_instances(id)
            .into_iter()
            .filter(|i| {
                matches!(
                    i.state(),
                    InstanceState::Running
                        | InstanceState::TerminationScheduled
                        | InstanceState::Stopping
                )
            })
            .collect();
        list.sort_by_key(|i| i.seq);
        let mut endpoints: Vec<EndpointInfo> = list.iter().map(|i| self.endpoint(i)).collect();
        let replicas: Vec<Replica> = list
            .iter()
            .zip(&endpoints)
            .map(|(i, e)| Replica { stage: self.stage(i), ready: e.ready })
            .collect();
        let wanted = self.deployments.get(id).filter(|d| !d.state().is_final());
        let wanted = wanted.map_or(0, |d| d.wanted_active() as usize);
        for (e, draining) in endpoints.iter_mut().zip(rotation::draining(&replicas, wanted)) {
            e.draining = draining;
        }
        list.into_iter().zip(endpoints).collect()
    }

    /// Where a replica is in its life for the rotation: a notice past its drain margin
    /// counts as stopping.
    fn stage(&self, instance: &Instance) -> Stage {
        match instance.lifecycle().notice() {
            Some(n) if self.drain_margin.passed(n.at) => Stage::Stopping,
            Some(n) => Stage::Noticed { deadline: n.at },
            None if instance.state() == InstanceState::Running => Stage::InService,
            None => Stage::Stopping,
        }
    }

    /// The endpoint, draining or not as [`Cluster::endpoints`] decides.
    fn endpoint(&self, instance: &Instance) -> EndpointInfo {
        let host = instance.host_id().and_then(|h| self.registry.get(h));
        let address = host
            .zip(instance.placement().and_then(|p| p.host_ports.first()))
            .map(|(host, port)| format!("{}:{port}", host.network.address));
        let connected = host.is_some_and(|h| h.state() == HostState::Connected);
        let probed = instance.request.readiness.is_some();
        let verdict = self.readiness.get(&instance.id).copied();
        // A notice can come before the workload ran (an overdue account): nothing serves.
        let running = matches!(
            instance.state(),
            InstanceState::Running | InstanceState::TerminationScheduled
        ) && instance.started_at().is_some();
        EndpointInfo {
            instance_id: instance.id.clone(),
            host_id: instance.host_id().cloned(),
            ready: running && connected && address.is_some() && (!probed || verdict == Some(true)),
            address,
            draining: true,
        }
    }

    /// Every live replica set's route, for the gateway.
    pub fn routes(&self) -> Vec<Route> {
        let mut live: Vec<_> = self.deployments.live().collect();
        live.sort_by(|a, b| (a.created_at, &a.id.0).cmp(&(b.created_at, &b.id.0)));
        live.into_iter()
            .map(|d| Route {
                deployment_id: d.id.clone(),
                name: d.name.clone(),
                account_id: d.account_id.clone(),
                backends: self
                    .endpoints(&d.id)
                    .into_iter()
                    .filter(|(_, e)| e.ready && !e.draining)
                    .filter_map(|(_, e)| Some((e.instance_id, e.address?)))
                    .collect(),
            })
            .collect()
    }
}
