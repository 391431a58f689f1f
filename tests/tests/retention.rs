//! Retention (docs/contracts.md#retention, issue 24 hole 3): a request that never ran (`failed`)
//! counts against its account's quota while it is kept and is forgotten after `[retention] failed`;
//! ended instances go after `ended`, events (and their inbox messages) after `events`, the ledger
//! never; each account keeps at most `max_ended_per_account` ended records and
//! `max_events_per_account` events; a DELETE forgets a failed request at once; and a data dir
//! holding rows past their retention is pruned as the coordinator starts. A deleted deployment goes
//! after `ended` too, with its instances, for good; a live one stays. The retentions come from the
//! config, so a day runs as a second or two.

use gpuspot_e2e::billing::{Account, charged, create_account};
use gpuspot_e2e::deploy::regular_spec;
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::market::patch;
use gpuspot_e2e::{Api, wait_until};
use gpuspot_e2e::{Cluster, SOON, TEST_CONFIG, assert_error, cluster, holds, request, s, sh};
use serde_json::{Value, json};

const SLEEP: &str = "exec sleep 300";

fn config(retention: &str) -> String {
    format!("{TEST_CONFIG}\n[retention]\n{retention}\n")
}

/// A one-GPU request that fails at once when nothing can take it (no agent in these tests).
fn failing(name: &str) -> Value {
    let mut body = request(name, &["RTX 5090"], 1, &sh(SLEEP));
    body["on_unavailable"] = json!("fail");
    body
}

fn create_failed(account: &Account, name: &str) -> String {
    let (status, answer) = account.api.post("/v1/instances", &failing(name));
    assert_eq!(status, 202, "POST {name}: {answer}");
    let id = s(&answer, "id").to_owned();
    let state = s(&account.api.instance(&id), "state").to_owned();
    assert_eq!(state, "failed", "{name} never ran: {answer}");
    id
}

fn status_of(api: &Api, id: &str) -> u16 {
    api.get(&format!("/v1/instances/{id}")).0
}

fn listed_ids(api: &Api) -> Vec<String> {
    api.instances().iter().map(|i| s(i, "id").to_owned()).collect()
}

fn wait_forgotten(api: &Api, id: &str, what: &str) {
    wait_until(SOON, what, || {
        let (status, body) = api.get(&format!("/v1/instances/{id}"));
        holds(status == 404 && !listed_ids(api).contains(&id.to_owned()), || {
            format!("{status} {body}")
        })
    });
}

#[test]
fn a_failed_request_counts_against_the_quota_until_it_is_pruned() {
    let c = cluster!(&config("failed = \"3s\"\nended = \"1h\""));
    let acme = create_account(&c.api, "acme");
    let path = format!("/v1/accounts/{}", acme.id);
    let (status, body) = patch(&c.api, &path, &json!({ "quota": { "max_instances": 1 } }));
    assert_eq!(status, 200, "{body}");

    let first = create_failed(&acme, "first");
    assert_eq!(acme.show()["usage"], json!({ "gpus": 1, "instances": 1 }), "it is held");
    let answer = acme.api.post("/v1/instances", &failing("second"));
    assert_error(&answer, 403, Some("quota_exceeded"), "a second request while one failed");
    let message = s(&answer.1["error"], "message");
    assert!(message.contains("max_instances of 1"), "{message}");
    assert_eq!(listed_ids(&acme.api), vec![first.clone()], "nothing new was created");

    wait_forgotten(&acme.api, &first, "the failed request to be pruned after `failed`");
    assert_eq!(acme.show()["usage"], json!({ "gpus": 0, "instances": 0 }), "freed");
    let again = create_failed(&acme, "again");
    assert_ne!(again, first);

    // Its owner need not wait: a DELETE forgets a request that never ran at once.
    let (status, body) = acme.api.delete(&format!("/v1/instances/{again}"));
    assert_eq!((status, s(&body, "state")), (200, "failed"), "{body}");
    assert_eq!(status_of(&acme.api, &again), 404);
    assert_eq!(acme.show()["usage"], json!({ "gpus": 0, "instances": 0 }), "freed at once");
    create_failed(&acme, "after the delete");
}

#[test]
fn ended_instances_and_their_events_go_but_the_ledger_stays() {
    let c = cluster!(&config("ended = \"2s\"\nevents = \"3s\""));
    let _host = c.agent(&Cluster::seed_profile("host-a"));
    let acme = create_account(&c.api, "acme");
    acme.pay(&c.api, "100.00");
    // From the start (a replay, then live): a stream from now on may connect only after
    // the instance was created, and miss its first event.
    let mut live = EventStream::open(&acme.api, Some(0));
    let id = s(&acme.api.create(&request("run", &["RTX 5090"], 1, &sh(SLEEP))), "id").to_owned();
    c.wait_state(&id, "running");
    let created = live.wait_for(SOON, "instance_created", |e| e.is("instance_created", &id));
    wait_until(SOON, "a charge for the run", || {
        let paid = charged(&acme.ledger(), &id);
        holds(paid > 0, || format!("charged {paid}"))
    });
    assert_eq!(acme.api.delete(&format!("/v1/instances/{id}")).0, 200);
    c.wait_state(&id, "terminated");
    let ended = live.wait_for(SOON, "instance_terminated", |e| e.is("instance_terminated", &id));

    wait_forgotten(&acme.api, &id, "the ended instance to be pruned after `ended`");
    let ledger = acme.ledger();
    assert!(charged(&ledger, &id) > 0, "the ledger keeps the run's charges: {ledger:?}");
    assert!(ledger.iter().any(|e| s(e, "kind") == "payment"), "{ledger:?}");

    // A replay from the start shows nothing of the old run once `events` has passed: its
    // first event is newer than the run's end (a fresh payment makes sure there is one).
    wait_until(SOON, "the run's events to be pruned after `events`", || {
        acme.pay(&c.api, "0.01");
        let mut replay = EventStream::open(&acme.api, Some(0));
        let first = replay.next(SOON).expect("the fresh payment at least");
        holds(first.id > ended.id, || format!("replay starts at {} {}", first.id, first.kind))
    });
    assert!(created.id < ended.id);
    let ledger = acme.ledger();
    assert!(charged(&ledger, &id) > 0, "the ledger is never pruned: {ledger:?}");
}

#[test]
fn each_account_keeps_at_most_its_newest_ended_records() {
    let c = cluster!(&config("failed = \"1h\"\nmax_ended_per_account = 3"));
    let acme = create_account(&c.api, "acme");
    let other = create_account(&c.api, "other");
    let theirs = create_failed(&other, "theirs");
    let ids: Vec<String> = (0..5).map(|n| create_failed(&acme, &format!("f{n}"))).collect();
    wait_until(SOON, "acme to keep only its 3 newest failed requests", || {
        let mut kept = listed_ids(&acme.api);
        kept.sort();
        let mut newest = ids[2..].to_vec();
        newest.sort();
        holds(kept == newest, || format!("kept {kept:?}, want {newest:?}"))
    });
    for old in &ids[..2] {
        assert_eq!(status_of(&acme.api, old), 404, "{old} was the oldest");
    }
    assert_eq!(acme.show()["usage"]["instances"], 3);
    assert_eq!(status_of(&other.api, &theirs), 200, "another account's record stays");
}

#[test]
fn rows_past_their_retention_are_pruned_when_the_coordinator_starts() {
    let mut c = cluster!(&config("failed = \"1h\""));
    let acme = create_account(&c.api, "acme");
    let id = create_failed(&acme, "old");
    let ended_at: chrono::DateTime<chrono::Utc> =
        s(&acme.api.instance(&id), "ended_at").parse().expect("ended_at");
    let path = c.dir().join("coordinator.toml");
    let write_config = |retention: &str| std::fs::write(&path, config(retention)).expect("config");
    c.coordinator.terminate(SOON);
    write_config("failed = \"1s\"");
    wait_until(SOON, "the failed request to be older than 1s", || {
        holds(chrono::Utc::now() > ended_at + chrono::Duration::seconds(1), String::new)
    });
    c.coordinator.start_again();
    assert_eq!(status_of(&acme.api, &id), 404, "pruned before the first request is answered");
    assert!(listed_ids(&acme.api).is_empty());

    // Gone from the data dir too: a longer retention does not bring it back.
    c.coordinator.terminate(SOON);
    write_config("failed = \"1h\"");
    c.coordinator.start_again();
    assert_eq!(status_of(&acme.api, &id), 404, "deleted for good");
    assert_eq!(acme.show()["usage"], json!({ "gpus": 0, "instances": 0 }));
}

#[test]
fn an_account_keeps_at_most_its_newest_events_whatever_their_age() {
    let c = cluster!(&config("max_events_per_account = 20"));
    let acme = create_account(&c.api, "acme");
    let other = create_account(&c.api, "other");
    other.pay(&c.api, "1.00");
    for _ in 0..60 {
        acme.pay(&c.api, "0.01");
    }
    acme.pay(&c.api, "0.02");
    let mut replay = EventStream::open(&acme.api, Some(0));
    let mut kept = Vec::new();
    let newest = loop {
        let event = replay.next(SOON).expect("the replay reaches the newest payment");
        if event.kind == "price_changed" {
            continue; // public, no account's
        }
        kept.push(event.clone());
        if event.kind == "payment" && event.data()["amount"] == json!("0.02") {
            break event;
        }
    };
    // Trimmed back to 20 whenever it passes 22 (a tenth of slack makes a trim rare).
    assert!((20..=22).contains(&kept.len()), "acme kept {} events: {kept:?}", kept.len());
    assert_eq!(kept.last().map(|e| e.id), Some(newest.id));
    let mut theirs = EventStream::open(&other.api, Some(0));
    let first = theirs.wait_for(SOON, "other's first own event", |e| e.kind != "price_changed");
    assert_eq!(first.kind, "account_created", "another account keeps its oldest: {first:?}");
    assert_eq!(acme.ledger().len(), 61, "the ledger keeps every payment");
}

fn deployment(account: &Account, name: &str) -> (String, Vec<String>) {
    let body = json!({ "name": name, "mode": "replicaset", "replicas": 1,
            "specs": [regular_spec(&["RTX 4090"], 1)], "template": { "command": sh(SLEEP) } });
    let (status, created) = account.api.post("/v1/deployments", &body);
    assert_eq!(status, 202, "POST deployment {name}: {created}");
    let id = s(&created, "id").to_owned();
    let (status, view) = account.api.get(&format!("/v1/deployments/{id}"));
    assert_eq!(status, 200, "{view}");
    let instances = view["instances"].as_array().expect("instances").iter();
    (id, instances.map(|i| s(i, "id").to_owned()).collect())
}

/// A deployment that never got an instance (nothing can take it), deleted at once.
fn deleted_deployment(account: &Account, name: &str) -> String {
    let (id, instances) = deployment(account, name);
    assert!(instances.is_empty(), "no host: {instances:?}");
    assert_eq!(account.api.delete(&format!("/v1/deployments/{id}")).0, 200);
    id
}

fn listed_deployments(api: &Api) -> Vec<String> {
    let (status, list) = api.get("/v1/deployments");
    assert_eq!(status, 200, "{list}");
    list.as_array().expect("a list").iter().map(|d| s(d, "id").to_owned()).collect()
}

#[test]
fn deleted_deployments_are_forgotten_after_ended_for_good_and_live_ones_stay() {
    let mut c = cluster!(&config("ended = \"2s\""));
    let _host = c.agent(&c.write_profile("host-a", "RTX 4090", 1, 8, 64));
    let acme = create_account(&c.api, "acme");
    acme.pay(&c.api, "100.00");
    let (gone, replicas) = deployment(&acme, "gone");
    assert_eq!(replicas.len(), 1, "its replica takes the one GPU");
    c.wait_state(&replicas[0], "running");
    let (by_name, waiting) = deployment(&acme, "ByName");
    assert!(waiting.is_empty(), "no GPU is left for it");
    assert_eq!(acme.api.delete("/v1/deployments/byname").0, 200);
    let (live, _) = deployment(&acme, "live");
    assert_eq!(acme.api.delete(&format!("/v1/deployments/{gone}")).0, 200);
    assert_eq!(s(&acme.api.get(&format!("/v1/deployments/{gone}")).1, "state"), "deleted");
    c.wait_state(&replicas[0], "terminated");

    wait_until(SOON, "the deleted deployments to be forgotten after `ended`", || {
        let listed = listed_deployments(&acme.api);
        let answers = [&gone, &by_name].map(|id| acme.api.get(&format!("/v1/deployments/{id}")).0);
        holds(answers == [404, 404] && listed == vec![live.clone()], || {
            format!("GET {answers:?}, listed {listed:?}")
        })
    });
    assert_eq!(acme.api.get("/v1/deployments/ByName").0, 404, "nor by its name");
    assert_eq!(status_of(&acme.api, &replicas[0]), 404, "its replica went with it");
    assert_eq!(acme.api.get(&format!("/v1/deployments/{live}")).0, 200, "live: kept");

    // Gone from the data dir too: a longer retention after a restart does not bring it back.
    c.coordinator.terminate(SOON);
    std::fs::write(c.dir().join("coordinator.toml"), config("ended = \"1h\"")).expect("config");
    c.coordinator.start_again();
    for id in [&gone, &by_name] {
        assert_eq!(acme.api.get(&format!("/v1/deployments/{id}")).0, 404, "{id}: for good");
    }
    assert_eq!(listed_deployments(&acme.api), vec![live]);
    assert_eq!(status_of(&acme.api, &replicas[0]), 404);
}

#[test]
fn each_account_keeps_at_most_its_newest_final_deployments() {
    let c = cluster!(&config("ended = \"1h\"\nmax_ended_per_account = 3"));
    let acme = create_account(&c.api, "acme");
    let other = create_account(&c.api, "other");
    let theirs = deleted_deployment(&other, "theirs");
    // The loop a tenant could run forever: create and delete, again and again.
    let ids: Vec<String> = (0..20).map(|n| deleted_deployment(&acme, &format!("d{n}"))).collect();
    wait_until(SOON, "acme to keep only its 3 newest final deployments", || {
        let mut kept = listed_deployments(&acme.api);
        kept.sort();
        let mut newest = ids[17..].to_vec();
        newest.sort();
        holds(kept == newest, || format!("kept {kept:?}, want {newest:?}"))
    });
    assert_eq!(acme.api.get(&format!("/v1/deployments/{}", ids[0])).0, 404);
    assert_eq!(acme.api.get("/v1/deployments/d16").0, 404, "nor by its name");
    assert_eq!(other.api.get(&format!("/v1/deployments/{theirs}")).0, 200, "theirs stays");
    let db = rusqlite::Connection::open(c.coordinator.data_dir.join("gpuspot.db")).expect("db");
    wait_until(SOON, "the table to hold acme's 3 and theirs, not the 21 made", || {
        let rows: i64 =
            db.query_row("SELECT COUNT(*) FROM deployments", [], |r| r.get(0)).expect("count");
        holds(rows == 4, || format!("{rows} rows"))
    });
}
