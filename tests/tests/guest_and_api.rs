//! The guest metadata socket (docs/contracts.md#guest-socket, seed 003) as a workload finds it, and
//! the API's answers to bad requests (docs/contracts.md#http-api).

use gpuspot_e2e::{Cluster, assert_error, cluster, request, s, sh, unix_get};
use serde_json::{Value, json};
use std::path::PathBuf;

#[test]
fn metadata_socket_answers_the_guest() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let script = "echo SOCKET=$GPUSPOT_METADATA_SOCKET; exec sleep 30";
    let created = c.api.create(&request("guest", &["RTX 5090"], 2, &sh(script)));
    let id = s(&created, "id").to_owned();
    let running = c.wait_state(&id, "running");
    let logs = c.wait_logs(&id, "SOCKET=/");
    let socket = logs
        .lines()
        .find_map(|line| line.trim().strip_prefix("SOCKET="))
        .map(PathBuf::from)
        .expect("socket line");

    let (status, body) =
        unix_get(&socket, "/vm/metadata?key=spot_termination_time").expect("metadata socket");
    assert_eq!((status, body.trim()), (404, "404 page not found"), "spot_termination_time");

    let (status, body) = unix_get(&socket, "/vm/metadata").expect("metadata socket");
    assert_eq!(status, 200, "GET /vm/metadata: {body}");
    let all: Value = serde_json::from_str(&body).expect("GET /vm/metadata is JSON");
    assert_eq!(all["instance_id"], id.as_str(), "{all}");
    assert_eq!(all["gpu_uuids"], running["gpu_uuids"], "{all} vs {running}");

    let (status, body) = unix_get(&socket, "/vm/metadata?key=instance_id").expect("socket");
    assert_eq!(status, 200, "instance_id: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).ok(), Some(json!(id)), "{body}");
}

fn valid() -> Value {
    request("bad", &["RTX 5090"], 1, &sh("exit 0"))
}

#[test]
fn bad_requests_get_json_errors() {
    let c = cluster!();
    let api = &c.api;

    let mut unknown_model = valid();
    unknown_model["gpu"]["models"] = json!(["Voodoo 5 6000"]);
    let answer = api.post("/v1/instances", &unknown_model);
    assert_error(&answer, 400, Some("unknown_model"), "unknown model");

    let mut zero = valid();
    zero["gpu"]["count"] = json!(0);
    assert_error(&api.post("/v1/instances", &zero), 400, None, "count 0");

    let mut cpu = valid();
    cpu["cpu_cores"] = json!({ "min": 64, "max": 16 });
    assert_error(&api.post("/v1/instances", &cpu), 400, None, "cpu_cores min > max");

    let mut memory = valid();
    memory["memory_gib"] = json!({ "min": 512, "max": 64 });
    assert_error(&api.post("/v1/instances", &memory), 400, None, "memory_gib min > max");

    let answer = api.post_raw("/v1/instances", "{\"name\": \"x\", \"gpu\": ");
    assert_error(&answer, 400, None, "malformed JSON");

    let missing = "/v1/instances/i-0123456789abcdef";
    assert_error(&api.get(missing), 404, None, "GET unknown id");
    assert_error(&api.delete(missing), 404, None, "DELETE unknown id");
    assert_error(&api.get(&format!("{missing}/logs")), 404, None, "logs of unknown id");

    let anonymous = api.anonymous();
    assert_error(&anonymous.get("/v1/instances"), 401, None, "no token");
    assert_error(&anonymous.post("/v1/instances", &valid()), 401, None, "POST without token");
    let wrong = gpuspot_e2e::Api::new(&api.base, Some("not-the-admin-token"));
    assert_error(&wrong.get("/v1/hosts"), 401, None, "wrong token");

    // None of the bad requests created anything.
    assert_eq!(api.instances(), Vec::<Value>::new());
}
