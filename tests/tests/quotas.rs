//! Quotas (docs/contracts.md#failures-and-quotas, seed 001's "excessive number"): the admin limits
//! how many GPUs and instances an account holds at once, queued ones included; a request past a
//! limit is refused with 403 `quota_exceeded` naming the limit, and the account shows its quota and
//! usage. `[accounts]` in the config sets the default.

use gpuspot_e2e::billing::{Account, create_account};
use gpuspot_e2e::deploy::regular_spec;
use gpuspot_e2e::market::patch;
use gpuspot_e2e::{Api, Cluster, assert_error, cluster, request, s, sh};
use serde_json::{Value, json};

const SLEEP: &str = "exec sleep 300";

fn set_quota(admin: &Api, account: &Account, quota: Value) -> Value {
    let (status, body) =
        patch(admin, &format!("/v1/accounts/{}", account.id), &json!({ "quota": quota }));
    assert_eq!(status, 200, "PATCH quota {quota}: {body}");
    body
}

fn one_gpu(name: &str) -> Value {
    request(name, &["RTX 5090"], 1, &sh(SLEEP))
}

/// Asserts a 403 `quota_exceeded` whose message names `limit`.
fn assert_past_quota(answer: &(u16, Value), limit: &str, what: &str) {
    assert_error(answer, 403, Some("quota_exceeded"), what);
    let message = s(&answer.1["error"], "message");
    assert!(message.contains(limit), "{what}: the message does not name {limit}: {message}");
}

#[test]
fn a_quota_of_two_gpus_refuses_the_third_and_the_account_shows_its_usage() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let acme = create_account(&c.api, "acme");
    acme.pay(&c.api, "100.00");
    let shown = set_quota(&c.api, &acme, json!({ "max_gpus": 2 }));
    assert_eq!(shown["quota"], json!({ "max_gpus": 2, "max_instances": null }), "{shown}");
    assert_eq!(shown["usage"], json!({ "gpus": 0, "instances": 0 }), "{shown}");

    let first = s(&acme.api.create(&one_gpu("first")), "id").to_owned();
    let second = s(&acme.api.create(&one_gpu("second")), "id").to_owned();
    c.wait_state(&first, "running");
    c.wait_state(&second, "running");
    let answer = acme.api.post("/v1/instances", &one_gpu("third"));
    assert_past_quota(&answer, "max_gpus of 2", "a third GPU");
    assert_eq!(
        s(&answer.1["error"], "message"),
        "quota_exceeded: 3 GPUs would pass the account's max_gpus of 2"
    );
    let (status, listed) = acme.api.get("/v1/instances");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "nothing was created: {listed}");
    let shown = acme.show();
    assert_eq!(shown["usage"], json!({ "gpus": 2, "instances": 2 }), "{shown}");

    // A deployment that could never fit is refused the same way.
    let deployment = json!({
        "name": "web", "mode": "replicaset", "replicas": 3,
        "specs": [regular_spec(&["RTX 5090"], 1)],
        "template": { "command": sh(SLEEP) },
    });
    let answer = acme.api.post("/v1/deployments", &deployment);
    assert_past_quota(&answer, "max_gpus of 2", "a deployment of 3 GPUs");

    // Once one ends, a GPU is free under the quota again.
    assert_eq!(acme.api.delete(&format!("/v1/instances/{first}")).0, 200);
    c.wait_state(&first, "terminated");
    let third = s(&acme.api.create(&one_gpu("third")), "id").to_owned();
    c.wait_state(&third, "running");
    assert_eq!(acme.show()["usage"], json!({ "gpus": 2, "instances": 2 }));
}

#[test]
fn max_instances_counts_queued_instances_and_the_list_shows_quotas() {
    // No agent: every instance stays queued, and queued instances count.
    let c = cluster!();
    let acme = create_account(&c.api, "acme");
    set_quota(&c.api, &acme, json!({ "max_instances": 1 }));
    let queued = acme.api.create(&request("big", &["RTX 5090"], 4, &sh(SLEEP)));
    assert_eq!(s(&queued, "state"), "queued", "{queued}");
    let answer = acme.api.post("/v1/instances", &one_gpu("second"));
    assert_past_quota(&answer, "max_instances of 1", "a second instance");

    let listed = c.api.get_ok("/v1/accounts");
    let row = listed
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == acme.id.as_str()))
        .unwrap_or_else(|| panic!("acme is not listed: {listed}"));
    assert_eq!(row["quota"], json!({ "max_gpus": null, "max_instances": 1 }), "{row}");
    assert_eq!(row["usage"], json!({ "gpus": 4, "instances": 1 }), "{row}");

    // null clears the limit.
    let shown = set_quota(&c.api, &acme, json!({ "max_instances": null }));
    assert_eq!(shown["quota"], json!({ "max_gpus": null, "max_instances": null }), "{shown}");
    acme.api.create(&one_gpu("second"));
}

#[test]
fn the_configured_default_applies_to_accounts_without_their_own_quota() {
    let config = format!("{}\n[accounts]\ndefault_max_gpus = 1\n", gpuspot_e2e::TEST_CONFIG);
    let c = cluster!(&config);
    let acme = create_account(&c.api, "acme");
    let shown = acme.show();
    assert_eq!(shown["quota"], json!({ "max_gpus": 1, "max_instances": null }), "{shown}");
    let two = request("two", &["RTX 5090"], 2, &sh(SLEEP));
    assert_past_quota(&acme.api.post("/v1/instances", &two), "max_gpus of 1", "2 GPUs");

    // The operator is unlimited whatever the default.
    let operator = c.api.create(&two);
    assert!(operator["id"].is_string(), "{operator}");

    // The admin's own quota wins; `"quota": null` goes back to the default.
    set_quota(&c.api, &acme, json!({ "max_gpus": 2 }));
    acme.api.create(&two);
    let shown = set_quota(&c.api, &acme, Value::Null);
    assert_eq!(shown["quota"], json!({ "max_gpus": 1, "max_instances": null }), "{shown}");
    assert_eq!(shown["usage"], json!({ "gpus": 2, "instances": 1 }), "{shown}");
}

#[test]
fn only_the_admin_sets_a_quota() {
    let c = cluster!();
    let acme = create_account(&c.api, "acme");
    let me = format!("/v1/accounts/{}", acme.id);
    let answer = patch(&acme.api, &me, &json!({ "quota": { "max_gpus": 1000 } }));
    assert_error(&answer, 403, Some("forbidden"), "an account sets its own quota");
    let unchanged = acme.show();
    assert_eq!(unchanged["quota"], json!({ "max_gpus": null, "max_instances": null }));

    let answer = patch(&c.api, &me, &json!({ "quota": { "max_gpu": 1 } }));
    assert_error(&answer, 400, None, "an unknown quota key");
    let answer = patch(&c.api, &me, &json!({ "quota": { "max_gpus": -1 } }));
    assert_error(&answer, 400, None, "a negative limit");
    let answer = patch(&c.api, "/v1/accounts/a-operator", &json!({ "quota": { "max_gpus": 1 } }));
    assert_error(&answer, 409, Some("conflict"), "the operator account stays unlimited");
    assert!(acme.show()["quota"]["max_gpus"].is_null(), "the refused changes changed nothing");
}
