//! Lists filter and page on the server (issue 25.9, docs/contracts.md#http-api): `?state=`
//! (comma-separated, an unknown state is a 400 naming it), `?limit=` and `?after=` (the id to
//! continue after, in creation order), with the next page in a `Link: <…>; rel="next"` header, on
//! every list route; and the CLI asks the server for exactly what it shows.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::{Deployments, cli, regular_spec};
use gpuspot_e2e::{Api, Cluster, assert_error, cluster, request, s, sh};
use serde_json::{Value, json};

fn ids(list: &[Value]) -> Vec<String> {
    list.iter().map(|i| s(i, "id").to_owned()).collect()
}

/// `GET path` must answer one page (no `Link` to a next one): its ids.
fn one_page(api: &Api, path: &str) -> Vec<String> {
    let (status, body, next) = api.get_page(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    assert_eq!(next, None, "GET {path}: one page");
    ids(body.as_array().unwrap_or_else(|| panic!("GET {path}: not a list: {body}")))
}

/// Paged `limit` at a time, `path` gives what one big page gives, in the same order, in
/// `pages` pages.
fn pages_cover(api: &Api, path: &str, limit: usize, pages: usize) {
    let join = if path.contains('?') { '&' } else { '?' };
    let whole = one_page(api, &format!("{path}{join}limit=1000"));
    let (paged, taken) = api.all_pages(&format!("{path}{join}limit={limit}"));
    assert_eq!(ids(&paged), whole, "{path} by {limit}");
    assert_eq!(taken, pages, "{path} by {limit}: {} items", whole.len());
}

/// Each bad query answers 400 `invalid_query` naming the parameter (and the bad state).
fn refuses(api: &Api, path: &str, bad: &[(&str, &str)]) {
    for (query, named) in bad {
        let answer = api.get(&format!("{path}?{query}"));
        assert_error(&answer, 400, Some("invalid_query"), &format!("{path}?{query}"));
        let message = answer.1["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(named), "{path}?{query}: {message:?} names {named:?}");
    }
}

struct Scene {
    done: String,
    running: Vec<String>,
    queued: Vec<String>,
    tenant: gpuspot_e2e::billing::Account,
    tenant_queued: String,
}

/// One instance that ended, two running, five queued (the admin's), then a tenant's queued
/// one.
fn set_up(c: &Cluster) -> Scene {
    let create = |api: &Api, name: &str, count: u32, script: &str| {
        s(&api.create(&request(name, &["RTX 4090"], count, &sh(script))), "id").to_owned()
    };
    let done = create(&c.api, "done", 1, "exit 0");
    c.wait_state(&done, "terminated");
    let running: Vec<String> =
        (0..2).map(|n| create(&c.api, &format!("run-{n}"), 1, "exec sleep 600")).collect();
    for id in &running {
        c.wait_state(id, "running");
    }
    let queued = (0..5).map(|n| create(&c.api, &format!("big-{n}"), 9, "true")).collect();
    let tenant = create_account(&c.api, "tenant");
    tenant.pay(&c.api, "10.00");
    let tenant_queued = create(&tenant.api, "theirs", 9, "true");
    Scene { done, running, queued, tenant, tenant_queued }
}

#[test]
fn lists_filter_by_state_and_page_on_the_server() {
    let c = cluster!();
    let _agent = c.agent(&c.write_profile("box", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    c.wait_host("box", "connected");
    let scene = set_up(&c);
    let mut all_queued = scene.queued.clone();
    all_queued.push(scene.tenant_queued.clone());
    assert_eq!(one_page(&c.api, "/v1/instances?state=queued"), all_queued, "creation order");
    let mut ended_or_running = vec![scene.done.clone()];
    ended_or_running.extend(scene.running.iter().cloned());
    assert_eq!(one_page(&c.api, "/v1/instances?state=running,terminated"), ended_or_running);
    pages_cover(&c.api, "/v1/instances", 2, 5);
    pages_cover(&c.api, "/v1/instances?state=queued", 4, 2);
    let after = one_page(&c.api, &format!("/v1/instances?after={}", scene.running[1]));
    assert_eq!(after, all_queued, "after the second running one come the queued ones");
    assert_eq!(one_page(&scene.tenant.api, "/v1/instances"), [scene.tenant_queued.as_str()]);
    let foreign = format!("/v1/instances?after={}", scene.done);
    assert_error(&scene.tenant.api.get(&foreign), 400, Some("invalid_query"), "another's id");
    refuses(
        &c.api,
        "/v1/instances",
        &[
            ("state=queued,bogus", "bogus"),
            ("state=", "state"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=two", "limit"),
            ("after=i-nope", "after"),
            ("colour=red", "colour"),
        ],
    );
    other_lists_page_too(&c, &scene);
    cli_asks_the_server(&c, &scene, &all_queued);
}

/// Deployments, hosts, accounts, snapshots, messages and the ledger take the same queries.
fn other_lists_page_too(c: &Cluster, scene: &Scene) {
    let deployments = Deployments::new(&c.api);
    let body = |name: &str| {
        json!({ "name": name, "mode": "replicaset", "replicas": 1,
                "specs": [regular_spec(&["RTX 4090"], 9)], "template": { "command": ["true"] } })
    };
    let gone = s(&deployments.create(&body("gone")), "id").to_owned();
    let waiting = s(&deployments.create(&body("waiting")), "id").to_owned();
    assert_eq!(c.api.delete(&format!("/v1/deployments/{gone}")).0, 200);
    assert_eq!(one_page(&c.api, "/v1/deployments?state=deleted"), [gone.as_str()]);
    assert_eq!(one_page(&c.api, "/v1/deployments?state=waiting,running"), [waiting]);
    pages_cover(&c.api, "/v1/deployments", 1, 2);
    refuses(&c.api, "/v1/deployments", &[("state=sleeping", "sleeping"), ("after=d-x", "after")]);

    assert_eq!(one_page(&c.api, "/v1/hosts?state=connected").len(), 1);
    assert_eq!(one_page(&c.api, "/v1/hosts?state=lost,cordoned").len(), 0);
    refuses(&c.api, "/v1/hosts", &[("state=happy", "happy"), ("limit=-1", "limit")]);

    pages_cover(&c.api, "/v1/accounts", 1, 2);
    refuses(&c.api, "/v1/accounts", &[("state=x", "state"), ("after=a-x", "after")]);
    pages_cover(&c.api, "/v1/snapshots", 1, 1);
    refuses(&c.api, "/v1/snapshots", &[("limit=0", "limit")]);

    scene.tenant.pay(&c.api, "1.00");
    scene.tenant.pay(&c.api, "2.00");
    let ledger = format!("/v1/accounts/{}/ledger", scene.tenant.id);
    pages_cover(&scene.tenant.api, &ledger, 1, 3);
    refuses(&scene.tenant.api, &ledger, &[("after=first", "after"), ("limit=100001", "limit")]);
    let messages = scene.tenant.api.get_ok("/v1/messages?limit=1000");
    let count = messages.as_array().map_or(0, Vec::len);
    pages_cover(&scene.tenant.api, "/v1/messages", 1, count.max(1));
    refuses(&scene.tenant.api, "/v1/messages", &[("limit=0", "limit"), ("after=m-x", "after")]);
}

/// `instances list` asks for the states it shows and follows pages for `--all`.
fn cli_asks_the_server(c: &Cluster, scene: &Scene, all_queued: &[String]) {
    let Some(queued) = cli(&c.api, &["instances", "list", "--state", "queued"]) else { return };
    assert_eq!(ids(queued.as_array().expect("a list")), all_queued);
    let live = cli(&c.api, &["instances", "list"]).expect("built");
    let mut expected = scene.running.clone();
    expected.extend(all_queued.iter().cloned());
    assert_eq!(ids(live.as_array().expect("a list")), expected, "ended ones are hidden");
    let all = cli(&c.api, &["instances", "list", "--all", "--chunk-size", "2"]).expect("built");
    assert_eq!(all.as_array().map(Vec::len), Some(9), "every page: {all}");
    let two = cli(&c.api, &["instances", "list", "--all", "--limit", "2"]).expect("built");
    assert_eq!(
        ids(two.as_array().expect("a list")),
        [scene.done.clone(), scene.running[0].clone()]
    );
}
