//! Failures (docs/architecture.md#agent-link, #store): a host that goes silent is lost with its
//! instances; a coordinator killed and restarted on its data dir keeps its state and its agents.

use gpuspot_e2e::{Cluster, cluster, is_alive, kill_tree, request, s, sh, wait_until};
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn killed_agent_makes_its_host_lost_and_its_instance_host_lost() {
    let c = cluster!();
    let mut a = c.agent(&Cluster::seed_profile("host-a"));
    let created =
        c.api.create(&request("doomed", &["RTX 5090"], 4, &sh("echo $$ > pid; exec sleep 30")));
    let id = s(&created, "id").to_owned();
    c.wait_state(&id, "running");
    let pid = a.workload_pid(&id);

    a.kill();
    let killed_at = Instant::now();
    let lost = c.wait_host("host-a", "lost");
    let lost_after = killed_at.elapsed();
    let ended = c.wait_state(&id, "terminated");
    assert_eq!(s(&ended, "termination_reason"), "host_lost", "{ended}");
    assert!(s(&ended, "reason").starts_with("host_lost"), "{ended}");
    assert!(ended["ended_at"].is_string(), "{ended}");
    // host_lost_after is 2 s and heartbeats come every 500 ms.
    assert!(lost_after >= Duration::from_millis(1000), "lost too early ({lost_after:?}): {lost}");
    eprintln!("host lost {lost_after:?} after the agent was killed");

    // The workload outlived its agent (own session); it is not ours to keep.
    kill_tree(pid);
}

/// The fields a restart must not change.
const STABLE: &[&str] = &[
    "id",
    "name",
    "state",
    "host_id",
    "gpu_uuids",
    "gpu_model",
    "cpu_cores",
    "memory_gib",
    "billing",
    "price",
    "created_at",
    "started_at",
];

fn stable_fields(instance: &Value) -> Vec<(&'static str, Value)> {
    STABLE.iter().map(|f| (*f, instance[*f].clone())).collect()
}

#[test]
fn coordinator_restart_keeps_instances_and_agents_reconnect() {
    let mut c = cluster!();
    let a = c.agent(&Cluster::seed_profile("host-a"));
    let created =
        c.api.create(&request("survivor", &["RTX 5090"], 2, &sh("echo $$ > pid; exec sleep 30")));
    let id = s(&created, "id").to_owned();
    let before = c.wait_state(&id, "running");
    let pid = a.workload_pid(&id);
    let host_id = s(&before, "host_id").to_owned();
    let (http, quic) = (c.coordinator.http, c.coordinator.quic);

    c.coordinator.kill();
    c.coordinator.restart();
    assert_eq!((c.coordinator.http, c.coordinator.quic), (http, quic), "ports changed");
    let restarted_at = Instant::now();

    let after = c.api.instance(&id);
    assert_eq!(stable_fields(&after), stable_fields(&before), "instance changed by the restart");

    let host = c.wait_host("host-a", "connected");
    assert_eq!(s(&host, "id"), host_id, "{host}");
    let reconnected = restarted_at.elapsed();
    assert!(reconnected < Duration::from_secs(15), "agent reconnected after {reconnected:?}");
    eprintln!("agent reconnected {reconnected:?} after the restart");
    let after = c.api.instance(&id);
    assert_eq!(stable_fields(&after), stable_fields(&before), "instance changed after reconnect");
    assert!(is_alive(pid), "the workload died across the coordinator restart");

    // The link works: DELETE reaches the agent and stops the workload.
    let (status, body) = c.api.delete(&format!("/v1/instances/{id}"));
    assert_eq!(status, 200, "DELETE after restart: {body}");
    let ended = c.wait_state(&id, "terminated");
    assert_eq!(s(&ended, "termination_reason"), "user", "{ended}");
    wait_until(Duration::from_secs(10), &format!("workload {pid} to be gone"), || {
        if is_alive(pid) { Err(format!("/proc/{pid} still alive")) } else { Ok(()) }
    });
}
