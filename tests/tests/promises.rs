//! Regular before spot (docs/contracts.md#market, issue 25 items 1 and 8, seeds 000, 001, 003): the
//! units a regular request reclaimed are promised to it, so neither a higher spot bid nor a replica
//! set's replacement that comes later takes them as they free; and a queued request's reason names
//! hostnames and says a host is busy, never whose instances hold it.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::{Deployments, host_id, instances, spot_request, spot_spec, summary};
use gpuspot_e2e::market::wait_for_time;
use gpuspot_e2e::values::{signed, time};
use gpuspot_e2e::{SOON, cluster, config_with_timers, holds, request, s, sh, wait_until};
use serde_json::{Value, json};

const H100: &str = "NVIDIA H100 80GB HBM3";
const SLEEP: &str = "exec sleep 120";

/// A replica that takes a second to checkpoint on SIGTERM, so its unit frees after the
/// other victim's: the first freed unit is alone, which is when a later request used to
/// slip in ahead of the regular one.
const SLOW_TO_STOP: &str = "trap 'sleep 1; exit 0' TERM; while :; do sleep 0.2; done";

/// Polls instance `id` until `check` accepts it.
fn wait_instance(
    c: &gpuspot_e2e::Cluster,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(SOON, what, || {
        let instance = c.api.instance(id);
        holds(check(&instance), || instance.to_string()).map(|()| instance)
    })
}

#[test]
fn reclaimed_units_go_to_the_regular_request_before_a_later_bid_or_replacement() {
    let c = cluster!(&config_with_timers(&[("hold_period", "2s"), ("notice_period", "4s")]));
    let _host = c.agent(&c.write_profile("promise-host", H100, 2, 32, 128));
    let host = host_id(&c, "promise-host");
    let low = c.api.create(&spot_request("low", &["H100"], 1, "0.60", &sh(SLEEP)));
    let low = c.wait_state(s(&low, "id"), "running");
    let deps = Deployments::new(&c.api);
    let svc = deps.create(&json!({
        "name": "svc", "mode": "replicaset", "replicas": 1,
        "specs": [spot_spec(&["H100"], 1, "0.70")],
        "template": { "command": sh(SLOW_TO_STOP) },
    }));
    let svc = s(&svc, "id").to_owned();
    let replica = deps.wait(&svc, SOON, "its replica running", |d| {
        let running: Vec<Value> =
            instances(d).into_iter().filter(|i| s(i, "state") == "running").collect();
        holds(running.len() == 1, String::new).map(|()| running[0].clone())
    });
    wait_for_time(time(&low, "hold_until").max(time(&replica, "hold_until")));

    let regular = c.api.create(&request("big", &["H100"], 2, &sh(SLEEP)));
    let regular = s(&regular, "id").to_owned();
    let mut deadline = 0;
    for victim in [s(&low, "id"), s(&replica, "id")] {
        let noticed = wait_instance(&c, victim, "the spot instances noticed", |i| {
            s(i, "state") == "termination_scheduled"
        });
        assert_eq!(s(&noticed, "termination_reason"), "reclaimed_capacity", "{noticed}");
        deadline = deadline.max(time(&noticed, "termination_time"));
    }
    let waiting = c.api.instance(&regular);

    // While the notices run: a bid far above the others arrives.
    let bidder = c.api.create(&spot_request("bidder", &["H100"], 1, "2.00", &sh(SLEEP)));
    let bidder = s(&bidder, "id").to_owned();
    let placed = c.wait_state(&regular, "running");
    assert_eq!(s(&placed, "host_id"), host, "{placed}");
    let late = time(&placed, "started_at") - deadline;
    eprintln!("the regular request started {} after the last deadline", signed(late));

    let bidder = c.api.instance(&bidder);
    assert_eq!(s(&bidder, "state"), "queued", "the later bid took promised units: {bidder}");
    assert!(bidder["host_id"].is_null(), "{bidder}");
    let reason = s(&bidder, "reason");
    assert!(reason.contains("Spot capacity is currently insufficient to run"), "{bidder}");
    let d = deps.get(&svc);
    let replacements: Vec<Value> = instances(&d)
        .into_iter()
        .filter(|i| s(i, "id") != s(&replica, "id") && !i["host_id"].is_null())
        .collect();
    assert!(replacements.is_empty(), "a replacement took promised units: {}", summary(&d));
    let reason = s(&waiting, "reason");
    assert!(reason.contains("waiting for reclaimed capacity on host promise-host"), "{waiting}");
    assert!(!reason.contains(&host), "the reason names the hostname, not the id: {waiting}");
}

#[test]
fn the_promise_survives_a_coordinator_restart() {
    let mut c = cluster!(&config_with_timers(&[("hold_period", "2s"), ("notice_period", "8s")]));
    let _host = c.agent(&c.write_profile("promise-host", H100, 2, 32, 128));
    let low = c.api.create(&spot_request("low", &["H100"], 1, "0.60", &sh(SLEEP)));
    let slow = c.api.create(&spot_request("slow", &["H100"], 1, "0.70", &sh(SLOW_TO_STOP)));
    let victims: Vec<Value> =
        [&low, &slow].iter().map(|v| c.wait_state(s(v, "id"), "running")).collect();
    wait_for_time(victims.iter().map(|v| time(v, "hold_until")).max().unwrap_or_default());
    let regular = c.api.create(&request("big", &["H100"], 2, &sh(SLEEP)));
    let regular = s(&regular, "id").to_owned();
    for victim in &victims {
        c.wait_state(s(victim, "id"), "termination_scheduled");
    }

    c.coordinator.restart();
    c.wait_host("promise-host", "connected");
    let bidder = c.api.create(&spot_request("bidder", &["H100"], 1, "2.00", &sh(SLEEP)));
    let placed = c.wait_state(&regular, "running");
    let bidder = c.api.instance(s(&bidder, "id"));
    assert_eq!(s(&bidder, "state"), "queued", "the bid took promised units: {bidder}");
    assert_eq!(placed["gpu_uuids"].as_array().map(Vec::len), Some(2), "{placed}");
}

#[test]
fn a_tenants_queue_reason_names_hostnames_and_not_other_accounts_holdings() {
    let c = cluster!();
    let _host = c.agent(&c.write_profile("busy-box", H100, 2, 32, 128));
    let host = host_id(&c, "busy-box");
    let holder = create_account(&c.api, "holder");
    holder.pay(&c.api, "100.00");
    let held = holder.api.create(&request("held", &["H100"], 2, &sh(SLEEP)));
    let held = c.wait_state(s(&held, "id"), "running");
    let waiter = create_account(&c.api, "waiter");
    waiter.pay(&c.api, "100.00");

    let regular = waiter.api.create(&request("patient", &["H100"], 1, &sh(SLEEP)));
    let spot = waiter.api.create(&spot_request("bidder", &["H100"], 1, "1.50", &sh(SLEEP)));
    let mut failing = request("impatient", &["H100"], 1, &sh(SLEEP));
    failing["on_unavailable"] = json!("fail");
    let failing = waiter.api.create(&failing);
    let seen = |id: &str| waiter.api.instance(id);
    let waits = |i: &Value| s(i, "state") == "queued" && s(i, "reason").contains("busy-box");
    let regular = wait_until(SOON, "the queued request's reason", || {
        let i = seen(s(&regular, "id"));
        holds(waits(&i), || i.to_string()).map(|()| i)
    });
    let spot = wait_until(SOON, "the queued spot request's reason", || {
        let i = seen(s(&spot, "id"));
        holds(waits(&i), || i.to_string()).map(|()| i)
    });
    let failed = wait_until(SOON, "the failed request", || {
        let i = seen(s(&failing, "id"));
        holds(s(&i, "state") == "failed", || i.to_string()).map(|()| i)
    });

    let spot_reason = s(&spot, "reason");
    assert!(spot_reason.contains("Spot capacity is currently insufficient to run"), "{spot}");
    let failed_reason = s(&failed, "reason");
    assert!(
        failed_reason.starts_with("out_of_stock: no matching capacity is free now"),
        "{failed}"
    );
    assert!(failed_reason.contains("busy-box"), "{failed}");
    assert!(!failed_reason.contains("waiting"), "a failed request is not waiting: {failed}");
    for shown in [&regular, &spot, &failed] {
        let reason = s(shown, "reason");
        for secret in [&host, s(&held, "id"), &holder.id, "holder", "regular instances"] {
            assert!(!reason.contains(secret), "{secret:?} in a tenant's reason: {shown}");
        }
        assert!(!reason.contains("spot instances"), "how others hold the host: {shown}");
        assert!(reason.contains("busy"), "the reason says the host is busy: {shown}");
    }
}
