//! One task per container, from its start (or adoption) to its single final event: pull,
//! create its network, create and start it; follow its output; wait for its end (told by
//! the agent's one events stream, `exits`, never a `wait` held per container) or stop it;
//! tell a plain exit from the OOM killer; remove it and its network.
//!
//! An engine that stops answering (restarted, say) is retried: the container keeps running
//! without the engine, and only its end or a stop from the coordinator ends supervision.

use super::ends::{self, RETRY, final_state, running, wait_for_end};
use super::images::engine_message;
use super::logs::{self, FollowError, Mark};
use super::oom::OomWatch;
use super::{Inner, RuntimeEvent, network, spec};
use crate::runtime::{RuntimeError, WorkloadSpec};
use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, RemoveContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use gpuspot_common::protocol::WorkloadState;
use gpuspot_common::{Failure, FailureKind, InstanceId};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the output may take to arrive after the container ended.
const OUTPUT_DRAIN: Duration = Duration::from_secs(10);

/// The data dir and the log's dir exist, private to the agent's user (docs/contracts.md#limits).
pub(super) fn prepare(spec: &WorkloadSpec) -> Result<(), RuntimeError> {
    let dirs = [Some(spec.data_dir.as_path()), spec.log_path.parent()];
    for dir in dirs.into_iter().flatten() {
        crate::config::create_private_dir(dir)
            .map_err(|source| RuntimeError::Prepare { path: dir.to_owned(), source })?;
    }
    Ok(())
}

/// A started workload: launch, then follow to its end.
pub(super) async fn run(
    inner: Arc<Inner>,
    spec: WorkloadSpec,
    image: String,
    mut stop: oneshot::Receiver<Duration>,
) {
    let id = spec.instance_id.clone();
    let name = spec::container_name(&id);
    let launched = tokio::select! {
        launched = launch(&inner, &spec, &image, &name) => Some(launched),
        Ok(_) = &mut stop => None,
    };
    let state = match launched {
        None => WorkloadState::Stopped,
        Some(Err(failure)) => WorkloadState::Failed(failure),
        Some(Ok(())) => {
            tracing::info!(instance_id = %id, container = %name, image, "container started");
            // Only now does it run: the supervisor reports `running` on this, not at start().
            let _ = inner
                .events
                .send(RuntimeEvent { instance_id: id.clone(), state: WorkloadState::Running });
            follow(&inner, &name, spec.log_path, stop).await
        }
    };
    end(&inner, &id, &name, state).await;
}

/// An adopted container: follow it from where its log left off.
pub(super) async fn resume(
    inner: Arc<Inner>,
    id: InstanceId,
    name: String,
    log: PathBuf,
    stop: oneshot::Receiver<Duration>,
) {
    let state = follow(&inner, &name, log, stop).await;
    end(&inner, &id, &name, state).await;
}

async fn launch(
    inner: &Inner,
    spec: &WorkloadSpec,
    image: &str,
    name: &str,
) -> Result<(), Failure> {
    if let Some(refusal) = inner.gpus.refusal(&spec.gpu_uuids) {
        return Err(Failure::new(FailureKind::Start, refusal));
    }
    let pulled = inner.pulls.ensure(&inner.engine.docker, image).await;
    pulled.map_err(|e| Failure::new(FailureKind::ImagePull, e.to_string()))?;
    create_and_start(inner, spec, image, name)
        .await
        .map_err(|e| Failure::new(FailureKind::Start, e))
}

async fn create_and_start(
    inner: &Inner,
    spec: &WorkloadSpec,
    image: &str,
    name: &str,
) -> Result<(), String> {
    let docker = &inner.engine.docker;
    network::create(docker, &spec.instance_id, &inner.options.agent).await?;
    let options = &inner.options;
    let body = spec::create_body(spec, image, &options.agent, inner.gpus, options.log_max_bytes);
    let create = || {
        let options =
            CreateContainerOptions { name: Some(name.to_owned()), platform: String::new() };
        docker.create_container(Some(options), body.clone())
    };
    match create().await {
        Err(EngineError::DockerResponseServerError { status_code: 409, .. }) => {
            remove_stale(inner, name).await?;
            create().await.map(drop)
        }
        created => created.map(drop),
    }
    .map_err(|e| format!("cannot create container {name}: {}", engine_message(&e)))?;
    // A fresh container's output goes after whatever the log holds already.
    let marks = logs::mark_path(&spec.log_path);
    Mark::fresh(&spec.log_path)
        .save(&marks)
        .map_err(|e| format!("cannot write {}: {e}", marks.display()))?;
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .map_err(|e| format!("cannot start container {name}: {}", engine_message(&e)))
}

/// A container of the same name left by an earlier run of this instance (an agent that
/// died between create and start) is removed; anyone else's is not touched.
async fn remove_stale(inner: &Inner, name: &str) -> Result<(), String> {
    let info = inspect(&inner.engine.docker, name).await;
    let labels = info.ok().and_then(|i| i.config).and_then(|c| c.labels).unwrap_or_default();
    if labels.get(spec::LABEL_AGENT) != Some(&inner.options.agent) {
        return Err(format!("a container named {name} that this agent does not own exists"));
    }
    tracing::warn!(container = name, "removing a stale container of this instance");
    remove(&inner.engine.docker, name).await;
    Ok(())
}

/// Follows a started container to its end: its output into `log`, its exit or a stop.
async fn follow(
    inner: &Inner,
    name: &str,
    log: PathBuf,
    mut stop: oneshot::Receiver<Duration>,
) -> WorkloadState {
    let docker = inner.engine.docker.clone();
    let oom = pid_of(&docker, name).await.and_then(OomWatch::start);
    let output = tokio::spawn(follow_output(docker.clone(), name.to_owned(), log));
    let stopped = tokio::select! {
        () = wait_for_end(&inner.exits, &inner.engine.docker, name) => false,
        Ok(kill_timeout) = &mut stop => {
            stop_container(&docker, name, kill_timeout).await;
            wait_for_end(&inner.exits, &inner.engine.docker, name).await;
            true
        }
    };
    if tokio::time::timeout(OUTPUT_DRAIN, output).await.is_err() {
        tracing::warn!(container = name, "the container's last output did not arrive in time");
    }
    if stopped {
        return WorkloadState::Stopped;
    }
    final_state(&docker, name, oom.as_ref()).await
}

/// The host pid of the container's first process, while it runs.
async fn pid_of(docker: &Docker, name: &str) -> Option<u32> {
    let info = inspect(docker, name).await.ok()?;
    let pid = info.state?.pid?;
    u32::try_from(pid).ok().filter(|pid| *pid > 0)
}

/// Output into the log until the container has ended and its output is all written; a
/// stream the engine broke off is resumed from the log's mark.
async fn follow_output(docker: Docker, name: String, log: PathBuf) {
    loop {
        let result = logs::follow(&docker, &name, &log).await;
        match &result {
            Err(error @ FollowError::File(_)) => {
                tracing::warn!(container = %name, %error, log = %log.display(), "output lost");
                return;
            }
            Err(error) => tracing::warn!(container = %name, %error, "output stream broke off"),
            Ok(()) => {}
        }
        match running(&docker, &name).await {
            Some(false) if result.is_ok() => return,
            // Ended, but the last stream broke: one more pass reads what is left.
            Some(false) => {}
            _ => tokio::time::sleep(RETRY).await,
        }
    }
}

/// SIGTERM now, SIGKILL after `kill_timeout` (whole seconds, rounded up), as the engine's
/// stop does.
async fn stop_container(docker: &Docker, name: &str, kill_timeout: Duration) {
    let seconds = kill_timeout.as_millis().div_ceil(1000);
    let options =
        StopContainerOptions { signal: None, t: Some(i32::try_from(seconds).unwrap_or(i32::MAX)) };
    if let Err(error) = docker.stop_container(name, Some(options)).await {
        tracing::warn!(container = name, error = %engine_message(&error), "stop failed; killing");
        let _ = docker.kill_container(name, None::<KillContainerOptions>).await;
    }
}

/// Reports the end (a requested stop always ends as `Stopped`), then removes the container.
/// In that order: an agent that dies between the two finds the ended container at its next
/// start and reports it again (harmless), rather than never reporting it.
async fn end(inner: &Inner, id: &InstanceId, name: &str, state: WorkloadState) {
    let stop_requested = inner.workloads().remove(id).is_some_and(|c| c.stop.is_none());
    let state = if stop_requested { WorkloadState::Stopped } else { state };
    tracing::info!(instance_id = %id, container = name, ?state, "container ended");
    let _ = inner.events.send(RuntimeEvent { instance_id: id.clone(), state });
    remove(&inner.engine.docker, name).await;
    network::remove(&inner.engine.docker, &network::network_name(id)).await;
}

async fn inspect(docker: &Docker, name: &str) -> Result<ContainerInspectResponse, EngineError> {
    ends::Inspect::inspect(docker, name).await
}

/// Removes a container (killing it if it still runs) with its anonymous volumes.
pub(super) async fn remove(docker: &Docker, name: &str) {
    let options = RemoveContainerOptions { force: true, v: true, link: false };
    match docker.remove_container(name, Some(options)).await {
        Ok(()) | Err(EngineError::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(error) => {
            tracing::warn!(container = name, error = %engine_message(&error), "cannot remove container")
        }
    }
}

/// The log an adopted container's output goes to, from its label.
pub(super) fn log_of(labels: &std::collections::HashMap<String, String>) -> Option<PathBuf> {
    labels.get(spec::LABEL_LOG).map(PathBuf::from).filter(|p| p.is_absolute())
}
