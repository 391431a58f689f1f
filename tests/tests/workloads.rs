//! Workloads are real processes (docs/contracts.md#hosts-and-units, #lifecycle): their output and
//! exit code come back, and DELETE stops them.

use gpuspot_e2e::{Cluster, cluster, is_alive, request, s, sh, wait_until};
use std::time::Duration;

#[test]
fn workload_output_and_exit_code_come_back() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let script = "echo hello-from-$GPUSPOT_INSTANCE_ID; echo CUDA=$CUDA_VISIBLE_DEVICES; exit 3";
    let created = c.api.create(&request("exit-3", &["RTX 5090"], 2, &sh(script)));
    let id = s(&created, "id").to_owned();

    let ended = c.wait_state(&id, "terminated");
    assert_eq!(ended["exit_code"], 3, "{ended}");
    assert_eq!(s(&ended, "termination_reason"), "exited", "{ended}");
    assert!(s(&ended, "reason").starts_with("exited"), "{ended}");
    assert!(s(&ended, "reason").contains('3'), "{ended}");
    assert!(ended["ended_at"].is_string(), "{ended}");

    let uuids: Vec<&str> = ended["gpu_uuids"]
        .as_array()
        .expect("gpu_uuids")
        .iter()
        .map(|u| u.as_str().expect("uuid"))
        .collect();
    assert_eq!(uuids.len(), 2, "{ended}");
    let logs = c.wait_logs(&id, &format!("hello-from-{id}"));
    let cuda = format!("CUDA={}", uuids.join(","));
    assert!(logs.lines().any(|line| line.trim() == cuda), "expected {cuda:?} in {logs:?}");

    // The units are free again.
    let host = c.host("host-a").expect("host-a");
    assert_eq!(host["units_free"], 8, "{host}");
}

#[test]
fn delete_stops_a_running_workload() {
    let c = cluster!();
    let a = c.agent(&Cluster::seed_profile("host-a"));
    let created =
        c.api.create(&request("sleeper", &["RTX 5090"], 1, &sh("echo $$ > pid; exec sleep 30")));
    let id = s(&created, "id").to_owned();
    c.wait_state(&id, "running");
    let pid = a.workload_pid(&id);
    assert!(is_alive(pid), "workload {pid} is not running");

    let (status, body) = c.api.delete(&format!("/v1/instances/{id}"));
    assert_eq!(status, 200, "DELETE: {body}");
    assert_eq!(s(&body, "id"), id, "DELETE answers with the instance: {body}");

    let ended = c.wait_state(&id, "terminated");
    assert_eq!(s(&ended, "termination_reason"), "user", "{ended}");
    assert!(s(&ended, "reason").starts_with("user"), "{ended}");
    wait_until(Duration::from_secs(10), &format!("workload {pid} to be gone"), || {
        if is_alive(pid) { Err(format!("/proc/{pid} still alive")) } else { Ok(()) }
    });
    let host = c.host("host-a").expect("host-a");
    assert_eq!(host["units_free"], 8, "{host}");
}
