//! Requests that fail and reasons that say what is true (docs/contracts.md#failures-and-quotas,
//! seeds 001 and 004): `"on_unavailable": "fail"` on a full pool ends `failed` with `out_of_stock`
//! at once, a queued request on a host full of its own instances says they hold it, and a container
//! deployment whose instance the user deletes ends `completed`, never started again.

use gpuspot_e2e::deploy::{Deployments, instances, regular_spec, summary};
use gpuspot_e2e::market::throughout;
use gpuspot_e2e::values::now_nanos;
use gpuspot_e2e::{SOON, cluster, holds, request, s, sh, wait_until};
use serde_json::{Value, json};

const SLEEP: &str = "exec sleep 120";

#[test]
fn fail_on_a_full_pool_fails_at_once_and_a_queued_request_names_its_own_instances() {
    let c = cluster!();
    let _host = c.agent(&c.write_profile("full-h100", "NVIDIA H100 80GB HBM3", 2, 48, 512));
    let first = c.api.create(&request("first", &["H100"], 2, &sh(SLEEP)));
    c.wait_state(s(&first, "id"), "running");

    let mut failing = request("failing", &["H100"], 1, &sh(SLEEP));
    failing["on_unavailable"] = json!("fail");
    let answer = c.api.create(&failing);
    assert_eq!(answer["on_unavailable"], "fail", "{answer}");
    let seen = match s(&answer, "state") {
        "failed" => answer.clone(),
        _ => c.api.instance(s(&answer, "id")),
    };
    assert_eq!(
        s(&seen, "state"),
        "failed",
        "failed at once, in the answer or the first GET: {seen}"
    );
    let reason = s(&seen, "reason");
    assert!(reason.starts_with("out_of_stock: no matching capacity is free now"), "{seen}");
    assert!(reason.contains("full-h100"), "the hostname: {seen}");
    assert!(seen["host_id"].is_null() && seen["started_at"].is_null(), "it never ran: {seen}");

    let queued = c.api.create(&request("patient", &["H100"], 1, &sh(SLEEP)));
    assert_eq!(queued["on_unavailable"], "queue", "the default: {queued}");
    let id = s(&queued, "id").to_owned();
    let waiting = wait_until(SOON, "the queued request to name what holds the host", || {
        let instance = c.api.instance(&id);
        let reason = s(&instance, "reason");
        holds(s(&instance, "state") == "queued" && reason.contains("held by"), || {
            instance.to_string()
        })
        .map(|()| instance)
    });
    let reason = s(&waiting, "reason");
    // The same account holds the host: its own instances are named as such.
    assert!(
        reason.contains("1 matching host (full-h100): 2 units held by your own instances"),
        "{waiting}"
    );
}

#[test]
fn a_bad_on_unavailable_is_refused_naming_the_field() {
    let c = cluster!();
    let mut body = request("bad", &["H100"], 1, &sh(SLEEP));
    body["on_unavailable"] = json!("later");
    let (status, answer) = c.api.post("/v1/instances", &body);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("on_unavailable"), "{answer}");
}

#[test]
fn deleting_a_container_deployments_instance_completes_it_and_nothing_starts_again() {
    let c = cluster!();
    let _host = c.agent(&c.write_profile("box", "NVIDIA H100 80GB HBM3", 2, 48, 512));
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "one-shot", "mode": "container",
        "specs": [regular_spec(&["H100"], 1)],
        "template": { "command": sh(SLEEP) },
    }));
    let id = s(&created, "id").to_owned();
    let run = deps.wait(&id, SOON, "its container running", |d| {
        let running: Vec<Value> =
            instances(d).into_iter().filter(|i| s(i, "state") == "running").collect();
        holds(running.len() == 1, String::new).map(|()| running[0].clone())
    });
    let (status, answer) = c.api.delete(&format!("/v1/instances/{}", s(&run, "id")));
    assert!((200..300).contains(&status), "DELETE: {status} {answer}");

    let ended = deps.wait(&id, SOON, "completed, stopped by user", |d| {
        holds(s(d, "state") == "completed" && s(d, "reason") == "stopped by user", String::new)
            .map(|()| d.clone())
    });
    c.wait_state(s(&run, "id"), "terminated");
    // Several scheduling passes later there is still only the one run, ended.
    let until = now_nanos() + 1_500_000_000;
    throughout(until, "one ended run and no new one", || {
        let d = deps.get(&id);
        let runs = c.api.instances().len();
        holds(s(&d, "state") == "completed" && instances(&d).len() == 1 && runs == 1, || {
            format!("{runs} instances: {}", summary(&d))
        })
    });
    assert_eq!(instances(&ended).len(), 1, "{}", summary(&ended));
}
