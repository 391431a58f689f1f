//! Drills (docs/architecture.md, "Faults and drills"; issue 31): the owner of an instance,
//! spot or regular, sends it a real interruption with reason `drill`. Seed 003's watcher in
//! the guest sees it on the socket, the AWS-style path shows it, the owner's events and
//! inbox tell of it, the replica set replaces it, and it stops at the deadline. Another
//! account cannot drill it.

use gpuspot_e2e::billing::{Account, create_account};
use gpuspot_e2e::deploy::{Deployments, cli, in_state, regular_spec, spot_spec};
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::market::{GUEST_PROLOGUE, SEED_WATCHER, guest_key, socket_of};
use gpuspot_e2e::values::{NANOS_PER_SECOND as SEC, now_nanos, signed, time, unix_nanos};
use gpuspot_e2e::{
    Agent, Cluster, SOON, assert_error, cluster, config_with_timers, holds, s, sh, unix_get,
    wait_until,
};
use serde_json::{Value, json};

const H100: &str = "NVIDIA H100 80GB HBM3";
/// Longer than the seed watcher's 5 s poll.
const NOTICE: &str = "8s";
const NOTICE_S: i128 = 8;

/// The guest: seed 003's watcher in the background, its socket printed.
fn watcher_guest() -> String {
    format!(
        "cat > spot_watcher.sh <<'EOF'\n{SEED_WATCHER}\nEOF\n\
         printf '#!/bin/sh\\necho CHECKPOINT_SAVED\\n' > save_checkpoint.sh\n\
         chmod +x spot_watcher.sh save_checkpoint.sh\n\
         nohup ./spot_watcher.sh &\n{GUEST_PROLOGUE}exec sleep 300\n"
    )
}

/// A one-replica replica set of `account` whose only spec is `spec`; its running replica.
fn replica_set(c: &Cluster, account: &Account, name: &str, spec: Value) -> (String, Value) {
    let deps = Deployments::new(&account.api);
    let created = deps.create(&json!({
        "name": name, "mode": "replicaset", "replicas": 1, "specs": [spec],
        "template": { "command": sh(&watcher_guest()) },
    }));
    let id = s(&created, "id").to_owned();
    let running = deps.wait(&id, SOON, "a running replica", |d| {
        in_state(d, "running").first().cloned().ok_or_else(|| "none running".to_owned())
    });
    let instance = c.wait_state(s(&running, "id"), "running");
    (id, instance)
}

/// How a test drills: the API, or the CLI (`gpuspot instances interrupt NAME --notice`).
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Api,
    Cli,
}

/// The instance after `account` drilled it `via` the API or the CLI.
fn drill(account: &Account, instance: &Value, via: Via) -> Value {
    let id = s(instance, "id");
    if via == Via::Cli {
        let args = ["instances", "interrupt", s(instance, "name"), "--notice", NOTICE];
        return cli(&account.api, &args).expect("the gpuspot CLI is built");
    }
    let (status, noticed) =
        account.api.post(&format!("/v1/instances/{id}/interrupt"), &json!({ "notice": NOTICE }));
    assert_eq!(status, 200, "{noticed}");
    noticed
}

/// Drills `instance` as `account` and checks every channel a reclaim uses; then the
/// replacement and the stop at the deadline.
fn drill_and_follow(c: &Cluster, account: &Account, deployment: &str, instance: &Value, via: Via) {
    let id = s(instance, "id").to_owned();
    let socket = socket_of(c, &id);
    // From the first event: a stream still connecting must not miss the notice.
    let mut events = EventStream::open(&account.api, Some(0));
    let before = now_nanos();
    let noticed = drill(account, instance, via);
    let after = now_nanos();
    assert_eq!(s(&noticed, "state"), "termination_scheduled", "{noticed}");
    assert_eq!(s(&noticed, "termination_reason"), "drill", "{noticed}");
    let tt = time(&noticed, "termination_time");
    wait_until(SOON, "the guest's socket to show the deadline", || {
        let (code, body) = guest_key(&socket, "spot_termination_time");
        holds(code == 200, || format!("{code} {body}"))
    });
    eprintln!(
        "the guest's socket showed the drill {} after the request",
        signed(now_nanos() - before)
    );
    let notice = NOTICE_S * SEC;
    assert!(tt >= before + notice && tt <= after + notice, "deadline {}", signed(tt - before));

    // The seed's watcher, in the guest, sees the termination time.
    let logs = c.wait_logs(&id, "CHECKPOINT_SAVED");
    let line = logs.lines().find(|l| l.contains("Reclamation scheduled: ")).expect("watcher line");
    let shown = line.rsplit("Reclamation scheduled: ").next().unwrap_or("");
    assert_eq!(unix_nanos(shown), tt - tt.rem_euclid(SEC), "{line}");
    let (code, body) = unix_get(&socket, "/vm/metadata?key=termination_reason").expect("socket");
    assert_eq!((code, body.trim().trim_matches('"')), (200, "drill"), "{body}");
    let (code, action) =
        unix_get(&socket, "/latest/meta-data/spot/instance-action").expect("socket");
    assert_eq!(code, 200, "{action}");
    assert!(action.contains("\"action\":\"terminate\""), "{action}");

    let event =
        events.wait_for(SOON, "termination_scheduled", |e| e.is("termination_scheduled", &id));
    assert_eq!(event.data()["reason"], "drill", "{:?}", event.body);
    let inbox = account.api.get_ok("/v1/messages");
    let message = inbox.as_array().and_then(|m| {
        m.iter().find(|m| m["instance_id"] == id.as_str() && s(m, "body").contains("drill"))
    });
    assert!(message.is_some(), "no inbox message of the drill: {inbox}");

    // Its replica set replaces it at once, while it runs out its notice.
    let deps = Deployments::new(&account.api);
    deps.wait(deployment, SOON, "a replacement running", |d| {
        let others = in_state(d, "running").into_iter().filter(|i| s(i, "id") != id).count();
        if others == 1 { Ok(()) } else { Err(format!("{others} replacements running")) }
    });
    let ended = c.wait_state_within(&id, "terminated", SOON + std::time::Duration::from_secs(10));
    assert_eq!(s(&ended, "termination_reason"), "drill", "{ended}");
    let late = time(&ended, "ended_at") - tt;
    assert!((0..=3 * SEC).contains(&late), "ended {} from the deadline: {ended}", signed(late));
}

/// A cluster with one 4-GPU host (kept running while the test holds it) and a paying
/// account.
fn drill_cluster() -> (Cluster, Agent, Account) {
    // A pool notice far longer than the drill's: the drill's own notice counts.
    let c = cluster!(&config_with_timers(&[("notice_period", "10m"), ("hold_period", "1h")]));
    let agent = c.agent(&c.write_profile("drill-host", H100, 4, 64, 256));
    let acme = create_account(&c.api, "acme");
    acme.pay(&c.api, "100.00");
    (c, agent, acme)
}

#[test]
fn a_drill_on_a_spot_replica_reaches_its_watcher_and_the_replica_set_replaces_it() {
    let (c, _agent, acme) = drill_cluster();
    let (deployment, instance) =
        replica_set(&c, &acme, "spot-set", spot_spec(&["H100"], 1, "5.00"));
    assert_eq!(instance["billing"]["mode"], "spot", "{instance}");
    drill_and_follow(&c, &acme, &deployment, &instance, Via::Api);
}

#[test]
fn a_drill_on_a_regular_replica_reaches_its_watcher_and_the_replica_set_replaces_it() {
    let (c, _agent, acme) = drill_cluster();
    let (deployment, instance) = replica_set(&c, &acme, "regular-set", regular_spec(&["H100"], 1));
    assert_eq!(instance["billing"]["mode"], "regular", "{instance}");
    drill_and_follow(&c, &acme, &deployment, &instance, Via::Cli);
}

#[test]
fn only_the_owner_or_the_admin_may_drill_and_the_notice_is_bounded() {
    let (c, _agent, acme) = drill_cluster();
    let other = create_account(&c.api, "other");
    let created = acme.api.create(&gpuspot_e2e::request("mine", &["H100"], 1, &sh("sleep 300")));
    let id = s(&created, "id").to_owned();
    c.wait_state(&id, "running");
    let path = format!("/v1/instances/{id}/interrupt");

    assert_error(&other.api.post(&path, &json!({})), 404, Some("not_found"), "another account");
    for (body, what) in [
        (json!({ "notice": "forever" }), "an unparsable notice"),
        (json!({ "notice": "0s" }), "a zero notice"),
        (json!({ "notice": "25h" }), "a notice past 24h"),
        (json!({ "notice": "11m" }), "a notice past the pool's notice (10m)"),
        (json!({ "notise": "2m" }), "an unknown field"),
    ] {
        assert_error(&acme.api.post(&path, &body), 400, Some("invalid_request"), what);
    }
    assert_eq!(s(&c.api.instance(&id), "state"), "running", "nothing changed");

    // The admin may drill anyone's; without a body the pool's notice (10 min) applies.
    let before = now_nanos();
    let (status, noticed) = c.api.post_raw(&path, "");
    assert_eq!(status, 200, "{noticed}");
    let left = time(&noticed, "termination_time") - before;
    assert!((600 * SEC..=605 * SEC).contains(&left), "the pool's notice: {}", signed(left));
    let again = acme.api.post(&path, &json!({ "notice": "1m" }));
    assert_error(&again, 409, Some("not_running"), "a drill of a noticed instance");
}
