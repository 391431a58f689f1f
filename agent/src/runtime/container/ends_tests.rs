//! Following a container's end against a fake engine: no Podman needed.

use super::*;
use bollard::models::{ContainerState, HostConfig};
use std::sync::Mutex;

/// An engine that answers inspects from a state the test sets.
#[derive(Default)]
struct FakeEngine {
    /// `None`: the engine does not answer; `Some(None)`: no such container.
    answer: Mutex<Option<Option<ContainerInspectResponse>>>,
}

impl FakeEngine {
    fn set(&self, answer: Option<Option<ContainerInspectResponse>>) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl Inspect for FakeEngine {
    async fn inspect(&self, _name: &str) -> Result<ContainerInspectResponse, EngineError> {
        let status_code = match self.answer.lock().unwrap().clone() {
            Some(Some(info)) => return Ok(info),
            Some(None) => 404,
            None => 500,
        };
        Err(EngineError::DockerResponseServerError { status_code, message: "fake".into() })
    }
}

fn container(running: bool, exit_code: i64, oom_killed: bool) -> ContainerInspectResponse {
    ContainerInspectResponse {
        state: Some(ContainerState {
            running: Some(running),
            exit_code: Some(exit_code),
            oom_killed: Some(oom_killed),
            ..Default::default()
        }),
        host_config: Some(HostConfig { memory: Some(2 << 30), ..Default::default() }),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_wait_ends_when_a_woken_inspect_finds_the_container_stopped_or_gone() {
    let (exits, engine) = (Arc::new(Exits::default()), Arc::new(FakeEngine::default()));
    engine.set(Some(Some(container(true, 0, false))));
    let wait = {
        let (exits, engine) = (exits.clone(), engine.clone());
        tokio::spawn(async move { wait_for_end(&exits, &*engine, "gpuspot-i-1").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    exits.wake("gpuspot-i-1");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!wait.is_finished(), "woken while it still runs: it keeps waiting");
    engine.set(Some(None));
    exits.wake("gpuspot-i-1");
    tokio::time::timeout(Duration::from_secs(1), wait).await.expect("a gone container").unwrap();
    assert_eq!(running(&*engine, "gpuspot-i-1").await, Some(false));
    engine.set(None);
    assert_eq!(running(&*engine, "gpuspot-i-1").await, None, "no answer is no verdict");
}

#[tokio::test]
async fn an_end_is_its_exit_code_unless_the_oom_killer_ended_it() {
    let engine = FakeEngine::default();
    engine.set(Some(Some(container(false, 3, false))));
    assert_eq!(final_state(&engine, "c", None).await, WorkloadState::Exited { code: Some(3) });
    // A command that survived the loss of a process and exited 0 succeeded.
    engine.set(Some(Some(container(false, 0, true))));
    assert_eq!(final_state(&engine, "c", None).await, WorkloadState::Exited { code: Some(0) });
    engine.set(Some(Some(container(false, 137, true))));
    let oom = final_state(&engine, "c", None).await;
    // Matched and read through Debug, whatever shape the failure's reason has.
    assert!(matches!(oom, WorkloadState::Failed { .. }), "an OOM kill is a failure: {oom:?}");
    let text = format!("{oom:?}");
    assert!(text.contains("memory limit of 2 GiB") && text.contains("137"), "{text}");
    engine.set(None);
    let lost = final_state(&engine, "c", None).await;
    assert!(matches!(lost, WorkloadState::Failed { .. }), "{lost:?}");
    assert!(format!("{lost:?}").contains("lost track of container c"), "{lost:?}");
}
