//! Operating hosts (docs/contracts.md#operating-hosts): a cordoned host takes no placements until
//! uncordoned; a drain gives everything on a host a `host_maintenance` notice within its deadline
//! while the replica set's replacements run elsewhere, none lost, and the host ends `drained`; a
//! backup taken while running restores into a new data dir.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::{Deployments, host_id, in_state, live, regular_spec};
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::market::throughout;
use gpuspot_e2e::values::now_nanos;
use gpuspot_e2e::{
    Coordinator, SOON, assert_error, binaries, cluster, holds, request, s, sh, wait_until,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

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
    // Two placement passes (price ticks of 1 s) leave it where it is.
    throughout(now_nanos() + 2_000_000_000, "the request waiting", || {
        let state = s(&c.api.instance(&id), "state").to_owned();
        holds(state == "queued", || state.clone())
    });
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
    let backup = || {
        std::process::Command::new(binaries!().coordinator)
            .arg("--data-dir")
            .arg(&c.coordinator.data_dir)
            .args(["backup", "--to"])
            .arg(&file)
            .output()
            .expect("run the backup")
    };
    let output = backup();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let again = backup();
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

#[test]
fn a_host_whose_gpu_model_has_no_pool_is_refused_with_the_reason_not_priced_at_zero() {
    let c = cluster!();
    let agent =
        c.spawn_agent(&c.write_profile("odd", "NVIDIA A10", 1, 8, 32), Some(&c.join_token()));
    wait_until(SOON, "the agent to log why it is refused", || {
        let log = agent.log();
        holds(log.contains("no [[pools]] entry prices GPU model \"NVIDIA A10\""), || log.clone())
    });
    let hosts = c.api.get_ok("/v1/hosts");
    assert!(!hosts.to_string().contains("\"odd\""), "the host was not admitted: {hosts}");
}

#[test]
fn a_coordinator_stopped_with_sigterm_exits_promptly_and_its_restart_ends_no_instance() {
    let mut c = cluster!();
    let _a = c.agent(&c.write_profile("steady", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let created = c.api.create(&request("steady", &["RTX 4090"], 1, &sh("exec sleep 120")));
    let id = s(&created, "id").to_owned();
    c.wait_state(&id, "running");
    // An open event stream never ends by itself: the stop must not wait for it.
    let _events = EventStream::open(&c.api, None);
    let took = c.coordinator.terminate(Duration::from_secs(10));
    eprintln!("the coordinator exited {took:?} after SIGTERM");
    c.coordinator.start_again();
    c.wait_host("steady", "connected");
    // Longer than host_lost_after (2 s): nothing counted the coordinator's absence.
    throughout(now_nanos() + 4_000_000_000, "the instance running", || {
        let instance = c.api.instance(&id);
        holds(s(&instance, "state") == "running", || instance.to_string())
    });
    let host = c.host("steady").expect("the host");
    assert_eq!(s(&host, "state"), "connected", "{host}");
}
