//! Bounded work per request (docs/contracts.md#limits, issue 24 hole 1): a body is capped in every
//! part and refused at once with a 400 naming the field; the largest valid request, queued on a
//! full pool, costs the coordinator so little that `GET /v1/pools` stays fast for everyone; and a
//! data dir holding an oversized request written before the caps still loads.

use gpuspot_e2e::{Cluster, assert_error, cluster, request, s, sh};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SLEEP: &str = "exec sleep 300";
/// The requirement for `GET /v1/pools` with a worst-case request queued.
const POOLS_WITHIN: Duration = Duration::from_millis(50);
/// What "at once" means for a refusal (the unbounded code took seconds to minutes).
const AT_ONCE: Duration = Duration::from_secs(2);

/// The answer is a 400 `invalid_request` whose message names `field`.
fn refused_naming(answer: &(u16, Value), field: &str, what: &str) {
    assert_error(answer, 400, Some("invalid_request"), what);
    let message = s(&answer.1["error"], "message");
    assert!(message.contains(field), "{what}: the message must name {field}: {message}");
    assert!(message.len() < 4096, "{what}: the message is bounded too: {} bytes", message.len());
}

/// A cluster whose one H100 is taken by a running regular instance: every request queues.
fn full_pool() -> (Cluster, gpuspot_e2e::Agent) {
    let c = cluster!();
    let agent = c.agent(&c.write_profile("one-h100", "NVIDIA H100 80GB HBM3", 1, 16, 128));
    let first = c.api.create(&request("holder", &["H100"], 1, &sh(SLEEP)));
    c.wait_state(s(&first, "id"), "running");
    (c, agent)
}

/// The median time of a few `GET /v1/pools`, each of which must answer 200.
fn pools_median(c: &Cluster) -> Duration {
    let mut times: Vec<Duration> = (0..7)
        .map(|_| {
            let started = Instant::now();
            let (status, body) = c.api.get("/v1/pools");
            assert_eq!(status, 200, "GET /v1/pools: {body}");
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// The largest request the caps allow: 16 distinct models of 64 characters (one of them
/// matching), 64 KiB of env and 64 KiB of command, counted as the API counts them.
fn worst_case_request() -> Value {
    let mut models: Vec<String> = (0..15).map(|i| format!("{i:02}{}", "m".repeat(62))).collect();
    models.push("H100".into());
    let env: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("VAR_{i:02}"), json!("v".repeat(4084)))).collect();
    let comment = format!("#{}", "c".repeat(65_536 - 3 - 3 - SLEEP.len() - 1 - 2));
    let script = format!("{SLEEP} {comment}");
    json!({
        "name": "w".repeat(63),
        "gpu": { "models": models, "count": 1 },
        "billing": { "mode": "regular" },
        "command": ["sh", "-c", script],
        "env": env,
    })
}

#[test]
fn a_request_listing_one_model_twenty_thousand_times_is_refused_at_once() {
    let (c, _agent) = full_pool();
    let started = Instant::now();
    let mut body = request("flood", &["H100"], 1, &sh(SLEEP));
    body["gpu"]["models"] = json!(vec!["H100"; 20_000]);
    let answer = c.api.post("/v1/instances", &body);
    let took = started.elapsed();
    refused_naming(&answer, "gpu.models", "20,000 models");
    assert!(took < AT_ONCE, "refused at once, not after {took:?}");
    println!("figure: 20,000 models refused in {took:?}");

    let mut long = request("long", &["H100"], 1, &sh(SLEEP));
    long["gpu"]["models"] = json!(["H100", "x".repeat(65)]);
    refused_naming(&c.api.post("/v1/instances", &long), "gpu.models[1]", "a 65-char model");

    let spec = json!({ "gpu": { "models": vec!["H100"; 17] }, "billing": { "mode": "regular" } });
    let deployment = json!({ "name": "many", "mode": "replicaset", "replicas": 1,
        "specs": [spec], "template": { "command": ["true"] } });
    let answer = c.api.post("/v1/deployments", &deployment);
    refused_naming(&answer, "specs[0].gpu.models", "a deployment spec's 17 models");
    let median = pools_median(&c);
    assert!(median < POOLS_WITHIN, "GET /v1/pools median {median:?}");
}

#[test]
fn an_oversized_env_command_or_name_is_refused_naming_the_field() {
    let c = cluster!();
    let mut big = request("big-env", &["H100"], 1, &sh(SLEEP));
    big["env"] = json!({ "BIG": "x".repeat(912 * 1024) });
    big["on_unavailable"] = json!("fail");
    big["gpu"]["count"] = json!(9);
    let started = Instant::now();
    refused_naming(&c.api.post("/v1/instances", &big), "env", "a 912 KB env");
    assert!(started.elapsed() < AT_ONCE, "at once: {:?}", started.elapsed());
    println!("figure: a 912 KB env refused in {:?}", started.elapsed());

    let mut bad_name = request("bad-env-name", &["H100"], 1, &sh(SLEEP));
    bad_name["env"] = json!({ "1A": "x" });
    refused_naming(&c.api.post("/v1/instances", &bad_name), "env", "env name 1A");

    let mut command = request("big-command", &["H100"], 1, &sh(SLEEP));
    command["command"] = json!(["sh", "-c", "x".repeat(70_000)]);
    refused_naming(&c.api.post("/v1/instances", &command), "command", "a 70 KB command");

    let long_name = request(&"n".repeat(64), &["H100"], 1, &sh(SLEEP));
    refused_naming(&c.api.post("/v1/instances", &long_name), "name", "a 64-char name");

    let template = json!({ "command": ["true"], "env": { "BIG": "x".repeat(70_000) } });
    let deployment = json!({ "name": "envy", "mode": "replicaset", "replicas": 1,
        "specs": [{ "gpu": { "models": ["H100"] }, "billing": { "mode": "regular" } }],
        "template": template });
    refused_naming(&c.api.post("/v1/deployments", &deployment), "template.env", "template env");
    assert!(c.api.instances().is_empty(), "nothing was created");
}

#[test]
fn a_worst_case_valid_request_queued_on_a_full_pool_leaves_pools_fast() {
    let (c, _agent) = full_pool();
    let body = worst_case_request();
    let queued = c.api.create(&body);
    assert_eq!(s(&queued, "state"), "queued", "{}", queued["reason"]);
    let second = c.api.create(&body);
    let id = s(&second, "id").to_owned();
    gpuspot_e2e::wait_until(gpuspot_e2e::SOON, "the queued request to get a reason", || {
        let instance = c.api.instance(&id);
        let reason = s(&instance, "reason");
        gpuspot_e2e::holds(reason.contains("waiting"), || instance["reason"].to_string())
    });
    let median = pools_median(&c);
    assert!(median < POOLS_WITHIN, "GET /v1/pools median {median:?}");
    println!("figure: GET /v1/pools median {median:?} with two worst-case requests queued");
}

#[test]
fn a_data_dir_holding_an_old_twenty_thousand_model_request_loads() {
    let (mut c, agent) = full_pool();
    let queued = c.api.create(&request("old", &["H100"], 1, &sh(SLEEP)));
    let id = s(&queued, "id").to_owned();
    c.coordinator.kill();
    // As today's main wrote it before the caps: one model 20,000 times, in the same JSON
    // body the store keeps for every instance.
    let db = rusqlite::Connection::open(c.coordinator.data_dir.join("gpuspot.db")).expect("db");
    let models = serde_json::to_string(&vec!["H100"; 20_000]).expect("json");
    let changed = db
        .execute(
            "UPDATE instances SET body = json_set(body, '$.request.gpu.models', json(?1)) \
             WHERE id = ?2",
            rusqlite::params![models, id],
        )
        .expect("write the old row");
    assert_eq!(changed, 1, "the queued request's row");
    drop(db);

    let started = Instant::now();
    c.coordinator.start_again();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "started in {took:?}");
    // Passes over the queue weigh only once the host is back and could be reclaimed.
    c.wait_host(&agent.hostname, "connected");
    let pass = Instant::now();
    c.wait_state(s(&c.api.create(&request("probe", &["H100"], 1, &sh(SLEEP))), "id"), "queued");
    assert!(pass.elapsed() < AT_ONCE, "a request after the load took {:?}", pass.elapsed());
    let median = pools_median(&c);
    assert!(median < POOLS_WITHIN, "GET /v1/pools median {median:?} after loading it");
    println!("figure: restart on the old row {took:?}, GET /v1/pools median {median:?}");
    let loaded = c.api.instance(&id);
    assert_eq!(loaded["gpu"]["models"], json!(["H100"]), "deduplicated on load: {loaded}");
    assert_eq!(s(&loaded, "state"), "queued", "{loaded}");
}

/// Autoscaling and a schedule are held to the same bound as `replicas`, at creation and in
/// a PATCH: a tenant cannot scale past 10000 replicas through them (issue 25.7).
#[test]
fn autoscaling_and_schedule_cannot_pass_the_replica_bound() {
    let c = cluster!();
    let _agent = c.agent(&c.write_profile("one-h100", "NVIDIA H100 80GB HBM3", 1, 16, 128));
    let spec = json!({ "gpu": { "models": ["H100"], "count": 1 } });
    let body = |extra: Value| {
        let mut body = json!({
            "mode": "replicaset", "replicas": 1, "specs": [spec],
            "template": { "command": sh(SLEEP) },
        });
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        body
    };
    let policy = json!({ "min_replicas": 1, "max_replicas": 20_000, "target_rps_per_replica": 1 });
    let refused = c.api.post("/v1/deployments", &body(json!({ "autoscaling": policy })));
    refused_naming(&refused, "autoscaling.max_replicas", "an autoscaling maximum past the bound");
    let schedule = json!([{ "cron": "0 9 * * *", "min_replicas": 20_000 }]);
    let refused = c.api.post("/v1/deployments", &body(json!({ "schedule": schedule })));
    refused_naming(&refused, "schedule[0].min_replicas", "a scheduled minimum past the bound");

    let (status, created) = c.api.post("/v1/deployments", &body(json!({ "name": "svc" })));
    assert_eq!(status, 202, "{created}");
    let path = format!("/v1/deployments/{}", s(&created, "id"));
    let policy =
        json!({ "min_replicas": 20_000, "max_replicas": 20_000, "target_rps_per_replica": 1 });
    let refused = c.api.patch(&path, &json!({ "autoscaling": policy }));
    refused_naming(&refused, "autoscaling.max_replicas", "a PATCH past the bound");
    let (_, shown) = c.api.get(&path);
    assert_eq!(shown["replicas"], 1, "unchanged: {shown}");
    let refused = c.api.patch(&path, &json!({ "schedule": schedule }));
    refused_naming(&refused, "schedule[0].min_replicas", "a PATCHed schedule past the bound");
    // A delay past what a clock holds read as none at all: scale-in at once.
    let policy = json!({
        "min_replicas": 1, "max_replicas": 2, "target_rps_per_replica": 1,
        "scale_in_delay": "400000000years",
    });
    let refused = c.api.patch(&path, &json!({ "autoscaling": policy }));
    refused_naming(&refused, "autoscaling.scale_in_delay", "a scale-in delay past a day");
}
