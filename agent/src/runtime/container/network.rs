//! A network of its own for each container (docs/contracts.md#limits): a bridge network named like
//! the container, created just before it and removed just after it, labelled with its instance and
//! agent so that a restarted agent sweeps the ones it no longer needs. Its bridge is named
//! `gpuspot<hash>`, which is what the host's rules (see [`super::firewall`]) match: nothing reaches
//! a container's network but its published ports.
//!
//! Networks are isolated from each other by the engine itself: Podman's Docker API makes
//! every network it creates `isolate` (netavark drops traffic between such bridges, and
//! Docker does the same between its bridges). The price: a container cannot reach another
//! container's published port through an address of the same host; it can through the
//! gateway, or from anywhere else.

use super::images::engine_message;
use super::spec;
use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::ListNetworksOptions;
use gpuspot_common::InstanceId;
use std::collections::HashMap;

/// Bridges of containers' networks start with this (an interface name has at most 15
/// bytes: the prefix and 8 hex digits).
pub const BRIDGE_PREFIX: &str = "gpuspot";

pub use spec::network_name;

/// `gpuspot` and 8 hex digits of the instance id's FNV-1a hash: unique among the few
/// networks a host has at once, and stable for one instance.
fn bridge_name(id: &InstanceId) -> String {
    let hash = id
        .as_str()
        .bytes()
        .fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    format!("{BRIDGE_PREFIX}{hash:08x}")
}

fn create_request(id: &InstanceId, agent: &str) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: network_name(id),
        driver: Some("bridge".to_owned()),
        options: Some(HashMap::from([(
            "com.docker.network.bridge.name".to_owned(),
            bridge_name(id),
        )])),
        labels: Some(HashMap::from([
            (spec::LABEL_INSTANCE.to_owned(), id.to_string()),
            (spec::LABEL_AGENT.to_owned(), agent.to_owned()),
        ])),
        ..Default::default()
    }
}

/// Creates the instance's network; one of the same name left by an earlier run of this
/// instance is replaced. The error is for the instance's failure message.
pub async fn create(docker: &Docker, id: &InstanceId, agent: &str) -> Result<String, String> {
    let name = network_name(id);
    let request = create_request(id, agent);
    let created = match docker.create_network(request.clone()).await {
        Err(EngineError::DockerResponseServerError { status_code: 409, .. }) => {
            remove(docker, &name).await;
            docker.create_network(request).await
        }
        created => created,
    };
    created
        .map(|_| name.clone())
        .map_err(|e| format!("cannot create network {name}: {}", engine_message(&e)))
}

/// Removes a network (a missing one is fine: removal is repeated after restarts).
pub async fn remove(docker: &Docker, name: &str) {
    match docker.remove_network(name).await {
        Ok(()) | Err(EngineError::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(error) => {
            tracing::warn!(network = name, error = %engine_message(&error), "cannot remove network")
        }
    }
}

/// The names of the networks labelled with `agent` and the instances they were made for.
pub async fn ours(
    docker: &Docker,
    agent: &str,
) -> Result<Vec<(String, Option<InstanceId>)>, EngineError> {
    let filter = format!("{}={agent}", spec::LABEL_AGENT);
    let options =
        ListNetworksOptions { filters: Some(HashMap::from([("label".to_owned(), vec![filter])])) };
    let listed = docker.list_networks(Some(options)).await?;
    Ok(listed
        .into_iter()
        .filter_map(|network| {
            let labels = network.labels.unwrap_or_default();
            // Checked here too: an engine that ignored the filter must not cost another
            // agent its networks.
            if labels.get(spec::LABEL_AGENT).map(String::as_str) != Some(agent) {
                return None;
            }
            let instance = labels.get(spec::LABEL_INSTANCE).map(|i| InstanceId::from(i.as_str()));
            Some((network.name?, instance))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridges_fit_an_interface_name_and_differ_per_instance() {
        let a = bridge_name(&InstanceId::from("i-0123456789abcdef0123456789"));
        let b = bridge_name(&InstanceId::from("i-0123456789abcdef0123456788"));
        assert!(a.len() <= 15 && a.starts_with(BRIDGE_PREFIX), "{a}");
        assert_ne!(a, b);
        let request = create_request(&InstanceId::from("i-1"), "/state");
        assert_eq!(request.name, "gpuspot-i-1");
        assert_eq!(request.labels.unwrap()[spec::LABEL_AGENT], "/state");
    }
}
