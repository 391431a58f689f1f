//! Placement (docs/contracts.md#hosts-and-units, #placement, seed 004): units, matching on
//! model/CPU/memory ranges, the queue and its reasons, and placing a waiting request when a host
//! joins.

use gpuspot_e2e::{Cluster, SOON, cluster, holds, s, sh, wait_until};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Seed 004's request: 8 GPUs of any of the three models, 100–200 cores, 224–1024 GiB.
fn seed_request(name: &str) -> Value {
    json!({
        "name": name,
        "gpu": { "models": ["RTX 5090", "RTX 4090", "RTX PRO 6000"], "count": 8 },
        "cpu_cores": { "min": 100, "max": 200 },
        "memory_gib": { "min": 224, "max": 1024 },
        "billing": { "mode": "regular" },
        "command": sh("exec sleep 30"),
    })
}

fn hostname_of(c: &Cluster, host_id: &str) -> String {
    let hosts = c.api.hosts();
    let host = hosts.iter().find(|h| s(h, "id") == host_id);
    host.map(|h| s(h, "hostname").to_owned())
        .unwrap_or_else(|| panic!("host {host_id} not in GET /v1/hosts: {hosts:?}"))
}

/// Checks a placed seed-004 instance and returns the hostname it landed on.
fn check_placed(c: &Cluster, instance: &Value) -> String {
    let hostname = hostname_of(c, s(instance, "host_id"));
    let (memory, model) = match hostname.as_str() {
        "host-a" => (720, "RTX 5090"),
        "host-c" => (360, "RTX PRO 6000"),
        other => panic!("seed 004 request placed on {other}, expected host A or C: {instance}"),
    };
    assert_eq!(instance["cpu_cores"], 128, "{instance}");
    assert_eq!(instance["memory_gib"], memory, "{instance}");
    assert!(s(instance, "gpu_model").contains(model), "{instance}");
    let uuids = instance["gpu_uuids"].as_array().expect("gpu_uuids");
    assert_eq!(uuids.len(), 8, "{instance}");
    hostname
}

#[test]
fn seed_004_request_matches_hosts_a_and_c_never_b() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let _b = c.agent(&Cluster::seed_profile("host-b"));
    let _c = c.agent(&Cluster::seed_profile("host-c"));
    let host_b = c.host("host-b").expect("host-b");
    assert_eq!(host_b["unit"]["cpu_cores"], 8, "B's unit is 1 GPU + 8 cores: {host_b}");

    let first = c.api.create(&seed_request("first"));
    let first = c.wait_state(s(&first, "id"), "running");
    let first_host = check_placed(&c, &first);

    let second = c.api.create(&seed_request("second"));
    let second = c.wait_state(s(&second, "id"), "running");
    let second_host = check_placed(&c, &second);
    assert_ne!(first_host, second_host, "both on one host: {first} / {second}");

    let third = c.api.create(&seed_request("third"));
    let id = s(&third, "id").to_owned();
    wait_until(SOON, "the third request to wait for capacity", || {
        let third = c.api.instance(&id);
        let reason = s(&third, "reason").to_ascii_lowercase();
        holds(s(&third, "state") == "queued" && reason.contains("capacity"), || third.to_string())
    });

    // Several scheduling passes and price ticks (1 s) later, B still has nothing.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        let third = c.api.instance(&id);
        assert_eq!(s(&third, "state"), "queued", "the third request was placed: {third}");
        let b = c.host("host-b").expect("host-b");
        assert_eq!(b["units_free"], 8, "host B got an instance: {b}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let b_id = s(&host_b, "id");
    let on_b: Vec<Value> =
        c.api.instances().into_iter().filter(|i| s(i, "host_id") == b_id).collect();
    assert!(on_b.is_empty(), "instances on host B: {on_b:?}");
}

#[test]
fn request_waits_for_a_host_and_is_placed_when_one_joins() {
    let c = cluster!();
    let request = gpuspot_e2e::request("h100-job", &["H100"], 4, &sh("exec sleep 30"));
    let created = c.api.create(&request);
    let id = s(&created, "id").to_owned();
    let queued = wait_until(SOON, "the H100 request to say no host can satisfy it", || {
        let instance = c.api.instance(&id);
        let reason = s(&instance, "reason").to_ascii_lowercase();
        if s(&instance, "state") == "queued" && reason.contains("no known host") {
            Ok(instance)
        } else {
            Err(instance.to_string())
        }
    });
    assert!(queued["host_id"].is_null(), "{queued}");

    let profile = c.write_profile("host-h100", "NVIDIA H100 80GB HBM3", 8, 192, 2048);
    let _h100 = c.agent(&profile);
    let host_id = s(&c.host("host-h100").expect("host-h100"), "id").to_owned();
    let running = c.wait_state(&id, "running");
    assert_eq!(s(&running, "host_id"), host_id, "{running}");
    assert!(s(&running, "gpu_model").contains("H100"), "{running}");
    assert_eq!(running["gpu_uuids"].as_array().map(Vec::len), Some(4), "{running}");
    assert_eq!(running["cpu_cores"], 96, "4 units of 24 cores: {running}");
    assert_eq!(running["memory_gib"], 1024, "4 units of 256 GiB: {running}");
}
