//! docs/contracts.md#serving's last rule: a body with a field the API does not know is refused
//! (400) with the field's name, at any depth, and nothing is created, so nobody believes a misspelt
//! or misspelt feature (`autoscale`, `min_replicas`) is on.

use gpuspot_e2e::{assert_error, cluster, request, s};
use serde_json::{Value, json};

fn deployment() -> Value {
    json!({
        "name": "svc",
        "mode": "replicaset",
        "replicas": 1,
        "specs": [{ "gpu": { "models": ["RTX 5090"], "count": 1 }, "billing": { "mode": "regular" } }],
        "template": { "command": ["sleep", "60"] },
    })
}

/// The answer is a 400 whose message names `field`.
fn refused_naming(answer: &(u16, Value), field: &str, what: &str) {
    assert_error(answer, 400, None, what);
    let message = s(&answer.1["error"], "message");
    assert!(message.contains(&format!("`{field}`")), "{what}: {message}");
}

#[test]
fn unknown_fields_are_refused_with_their_name_and_create_nothing() {
    let c = cluster!();
    let mut instance = request("typo", &["RTX 5090"], 1, &["sleep", "60"]);
    instance["min_replicas"] = json!(2);
    refused_naming(&c.api.post("/v1/instances", &instance), "min_replicas", "instance");

    let mut nested = request("nested", &["RTX 5090"], 1, &["sleep", "60"]);
    nested["gpu"]["modles"] = json!(["H100"]);
    refused_naming(&c.api.post("/v1/instances", &nested), "modles", "instance gpu");
    assert!(c.api.instances().is_empty(), "nothing was created");

    let mut scaled = deployment();
    scaled["autoscale"] = json!({ "min_replicas": 1, "max_replicas": 4 });
    refused_naming(&c.api.post("/v1/deployments", &scaled), "autoscale", "deployment");
    let mut policy = deployment();
    policy["autoscaling"] = json!({ "min_replicas": 1, "max_replicas": 4, "target_rps": 5 });
    refused_naming(&c.api.post("/v1/deployments", &policy), "target_rps", "deployment autoscaling");
    let mut spec = deployment();
    spec["specs"][0]["billing"]["max_bid"] = json!("1.00");
    refused_naming(&c.api.post("/v1/deployments", &spec), "max_bid", "deployment spec");
    let mut template = deployment();
    template["template"]["portz"] = json!([8000]);
    refused_naming(&c.api.post("/v1/deployments", &template), "portz", "deployment template");
    let mut probe = deployment();
    probe["template"]["readiness"] = json!({ "path": "/healthz" });
    refused_naming(&c.api.post("/v1/deployments", &probe), "path", "deployment readiness");
    let listed = c.api.get_ok("/v1/deployments");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "nothing was created: {listed}");

    let created = c.api.create(&request("fine", &["RTX 5090"], 1, &["sleep", "60"]));
    let id = s(&created, "id").to_owned();
    let (status, body) = c.api.patch(&format!("/v1/instances/{id}"), &json!({ "nmae": "x" }));
    refused_naming(&(status, body), "nmae", "instance change");
}
