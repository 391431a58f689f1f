//! The coordinator's side of containers (docs/contracts.md#guests), with no container engine
//! anywhere: hosts report their runtimes, image requests wait for a host that runs containers and
//! say so, `[policy] process_workloads = false` refuses requests without an image, bad `image` and
//! `data_disk_gib` values are refused naming the field, and a second coordinator on the same data
//! dir refuses to start. (Real containers: see the podman scenarios.)

use gpuspot_e2e::process::Proc;
use gpuspot_e2e::{
    Cluster, SOON, TEST_CONFIG, assert_error, binaries, cluster, request, s, sh, wait_until,
};
use serde_json::{Value, json};
use std::process::Command;

fn image_request(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "gpu": { "models": ["RTX 5090"], "count": 1 },
        "billing": { "mode": "regular" },
        "image": image,
    })
}

fn deployment(template: Value) -> Value {
    json!({
        "name": "svc",
        "mode": "replicaset",
        "replicas": 1,
        "specs": [{ "gpu": { "models": ["RTX 5090"], "count": 1 }, "billing": { "mode": "regular" } }],
        "template": template,
    })
}

#[test]
fn hosts_report_runtimes_and_image_requests_wait_for_a_container_host() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let host = c.host("host-a").expect("host-a listed");
    assert_eq!(host["runtimes"], json!(["process"]), "{host}");
    let shown = c.api.get_ok(&format!("/v1/hosts/{}", s(&host, "id")));
    assert_eq!(shown["runtimes"], json!(["process"]), "{shown}");

    let created = c.api.create(&image_request("boxed", "busybox:latest"));
    let id = s(&created, "id").to_owned();
    assert_eq!(
        (created["image"].clone(), created["data_disk_gib"].clone()),
        (json!("busybox:latest"), json!(50))
    );
    // It stays queued (the process host has free units) and says why.
    let queued = wait_until(SOON, "the image request's reason", || {
        let instance = c.api.instance(&id);
        let reason = s(&instance, "reason");
        match s(&instance, "state") {
            "queued" if reason.starts_with("no host with a matching GPU runs containers") => {
                Ok(instance)
            }
            "queued" => Err(instance.to_string()),
            other => {
                panic!("an image request was {other} on a host without containers: {instance}")
            }
        }
    });
    assert!(queued["host_id"].is_null(), "{queued}");

    // The same request without an image runs there at once: the host was free.
    let plain = c.api.create(&request("plain", &["RTX 5090"], 1, &sh("exec sleep 30")));
    assert_eq!((plain["image"].clone(), plain["data_disk_gib"].clone()), (Value::Null, json!(50)));
    c.wait_state(s(&plain, "id"), "running");
    assert_eq!(s(&c.api.instance(&id), "state"), "queued");
}

#[test]
fn process_workloads_off_refuses_requests_without_an_image() {
    let config = format!("{TEST_CONFIG}\n[policy]\nprocess_workloads = false\n");
    let c = cluster!(&config);
    let plain = c.api.post("/v1/instances", &request("plain", &["RTX 5090"], 1, &["true"]));
    assert_error(&plain, 400, Some("image_required"), "instance without an image");
    assert!(plain.1["error"]["message"].as_str().unwrap_or("").contains("image"), "{plain:?}");
    let dep = c.api.post("/v1/deployments", &deployment(json!({ "command": ["true"] })));
    assert_error(&dep, 400, Some("image_required"), "deployment without an image");
    let message = dep.1["error"]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("template.image is required"), "{dep:?}");

    let boxed = c.api.create(&image_request("boxed", "busybox"));
    assert_eq!(s(&boxed, "state"), "queued", "{boxed}");
    let (status, body) = c.api.post("/v1/deployments", &deployment(json!({ "image": "busybox" })));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["template"]["image"], "busybox", "{body}");
    let instances = body["instances"].as_array().cloned().unwrap_or_default();
    assert!(instances.iter().all(|i| i["image"] == "busybox"), "{body}");
}

#[test]
fn bad_images_and_data_disks_are_refused_naming_the_field() {
    let c = cluster!();
    let mut cases = vec![
        (json!(""), json!(null), "image must not be empty"),
        (json!("busy box"), json!(null), "image \"busy box\" must not contain whitespace"),
        (json!("x".repeat(256)), json!(null), "image must be at most 255 bytes"),
        (json!(["busybox"]), json!(null), "image must be a string"),
        (json!("busybox"), json!(0), "data_disk_gib must be between 1 and 50"),
        (json!("busybox"), json!(51), "data_disk_gib must be between 1 and 50"),
        (json!(null), json!("big"), "data_disk_gib must be a whole number"),
    ];
    for (image, disk, expected) in cases.drain(..) {
        let mut body = request("bad", &["RTX 5090"], 1, &["true"]);
        body["image"] = image.clone();
        body["data_disk_gib"] = disk.clone();
        let answer = c.api.post("/v1/instances", &body);
        let what = format!("image {image}, data_disk_gib {disk}");
        assert_error(&answer, 400, Some("invalid_request"), &what);
        let message = answer.1["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(expected), "{what}: {message}");
    }
    let template = json!({ "command": ["true"], "image": "a\tb", "data_disk_gib": 100 });
    let answer = c.api.post("/v1/deployments", &deployment(template));
    assert_error(&answer, 400, Some("invalid_request"), "bad template");
    let message = answer.1["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("template.image") && message.contains("template.data_disk_gib"),
        "{message}"
    );

    let sized = c.api.create(&json!({
        "gpu": { "models": ["RTX 5090"] }, "command": ["true"], "data_disk_gib": 8,
    }));
    assert_eq!(sized["data_disk_gib"], 8, "{sized}");
}

#[test]
fn a_second_coordinator_on_the_same_data_dir_refuses_to_start() {
    let c = cluster!();
    let first_pid = c.coordinator.pid().expect("the first coordinator runs");
    let log = c.dir().join("second-coordinator.log");
    let mut command = Command::new(binaries!().coordinator);
    command
        .arg("--config")
        .arg(&c.coordinator.config)
        .arg("--data-dir")
        .arg(&c.coordinator.data_dir)
        .args(["--http", "127.0.0.1:0", "--quic", "127.0.0.1:0"])
        .env("GPUSPOT_ADMIN_TOKEN", &c.coordinator.admin_token);
    let mut second = Proc::spawn("second coordinator", command, &log);
    let status = wait_until(SOON, "the second coordinator to exit", || {
        second.try_wait().ok_or_else(|| second.log_tail(2000))
    });
    assert!(!status.success(), "the second coordinator started: {}", second.log_tail(2000));
    let output = second.log_tail(4000);
    let expected = format!("is in use by another coordinator (pid {first_pid})");
    assert!(output.contains(&expected), "{output}");
    // The first one is unharmed and its endpoints were not overwritten.
    assert_eq!(c.api.get_ok("/healthz")["status"], "ok");
    let endpoints = std::fs::read_to_string(c.coordinator.data_dir.join("endpoints.json")).unwrap();
    assert!(endpoints.contains(&c.coordinator.http.to_string()), "{endpoints}");
}
