//! How a container's end is followed and told: whether it still runs, waiting until it
//! does not (woken by the engine's events, see [`super::exits`]), and how it ended (its exit
//! code, or the OOM killer). Asks the engine only through [`Inspect`], so that tests give a
//! fake engine.

use super::exits::Exits;
use super::images::engine_message;
use super::oom::OomWatch;
use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::InspectContainerOptions;
use gpuspot_common::protocol::WorkloadState;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Pause before asking an engine that did not answer again.
pub(super) const RETRY: Duration = Duration::from_secs(1);

/// What following a container's end asks of the engine.
pub(super) trait Inspect: Sync {
    fn inspect(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<ContainerInspectResponse, EngineError>> + Send;
}

impl Inspect for Docker {
    async fn inspect(&self, name: &str) -> Result<ContainerInspectResponse, EngineError> {
        self.inspect_container(name, None::<InspectContainerOptions>).await
    }
}

/// Whether the container runs; None when the engine does not answer. A container that is
/// gone does not run.
pub(super) async fn running(engine: &impl Inspect, name: &str) -> Option<bool> {
    match engine.inspect(name).await {
        Ok(info) => Some(info.state.and_then(|s| s.running).unwrap_or(false)),
        Err(EngineError::DockerResponseServerError { status_code: 404, .. }) => Some(false),
        Err(_) => None,
    }
}

/// Returns once the container no longer runs: an inspect decides, at first and each time
/// the events stream says it may have ended (or, while the engine does not answer, after
/// [`RETRY`]).
pub(super) async fn wait_for_end(exits: &Arc<Exits>, engine: &impl Inspect, name: &str) {
    // Watched before the first inspect, so an end in between wakes the wait.
    let watch = exits.watch(name);
    loop {
        match running(engine, name).await {
            Some(false) => return,
            Some(true) => watch.woken().await,
            None => drop(tokio::time::timeout(RETRY, watch.woken()).await),
        }
    }
}

/// How an ended container ended: its exit code, or the OOM killer at its memory limit.
pub(super) async fn final_state(
    engine: &impl Inspect,
    name: &str,
    oom: Option<&OomWatch>,
) -> WorkloadState {
    let info = match engine.inspect(name).await {
        Ok(info) => info,
        Err(error) => {
            let message = format!("lost track of container {name}: {}", engine_message(&error));
            return WorkloadState::Failed { message };
        }
    };
    let code = info.state.as_ref().and_then(|s| s.exit_code).and_then(|c| i32::try_from(c).ok());
    // A command that survives the loss of one of its processes and exits 0 succeeded.
    if code == Some(0) || !oom_killed(&info, oom, code).await {
        return WorkloadState::Exited { code };
    }
    let limit = info.host_config.and_then(|h| h.memory).unwrap_or(0);
    let gib = limit as f64 / f64::from(1u32 << 30);
    let message = format!(
        "out of memory: the container was killed at its memory limit of {gib} GiB (exit code {})",
        code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
    );
    WorkloadState::Failed { message }
}

/// The engine's word, the watch's, or for a SIGKILL (exit 137) that no stop of ours sent,
/// the kernel log's.
async fn oom_killed(
    info: &ContainerInspectResponse,
    oom: Option<&OomWatch>,
    code: Option<i32>,
) -> bool {
    let engine_says = info.state.as_ref().and_then(|s| s.oom_killed) == Some(true);
    if engine_says || oom.is_some_and(OomWatch::killed) {
        return true;
    }
    let Some(id) = info.id.clone().filter(|_| code == Some(128 + libc::SIGKILL)) else {
        return false;
    };
    tokio::task::spawn_blocking(move || super::oom::in_kernel_log(&id)).await.unwrap_or(false)
}

#[cfg(test)]
#[path = "ends_tests.rs"]
mod tests;
