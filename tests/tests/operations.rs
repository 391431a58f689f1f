//! Operating hosts (DESIGN §19): a cordoned host takes no placements until uncordoned; a
//! drain gives everything on a host a `host_maintenance` notice within its deadline while
//! the replica set's replacements run elsewhere, none lost, and the host ends `drained`;
//! a backup taken while running restores into a new data dir.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::{Deployments, host_id, in_state, live, regular_spec};
use gpuspot_e2e::{Coordinator, SOON, assert_error, binaries, cluster, holds, request, s, sh};
use serde_json::json;
use std::collections::BTreeSet;

#[test]
fn a_cordoned_host_gets_no_placements_until_it_is_uncordoned() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("only", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let a = host_id(&c, "only");
    let (status, host) = c.api.post(&format!("/v1/hosts/{a}/cordon"), &json!({}));
    assert_eq!((status, s(&host, "state")), (200, "cordoned"), "{host}");
    let queued = c.api.create(&request("waits", &["RTX 4090"], 1, &sh("sleep 60")));
    let id = s(&queued, "id").to_owned();
    let waiting = c.wait_state(&id, "queued");
    assert!(
        s(&waiting, "reason").contains("is cordoned"),
        "the reason names the cordon: {waiting}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(s(&c.api.instance(&id), "state"), "queued", "still not placed on the cordoned host");
    let (status, host) = c.api.post(&format!("/v1/hosts/{a}/uncordon"), &json!({}));
    assert_eq!((status, s(&host, "state")), (200, "connected"), "{host}");
    let running = c.wait_state(&id, "running");
    assert_eq!(s(&running, "host_id"), a);
    assert_error(&c.api.post("/v1/hosts/h-nope/cordon", &json!({})), 404, None, "unknown host");
    let bad = c.api.post(&format!("/v1/hosts/{a}/drain"), &json!({ "deadline": "soon" }));
    assert_error(&bad, 400, Some("invalid_request"), "a deadline that is no duration");
}

#[test]
fn a_drain_moves_a_replica_sets_replicas_to_other_hosts_with_notice_and_none_is_lost() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("old", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "svc", "mode": "replicaset", "replicas": 2,
        "specs": [regular_spec(&["RTX 4090"], 1)],
        "template": { "command": sh("exec sleep 120") },
    }));
    let id = s(&created, "id").to_owned();
    let old = host_id(&c, "old");
    let first = deps.wait(&id, SOON, "2 replicas on the old host", |d| {
        let running = in_state(d, "running");
        holds(running.len() == 2, String::new).map(|()| running)
    });
    let _b = c.agent(&c.write_profile("new", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let new = host_id(&c, "new");
    let before = chrono::Utc::now();
    let (status, host) =
        c.api.post(&format!("/v1/hosts/{old}/drain"), &json!({ "deadline": "2s" }));
    assert_eq!((status, s(&host, "state")), (200, "draining"), "{host}");
    for replica in &first {
        let noticed = c.api.instance(s(replica, "id"));
        assert_eq!(s(&noticed, "state"), "termination_scheduled", "{noticed}");
        assert_eq!(s(&noticed, "termination_reason"), "host_maintenance", "{noticed}");
        let at: chrono::DateTime<chrono::Utc> = s(&noticed, "termination_time").parse().unwrap();
        assert!(at <= before + chrono::Duration::seconds(3), "within the deadline: {at}");
    }
    let moved = deps.wait(&id, SOON, "2 replicas running on the new host", |d| {
        let running = in_state(d, "running");
        let on_new = running.iter().all(|i| s(i, "host_id") == new);
        holds(running.len() == 2 && on_new && live(d).len() == 2, String::new).map(|()| running)
    });
    for replica in &first {
        let ended = c.wait_state(s(replica, "id"), "terminated");
        assert_eq!(s(&ended, "termination_reason"), "host_maintenance", "{ended}");
    }
    c.wait_host("old", "drained");
    let ids = |list: &[serde_json::Value]| -> BTreeSet<String> {
        list.iter().map(|i| s(i, "id").to_owned()).collect()
    };
    assert!(ids(&moved).is_disjoint(&ids(&first)), "replacements, not the drained replicas");
    let d = deps.get(&id);
    assert_eq!(s(&d, "state"), "running", "{d}");
}

#[test]
fn a_backup_taken_while_running_restores_into_a_new_data_dir_with_the_same_instances_and_balances()
{
    let c = cluster!();
    let _a = c.agent(&c.write_profile("box", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let acme = create_account(&c.api, "acme");
    acme.pay(&c.api, "25.00");
    let running = c.api.create(&request("kept", &["RTX 4090"], 1, &sh("sleep 120")));
    c.wait_state(s(&running, "id"), "running");
    let file = c.dir().join("backup.db");
    let output = std::process::Command::new(binaries!().coordinator)
        .arg("--data-dir")
        .arg(&c.coordinator.data_dir)
        .args(["backup", "--to"])
        .arg(&file)
        .output()
        .expect("run the backup");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let again = std::process::Command::new(binaries!().coordinator)
        .arg("--data-dir")
        .arg(&c.coordinator.data_dir)
        .args(["backup", "--to"])
        .arg(&file)
        .output()
        .expect("run the backup");
    assert!(!again.status.success(), "an existing file is never overwritten");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let dir = c.dir().join("restored");
    std::fs::create_dir_all(dir.join("coordinator-data")).unwrap();
    std::fs::copy(&file, dir.join("coordinator-data/gpuspot.db")).unwrap();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let restored = Coordinator::start(&binaries!().coordinator, &dir, logs);
    let api = restored.api();
    let names = |list: Vec<serde_json::Value>| -> BTreeSet<String> {
        list.iter().map(|i| format!("{} {}", s(i, "id"), s(i, "name"))).collect()
    };
    assert_eq!(names(api.instances()), names(c.api.instances()), "the same instances");
    let balance = |api: &gpuspot_e2e::Api| {
        api.get_ok(&format!("/v1/accounts/{}", acme.id))["balance"].clone()
    };
    assert_eq!(balance(&api), balance(&c.api), "the same balance");
    assert_eq!(balance(&api), "25.00", "the payment is in the copy");
}
