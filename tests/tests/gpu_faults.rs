//! GPU faults (docs/architecture.md, "Faults and drills"; issue 31), injected into
//! simulated GPUs, which their agent reports as a real fault: the unit leaves the market at
//! once, the instance on it is noticed `gpu_fault` with `[timers] fault_notice`, the
//! ledger charges nothing after the fault, its replica set replaces it on another unit, and
//! the operator's clear puts the unit back. A fault on a free GPU only takes it away.

use gpuspot_e2e::billing::{Account, charged, create_account};
use gpuspot_e2e::deploy::{Deployments, cli, host_id, in_state, regular_spec};
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::market::{GUEST_PROLOGUE, guest_key, socket_of};
use gpuspot_e2e::values::{NANOS_PER_SECOND as SEC, now_nanos, signed, time, unix_nanos};
use gpuspot_e2e::{
    Agent, Cluster, SOON, assert_error, cluster, config_with_timers, holds, s, sh, wait_until,
};
use serde_json::{Value, json};

const H100: &str = "NVIDIA H100 80GB HBM3";
const FAULT_NOTICE_S: i128 = 4;
/// The pool's list price, micro-units per GPU-hour.
const LIST: i128 = 2_580_000;

/// A cluster with a 2-GPU host (kept while the test holds it) and a paying account.
fn fault_cluster() -> (Cluster, Agent, Account, String) {
    let config = config_with_timers(&[
        ("fault_notice", "4s"),
        ("notice_period", "10m"),
        ("hold_period", "1h"),
    ]);
    let c = cluster!(&config);
    let agent = c.agent(&c.write_profile("fault-host", H100, 2, 32, 128));
    let acme = create_account(&c.api, "acme");
    acme.pay(&c.api, "100.00");
    let host = host_id(&c, "fault-host");
    (c, agent, acme, host)
}

/// GPU `index` of `host` as `GET /v1/hosts/{id}` shows it.
fn gpu(c: &Cluster, host: &str, index: u64) -> Value {
    let shown = c.api.get_ok(&format!("/v1/hosts/{host}"));
    let gpus = shown["gpus"].as_array().cloned().unwrap_or_default();
    gpus.into_iter().find(|g| g["index"] == index).unwrap_or_else(|| panic!("{shown}"))
}

/// The H100 pool's `(available, total)`: free units, and healthy units.
fn h100_pool(c: &Cluster) -> (u64, u64) {
    let pools = c.api.get_ok("/v1/pools");
    let pool = pools.as_array().and_then(|p| p.iter().find(|p| s(p, "model") == "H100").cloned());
    let pool = pool.unwrap_or_else(|| panic!("{pools}"));
    (pool["available"].as_u64().unwrap_or(u64::MAX), pool["total"].as_u64().unwrap_or(u64::MAX))
}

fn fault(c: &Cluster, host: &str, index: u64, xid: u32) {
    let answer =
        c.api.post(&format!("/v1/hosts/{host}/gpus/{index}/fault"), &json!({ "xid": xid }));
    assert_eq!(answer.0, 202, "{}", answer.1);
}

fn clear(c: &Cluster, host: &str, index: u64) {
    let answer = c.api.post(&format!("/v1/hosts/{host}/gpus/{index}/clear"), &json!({}));
    assert_eq!(answer.0, 200, "{}", answer.1);
}

fn wait_healthy(c: &Cluster, host: &str, index: u64, healthy: bool) {
    wait_until(SOON, &format!("GPU {index} healthy: {healthy}"), || {
        let shown = gpu(c, host, index);
        holds(shown["healthy"] == healthy, || shown.to_string())
    });
}

#[test]
fn a_faulted_gpu_notices_its_instance_unbilled_and_the_replica_set_replaces_it() {
    let (c, _agent, acme, host) = fault_cluster();
    let deps = Deployments::new(&acme.api);
    let created = deps.create(&json!({
        "name": "trainer", "mode": "replicaset", "replicas": 1,
        "specs": [regular_spec(&["H100"], 1)],
        "template": { "command": sh(&format!("{GUEST_PROLOGUE}exec sleep 300")) },
    }));
    let deployment = s(&created, "id").to_owned();
    let first = deps.wait(&deployment, SOON, "a running replica", |d| {
        in_state(d, "running").first().cloned().ok_or_else(|| "none running".to_owned())
    });
    let id = s(&first, "id").to_owned();
    let running = c.wait_state(&id, "running");
    let socket = socket_of(&c, &id);
    let uuid = running["gpu_uuids"][0].as_str().expect("a GPU").to_owned();
    let index = (0..2).find(|&i| gpu(&c, &host, i)["uuid"] == uuid.as_str()).expect("its GPU");
    assert_eq!(h100_pool(&c), (1, 2));
    // From the first event: a stream still connecting must not miss the fault.
    let mut events = EventStream::open(&c.api, Some(0));

    let injected = now_nanos();
    fault(&c, &host, index, 79);
    let event = events.wait_for(SOON, "gpu_fault", |e| e.kind == "gpu_fault");
    let fault_at = unix_nanos(s(&event.body, "at"));
    eprintln!(
        "the agent's fault report was applied {} after the injection",
        signed(fault_at - injected)
    );
    assert_eq!(event.body["host_id"], host.as_str(), "{:?}", event.body);
    assert_eq!(event.data()["gpu_uuid"], uuid.as_str(), "{:?}", event.body);
    assert_eq!(event.data()["xid"], 79, "{:?}", event.body);
    wait_healthy(&c, &host, index, false);
    assert_eq!(h100_pool(&c).1, 1, "the faulted unit left the market");
    let shown = gpu(&c, &host, index);
    assert_eq!(shown["fault"]["xid"], 79, "{shown}");
    assert_eq!(unix_nanos(s(&shown["fault"], "at")), fault_at, "{shown}");

    // The instance is noticed with the short fault notice, and its guest hears why.
    let noticed = c.wait_state(&id, "termination_scheduled");
    assert_eq!(s(&noticed, "termination_reason"), "gpu_fault", "{noticed}");
    let tt = time(&noticed, "termination_time");
    assert_eq!(tt - fault_at, FAULT_NOTICE_S * SEC, "deadline {}", signed(tt - fault_at));
    let (code, reason) = guest_key(&socket, "termination_reason");
    assert_eq!((code, reason.trim().trim_matches('"')), (200, "gpu_fault"));

    // The replacement runs on the other, healthy unit.
    let replacement = deps.wait(&deployment, SOON, "a replacement running", |d| {
        let others: Vec<Value> =
            in_state(d, "running").into_iter().filter(|i| s(i, "id") != id).collect();
        others.first().cloned().ok_or_else(|| "no replacement yet".to_owned())
    });
    assert_ne!(replacement["gpu_uuids"][0], uuid.as_str(), "{replacement}");

    // It stops at the deadline; nothing was charged after the fault.
    let ended = c.wait_state(&id, "terminated");
    assert_eq!(s(&ended, "termination_reason"), "gpu_fault", "{ended}");
    let ledger = acme.ledger();
    let late: Vec<&Value> = ledger
        .iter()
        .filter(|e| e["instance_id"] == id.as_str() && unix_nanos(s(e, "at")) > fault_at)
        .collect();
    assert!(late.is_empty(), "charges after the fault: {late:?}");
    let ran_ms = (fault_at - time(&ended, "started_at")) / 1_000_000;
    let expected = LIST * ran_ms / 3_600_000;
    let paid = i128::from(charged(&ledger, &id));
    assert!((paid - expected).abs() <= 1, "charged {paid}, the run up to the fault is {expected}");

    // The operator's clear returns the unit to the market.
    clear(&c, &host, index);
    wait_healthy(&c, &host, index, true);
    assert!(gpu(&c, &host, index)["fault"].is_null());
    wait_until(SOON, "the unit back on the market", || {
        let pool = h100_pool(&c);
        holds(pool == (1, 2), || format!("(available, total): {pool:?}"))
    });
}

#[test]
fn a_fault_on_a_free_gpu_only_takes_it_off_the_market_and_only_the_admin_injects() {
    let (c, _agent, acme, host) = fault_cluster();
    assert_eq!(h100_pool(&c), (2, 2));
    let path = format!("/v1/hosts/{host}/gpus/1/fault");
    assert_error(&acme.api.post(&path, &json!({ "xid": 79 })), 403, Some("forbidden"), "a tenant");
    assert_error(&c.api.post(&path, &json!({ "xid": 13 })), 400, Some("invalid_request"), "Xid 13");
    assert_error(&c.api.post(&path, &json!({ "xid": 0 })), 400, Some("invalid_request"), "Xid 0");
    let missing = format!("/v1/hosts/{host}/gpus/7/fault");
    assert_error(&c.api.post(&missing, &json!({ "xid": 79 })), 404, Some("not_found"), "GPU 7");
    assert_eq!(h100_pool(&c), (2, 2), "nothing changed");

    // The CLI's `hosts fault` and `hosts clear`, by hostname.
    let args = ["hosts", "fault", "fault-host", "1", "--xid", "48"];
    cli(&c.api, &args).expect("the gpuspot CLI is built");
    wait_healthy(&c, &host, 1, false);
    assert_eq!(h100_pool(&c), (1, 1));
    // A request for both GPUs waits while one is broken, and runs once it is cleared.
    let both = acme.api.create(&gpuspot_e2e::request("both", &["H100"], 2, &sh("sleep 300")));
    let id = s(&both, "id").to_owned();
    assert_eq!(s(&c.api.instance(&id), "state"), "queued");
    cli(&c.api, &["hosts", "clear", "fault-host", "1"]).expect("the gpuspot CLI is built");
    c.wait_state(&id, "running");
}
