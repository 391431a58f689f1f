//! Serving on spot (docs/contracts.md#serving, seed 002): replicas of an HTTP server on their own
//! host ports behind the gateway, a reclaim for price under steady load that fails no request while
//! the replacement takes over once ready, and autoscaling on requests per second, on GPU
//! utilisation and on a schedule, each decision an event with its reason.

use chrono::Timelike;
use gpuspot_e2e::deploy::{
    Deployments, host_id, in_state, regular_spec, serving, spot_request, spot_spec,
};
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::load::SteadyLoad;
use gpuspot_e2e::podman::{ContainerAgent, podman};
use gpuspot_e2e::{SOON, TEST_CONFIG, binaries, cluster, holds, s, sh, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Each replica serves its data dir, where `id.txt` names the instance.
const SERVER: &str = "echo $GPUSPOT_INSTANCE_ID > id.txt; exec python3 -m http.server $PORT";

fn config(extra_timers: &str) -> String {
    let config = TEST_CONFIG.replacen("[timers]\n", &format!("[timers]\n{extra_timers}"), 1);
    format!("{config}\n[gateway]\nlisten = \"127.0.0.1:0\"\n")
}

/// Which replicas answer `n` requests through the gateway.
fn answering(url: &str, n: usize) -> BTreeSet<String> {
    let client = reqwest::blocking::Client::builder().no_proxy().build().unwrap();
    (0..n)
        .filter_map(|_| client.get(url).send().ok()?.text().ok())
        .map(|text| text.trim().to_owned())
        .collect()
}

#[test]
fn three_replicas_behind_the_gateway_ride_out_a_reclaim_under_load_without_a_failed_request() {
    let c = cluster!(&config(""));
    let gateway = c.gateway().expect("the gateway's address in endpoints.json");
    let _x = c.agent(&c.write_profile("spot-x", "NVIDIA GeForce RTX 5090", 4, 64, 256));
    let _y = c.agent(&c.write_profile("regular-y", "NVIDIA GeForce RTX 4090", 4, 64, 256));
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "web", "mode": "replicaset", "replicas": 3,
        "specs": [spot_spec(&["RTX 5090"], 1, "0.50"), regular_spec(&["RTX 4090"], 1)],
        "template": { "command": sh(SERVER), "readiness": { "http_path": "/id.txt", "interval": "200ms" } },
    }));
    let id = s(&created, "id").to_owned();
    let first = wait_until(SOON, "3 ready replicas", || {
        let endpoints = deps.endpoints(&id);
        let ready = serving(&endpoints);
        holds(ready.len() == 3, || format!("{endpoints:?}")).map(|()| endpoints)
    });
    let addresses: BTreeSet<&str> = first.iter().map(|e| s(e, "address")).collect();
    assert_eq!(addresses.len(), 3, "each replica on its own host port: {first:?}");
    let url = format!("http://{gateway}/d/web/id.txt");
    assert_eq!(answering(&url, 30), serving(&first), "the gateway spreads over all replicas");
    let by_id = format!("http://{gateway}/d/{id}/id.txt");
    assert_eq!(answering(&by_id, 6).len(), 3, "the deployment is reachable by id too");
    let unknown = reqwest::blocking::get(format!("http://{gateway}/d/nope/")).unwrap();
    assert_eq!(unknown.status(), 404);

    // Higher bids take X's GPUs: two replicas are noticed and replaced on Y.
    let load = SteadyLoad::start(&url, 40);
    for n in 1..=3 {
        c.api.create(&spot_request(
            &format!("bidder-{n}"),
            &["RTX 5090"],
            1,
            "0.80",
            &sh("sleep 120"),
        ));
    }
    let noticed = deps.wait(&id, Duration::from_secs(30), "2 replicas noticed", |d| {
        let noticed = in_state(d, "termination_scheduled");
        holds(noticed.len() == 2, String::new).map(|()| noticed)
    });
    let drained = serving(&deps.endpoints(&id));
    for i in &noticed {
        assert!(!drained.contains(s(i, "id")), "a noticed replica leaves the rotation at once");
    }
    for i in &noticed {
        c.wait_state_within(s(i, "id"), "terminated", Duration::from_secs(30));
    }
    let y = host_id(&c, "regular-y");
    let after = wait_until(SOON, "3 ready replicas again, 2 of them on Y", || {
        let endpoints = deps.endpoints(&id);
        let on_y = endpoints.iter().filter(|e| s(e, "host_id") == y && e["ready"] == true).count();
        holds(serving(&endpoints).len() == 3 && on_y == 2, || format!("{endpoints:?}"))
            .map(|()| serving(&endpoints))
    });
    let report = load.stop();
    assert!(report.sent >= 200, "the load ran through the reclaim: {} requests", report.sent);
    assert!(
        report.failures.is_empty(),
        "failed requests: {:?}",
        &report.failures[..report.failures.len().min(5)]
    );
    assert_eq!(answering(&url, 30), after, "the replacements take traffic once ready");
}

/// Scaling decisions of deployment `id`, as events.
fn scaled(events: &mut EventStream, id: &str, to: u64, within: Duration) -> Value {
    let event = events.wait_for(within, &format!("{id} scaled to {to}"), |e| {
        e.kind == "deployment_scaled" && e.data()["deployment_id"] == id && e.data()["to"] == to
    });
    event.body
}

#[test]
fn autoscaling_on_requests_goes_up_under_load_and_down_only_after_the_delay() {
    let c = cluster!(&config("autoscale_interval = \"500ms\"\n"));
    let gateway = c.gateway().expect("gateway");
    let _h = c.agent(&c.write_profile("serve", "NVIDIA GeForce RTX 4090", 4, 64, 256));
    let mut events = EventStream::open(&c.api, None);
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "api", "mode": "replicaset",
        "specs": [regular_spec(&["RTX 4090"], 1)],
        "template": { "command": sh(SERVER), "readiness": { "http_path": "/id.txt", "interval": "200ms" } },
        "autoscaling": { "min_replicas": 1, "max_replicas": 3, "target_rps_per_replica": 5,
                         "scale_in_delay": "4s" },
    }));
    let id = s(&created, "id").to_owned();
    assert_eq!(created["replicas"], 1, "starts at the minimum: {created}");
    wait_until(SOON, "1 ready replica", || {
        holds(serving(&deps.endpoints(&id)).len() == 1, String::new)
    });
    let load = SteadyLoad::start(&format!("http://{gateway}/d/api/id.txt"), 25);
    let up = scaled(&mut events, &id, 3, SOON);
    let reason = up["data"]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("requests/s") && reason.contains("maximum 3"), "{reason}");
    wait_until(SOON, "3 ready replicas", || {
        holds(serving(&deps.endpoints(&id)).len() == 3, String::new)
    });
    let report = load.stop();
    let stopped = Instant::now();
    assert!(report.failures.is_empty(), "{:?}", &report.failures[..report.failures.len().min(5)]);
    let down = scaled(&mut events, &id, 1, Duration::from_secs(30));
    assert!(stopped.elapsed() >= Duration::from_secs(4), "scale-in waited for its delay");
    let reason = down["data"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("fewer wanted for 4s"), "{reason}");
    deps.wait(&id, SOON, "1 live replica", |d| {
        holds(in_state(d, "running").len() == 1, String::new)
    });
}

#[test]
fn autoscaling_on_gpu_utilisation_follows_what_the_guests_report() {
    let c = cluster!(&config("autoscale_interval = \"500ms\"\n"));
    let _h = c.agent(&c.write_profile("busy", "NVIDIA GeForce RTX 4090", 4, 64, 256));
    let mut events = EventStream::open(&c.api, None);
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "train-serve", "mode": "replicaset",
        "specs": [regular_spec(&["RTX 4090"], 1)],
        // On simulated hosts a guest sets its GPUs' reported utilisation
        // (docs/contracts.md#serving).
        "template": { "command": sh("echo 90 > .gpu_utilization; exec sleep 120") },
        "autoscaling": { "min_replicas": 1, "max_replicas": 3, "target_gpu_utilization": 50 },
    }));
    let id = s(&created, "id").to_owned();
    let first = scaled(&mut events, &id, 2, SOON);
    let reason = first["data"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("GPU utilisation 90%"), "{reason}");
    scaled(&mut events, &id, 3, SOON);
    deps.wait(&id, SOON, "3 running replicas", |d| {
        holds(in_state(d, "running").len() == 3, String::new)
    });
}

#[test]
fn a_schedule_raises_the_minimum_at_its_time() {
    let c = cluster!(&config("autoscale_interval = \"300ms\"\n"));
    let _h = c.agent(&c.write_profile("sched", "NVIDIA GeForce RTX 4090", 4, 64, 256));
    let mut events = EventStream::open(&c.api, None);
    let deps = Deployments::new(&c.api);
    let at = chrono::Utc::now() + chrono::Duration::seconds(8);
    let cron = at.format("%S %M %H * * *").to_string();
    let created = deps.create(&json!({
        "name": "morning", "mode": "replicaset",
        "specs": [regular_spec(&["RTX 4090"], 1)],
        "template": { "command": sh("exec sleep 120") },
        "autoscaling": { "min_replicas": 1, "max_replicas": 4, "target_rps_per_replica": 100 },
        "schedule": [{ "cron": cron, "min_replicas": 3 }],
    }));
    let id = s(&created, "id").to_owned();
    let event = scaled(&mut events, &id, 3, Duration::from_secs(30));
    let when: chrono::DateTime<chrono::Utc> = s(&event, "at").parse().expect("event time");
    let fired = at.with_nanosecond(0).unwrap_or(at);
    assert!(when >= fired, "scaled at {when}, before the schedule's {fired}");
    let reason = event["data"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("minimum 3"), "{reason}");
    deps.wait(&id, SOON, "3 running replicas", |d| {
        holds(in_state(d, "running").len() == 3, String::new)
    });
}

#[test]
fn a_container_publishes_its_declared_port_and_serves_through_the_gateway() {
    let c = cluster!(&config(""));
    let gateway = c.gateway().expect("gateway");
    let profile = c.write_profile("boxes", "NVIDIA GeForce RTX 4090", 2, 16, 64);
    let _h = ContainerAgent::start(&c, &binaries!().agent, &profile);
    let deps = Deployments::new(&c.api);
    let server =
        "echo $GPUSPOT_INSTANCE_ID > /data/id.txt; echo port=$PORT; exec httpd -f -p 8000 -h /data";
    let created = deps.create(&json!({
        "name": "box", "mode": "replicaset", "replicas": 2,
        "specs": [regular_spec(&["RTX 4090"], 1)],
        "template": { "image": podman().image, "command": ["sh", "-c", server], "ports": [8000],
                      "readiness": { "http_path": "/id.txt", "interval": "200ms" } },
    }));
    let id = s(&created, "id").to_owned();
    let endpoints = wait_until(Duration::from_secs(60), "2 ready containers", || {
        let endpoints = deps.endpoints(&id);
        holds(serving(&endpoints).len() == 2, || format!("{endpoints:?}")).map(|()| endpoints)
    });
    for e in &endpoints {
        let direct = format!("http://{}/id.txt", s(e, "address"));
        let body = reqwest::blocking::get(&direct).and_then(|r| r.text()).unwrap_or_default();
        assert_eq!(body.trim(), s(e, "instance_id"), "its host port reaches its container");
    }
    let url = format!("http://{gateway}/d/box/id.txt");
    assert_eq!(answering(&url, 20), serving(&endpoints), "both containers take traffic");
    let first = s(&endpoints[0], "instance_id").to_owned();
    wait_until(SOON, "the container's output", || {
        let logs = c.api.logs(&first);
        holds(logs.contains("port=8000"), || format!("PORT is the container's own port: {logs}"))
    });
}
