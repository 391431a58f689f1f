//! Deployment names (docs/contracts.md#serving, issue 24 hole 9): the gateway routes `/d/{name}`
//! without regard to case, so a name is unique among live deployments whatever its case, and a
//! trailing dot is refused; the API resolves a name for the account that owns it (an id keeps
//! working), never for another, and tells the admin when a name is several accounts'.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::regular_spec;
use gpuspot_e2e::{TEST_CONFIG, assert_error, cluster, s};
use serde_json::{Value, json};

fn body(name: &str) -> Value {
    json!({ "name": name, "mode": "replicaset", "replicas": 1,
            "specs": [regular_spec(&["RTX 4090"], 1)], "template": { "command": ["true"] } })
}

#[test]
fn names_differing_in_case_or_a_trailing_dot_cannot_coexist() {
    let c = cluster!(&format!("{TEST_CONFIG}\n[gateway]\nlisten = \"127.0.0.1:0\"\n"));
    let (bob, mallory) = (create_account(&c.api, "bob"), create_account(&c.api, "mallory"));
    for account in [&bob, &mallory] {
        account.pay(&c.api, "50.00");
    }
    let (status, first) = bob.api.post("/v1/deployments", &body("bobweb"));
    assert_eq!(status, 202, "{first}");
    for (account, name) in [(&mallory, "BOBWEB"), (&mallory, "BobWeb"), (&bob, "BOBWEB")] {
        let answer = account.api.post("/v1/deployments", &body(name));
        assert_error(&answer, 409, Some("name_taken"), &format!("{name} by {}", account.name));
    }
    for name in ["bobweb.", "BOBWEB.", "a."] {
        let answer = mallory.api.post("/v1/deployments", &body(name));
        assert_error(&answer, 400, Some("invalid_request"), &format!("name {name:?}"));
        assert!(s(&answer.1["error"], "message").contains("name"), "{}", answer.1);
    }
    let (_, list) = c.api.get("/v1/deployments");
    let names: Vec<&str> = list.as_array().expect("list").iter().map(|d| s(d, "name")).collect();
    assert_eq!(names, ["bobweb"], "only the first stands");
}

#[test]
fn the_owner_reads_and_changes_a_deployment_by_its_name_and_nobody_else_does() {
    let c = cluster!();
    let (bob, mallory) = (create_account(&c.api, "bob"), create_account(&c.api, "mallory"));
    for account in [&bob, &mallory] {
        account.pay(&c.api, "50.00");
    }
    let (status, created) = bob.api.post("/v1/deployments", &body("bobweb"));
    assert_eq!(status, 202, "{created}");
    let id = s(&created, "id").to_owned();

    for path in
        ["/v1/deployments/bobweb", "/v1/deployments/BobWeb", &format!("/v1/deployments/{id}")]
    {
        let (status, shown) = bob.api.get(path);
        assert_eq!((status, s(&shown, "id")), (200, id.as_str()), "GET {path}: {shown}");
    }
    let (status, scaled) = bob.api.patch("/v1/deployments/bobweb", &json!({ "replicas": 2 }));
    assert_eq!((status, scaled["replicas"].as_u64()), (200, Some(2)), "PATCH by name: {scaled}");
    let (status, endpoints) = bob.api.get("/v1/deployments/bobweb/endpoints");
    assert_eq!(status, 200, "endpoints by name: {endpoints}");

    assert_error(&mallory.api.get("/v1/deployments/bobweb"), 404, None, "another account's name");
    let patched = mallory.api.patch("/v1/deployments/bobweb", &json!({ "replicas": 0 }));
    assert_error(&patched, 404, None, "another account's PATCH by name");
    assert_error(&mallory.api.delete("/v1/deployments/bobweb"), 404, None, "DELETE by name");
    assert_eq!(c.api.get("/v1/deployments/bobweb").0, 200, "the admin: one account's");

    let (status, deleted) = bob.api.delete("/v1/deployments/bobweb");
    assert_eq!((status, s(&deleted, "id")), (200, id.as_str()), "DELETE by name: {deleted}");
    let (status, theirs) = mallory.api.post("/v1/deployments", &body("BobWeb"));
    assert_eq!(status, 202, "a deleted deployment's name is free again: {theirs}");
    let (status, mine) = mallory.api.get("/v1/deployments/bobweb");
    assert_eq!((status, s(&mine, "id")), (200, s(&theirs, "id")), "{mine}");
    let (status, old) = bob.api.get("/v1/deployments/bobweb");
    assert_eq!((status, s(&old, "state")), (200, "deleted"), "the owner's own, ended: {old}");
    let ambiguous = c.api.get("/v1/deployments/bobweb");
    assert_error(&ambiguous, 409, Some("ambiguous_name"), "the admin: two accounts' names");
    let message = s(&ambiguous.1["error"], "message");
    assert!(message.contains(&id) && message.contains(s(&theirs, "id")), "{message}");
}
