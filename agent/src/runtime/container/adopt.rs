//! Taking over the containers an earlier agent process on this host left (docs/contracts.md#guests
//! "Agent restarts"): every container labelled with this agent is supervised again, the
//! running ones from where their log left off, those that ended meanwhile only to report
//! how. Containers of ours that never started, or whose labels are incomplete, are
//! leftovers the coordinator cannot want: they are removed, with their networks, and so
//! are networks of ours that no container needs.

use super::engine::block_on_side;
use super::images::engine_message;
use super::{Inner, network, spec, supervise};
use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptions;
use gpuspot_common::InstanceId;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// A container of ours worth adopting.
struct Found {
    instance_id: InstanceId,
    name: String,
    log: PathBuf,
}

/// Adopts this agent's containers; the ids now supervised.
pub(super) fn adopt(inner: &Arc<Inner>) -> Vec<InstanceId> {
    let docker = inner.engine.docker.clone();
    let agent = inner.options.agent.clone();
    let listed = block_on_side(async move { ours(&docker, &agent).await });
    let summaries = match listed {
        Ok(summaries) => summaries,
        Err(error) => {
            tracing::warn!(url = %inner.engine.url, error = %engine_message(&error),
                "cannot list containers to adopt");
            return Vec::new();
        }
    };
    let (found, leftovers) = sort(summaries);
    sweep_networks(inner, &found, &leftovers);
    for (name, instance) in leftovers {
        tracing::warn!(container = %name, "removing a container this agent left unstarted");
        let docker = inner.engine.docker.clone();
        inner.tokio.spawn(async move {
            supervise::remove(&docker, &name).await;
            if let Some(id) = instance {
                network::remove(&docker, &network::network_name(&id)).await;
            }
        });
    }
    let mut adopted = Vec::new();
    for Found { instance_id, name, log } in found {
        let Some(stop) = inner.register(&instance_id) else { continue };
        tracing::info!(%instance_id, container = %name, "adopting container");
        let task = supervise::resume(inner.clone(), instance_id.clone(), name, log, stop);
        inner.tokio.spawn(task);
        adopted.push(instance_id);
    }
    adopted
}

/// Removes this agent's networks that no container needs any more (an agent that died
/// between creating a network and its container, or between removing them). Runs before
/// any start, so no network of a container being started now can be among them; those of
/// leftover containers go with their container.
fn sweep_networks(inner: &Inner, found: &[Found], leftovers: &[(String, Option<InstanceId>)]) {
    let docker = inner.engine.docker.clone();
    let agent = inner.options.agent.clone();
    let keep: HashSet<String> = found
        .iter()
        .map(|f| &f.instance_id)
        .chain(leftovers.iter().filter_map(|(_, id)| id.as_ref()))
        .map(network::network_name)
        .collect();
    let swept = block_on_side(async move {
        let mut swept = Vec::new();
        for (name, _) in network::ours(&docker, &agent).await? {
            if !keep.contains(&name) {
                network::remove(&docker, &name).await;
                swept.push(name);
            }
        }
        Ok::<_, bollard::errors::Error>(swept)
    });
    match swept {
        Ok(swept) if !swept.is_empty() => tracing::info!(?swept, "removed orphaned networks"),
        Ok(_) => {}
        Err(error) => tracing::warn!(error = %engine_message(&error), "cannot list networks"),
    }
}

/// Every container labelled with `agent`, whatever its state.
async fn ours(
    docker: &Docker,
    agent: &str,
) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
    let filter = format!("{}={agent}", spec::LABEL_AGENT);
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_owned(), vec![filter])])),
        ..Default::default()
    };
    let listed = docker.list_containers(Some(options)).await?;
    // The filter is the engine's; the label is checked here too, so that an engine that
    // ignored it cannot hand us another agent's containers.
    Ok(listed
        .into_iter()
        .filter(|c| {
            c.labels.as_ref().and_then(|l| l.get(spec::LABEL_AGENT)).map(String::as_str)
                == Some(agent)
        })
        .collect())
}

/// Containers to adopt, and those to remove (name, and instance when labelled).
fn sort(summaries: Vec<ContainerSummary>) -> (Vec<Found>, Vec<(String, Option<InstanceId>)>) {
    let mut found = Vec::new();
    let mut leftovers = Vec::new();
    for summary in summaries {
        let labels = summary.labels.clone().unwrap_or_default();
        let instance = labels.get(spec::LABEL_INSTANCE).map(|id| InstanceId::from(id.as_str()));
        let log = supervise::log_of(&labels);
        let started = !matches!(summary.state, Some(ContainerSummaryStateEnum::CREATED) | None);
        let name = name_of(&summary);
        match (instance, log, name) {
            (Some(instance_id), Some(log), Some(name)) if started => {
                found.push(Found { instance_id, name, log })
            }
            (instance, _, name) => leftovers.extend(name.map(|name| (name, instance))),
        }
    }
    (found, leftovers)
}

/// The container's name without the leading `/` (or its id).
fn name_of(summary: &ContainerSummary) -> Option<String> {
    let name = summary.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/'));
    name.map(str::to_owned).or_else(|| summary.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        name: &str,
        state: ContainerSummaryStateEnum,
        labels: &[(&str, &str)],
    ) -> ContainerSummary {
        ContainerSummary {
            names: Some(vec![format!("/{name}")]),
            state: Some(state),
            labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn started_and_fully_labelled_containers_are_adopted_the_rest_removed() {
        let full = [(spec::LABEL_INSTANCE, "i-1"), (spec::LABEL_LOG, "/s/i-1/output.log")];
        let (found, leftovers) = sort(vec![
            summary("gpuspot-i-1", ContainerSummaryStateEnum::RUNNING, &full),
            summary(
                "gpuspot-i-2",
                ContainerSummaryStateEnum::EXITED,
                &[(spec::LABEL_INSTANCE, "i-2"), (spec::LABEL_LOG, "/s/i-2/output.log")],
            ),
            summary("gpuspot-i-3", ContainerSummaryStateEnum::CREATED, &full),
            summary("odd", ContainerSummaryStateEnum::RUNNING, &[(spec::LABEL_INSTANCE, "i-4")]),
        ]);
        let ids: Vec<&str> = found.iter().map(|f| f.instance_id.as_str()).collect();
        assert_eq!(ids, vec!["i-1", "i-2"]);
        assert_eq!(found[0].log, PathBuf::from("/s/i-1/output.log"));
        let names: Vec<&str> = leftovers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, vec!["gpuspot-i-3", "odd"]);
        assert_eq!(leftovers[1].1, Some(InstanceId::from("i-4")));
    }
}
