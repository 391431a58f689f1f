//! Replica sets: riding out a spot price rise on the regular fallback and `rebuild`ing back
//! to spot, scaling up, down and past capacity, a template change, delete, and a crash loop
//! held back by its backoff.

use super::{RECLAIM, SLEEP};
use gpuspot_e2e::deploy::{
    Deployments, config_with_5090_notice, config_with_crash_backoff, crash_delay, crash_loop_runs,
    endpoint_ids, host_id, ids, in_state, instances, live, market_price, regular_spec,
    spot_request, spot_spec, summary, use_config,
};
use gpuspot_e2e::values::time;
use gpuspot_e2e::{Cluster, SOON, cluster, holds, is_alive, s, sh, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub fn replicaset_rides_out_a_price_rise_on_regular_and_rebuilds_back_to_spot() {
    let mut c = cluster!();
    // A longer notice on the spot pool: time to see replacements run while the noticed drain.
    use_config(&mut c, &config_with_5090_notice("6s"));
    let pools = c.api.get_ok("/v1/pools");
    assert!(pools.to_string().contains("\"notice_period_seconds\":6"), "{pools}");
    let _x = c.agent(&c.write_profile("spot-x", "NVIDIA GeForce RTX 5090", 4, 64, 256));
    let _y = c.agent(&c.write_profile("regular-y", "NVIDIA GeForce RTX 4090", 4, 64, 256));
    let (x, y) = (host_id(&c, "spot-x"), host_id(&c, "regular-y"));
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "svc", "mode": "replicaset", "replicas": 3,
        "specs": [spot_spec(&["RTX 5090"], 1, "0.50"), regular_spec(&["RTX 4090"], 1)],
        "template": { "command": sh(SLEEP) },
    }));
    let id = s(&created, "id").to_owned();
    assert_eq!(instances(&created).len(), 3, "replicas are created at once: {created}");

    let spot = deps.wait(&id, SOON, "3 replicas running on spot host X", |d| {
        let running = in_state(d, "running");
        let on_spot = running.iter().all(|i| i["spec_index"] == 0 && s(i, "host_id") == x);
        holds(running.len() == 3 && on_spot && s(d, "state") == "running", String::new)
            .map(|()| running)
    });
    let names: BTreeSet<&str> = spot.iter().map(|i| s(i, "name")).collect();
    assert_eq!(names, BTreeSet::from(["svc-1", "svc-2", "svc-3"]), "instance names");

    // Higher bids for all of X: once the replicas' hold is over, two lose the auction.
    let bidders: Vec<String> = (1..=3)
        .map(|n| {
            let body = spot_request(&format!("bidder-{n}"), &["RTX 5090"], 1, "0.80", &sh(SLEEP));
            s(&c.api.create(&body), "id").to_owned()
        })
        .collect();
    let (noticed, fallbacks) = deps.wait(
        &id,
        RECLAIM,
        "2 replicas noticed while 2 replacements run on the regular spec",
        |d| {
            let noticed = in_state(d, "termination_scheduled");
            let fallbacks: Vec<Value> =
                in_state(d, "running").into_iter().filter(|i| i["spec_index"] == 1).collect();
            holds(noticed.len() == 2 && fallbacks.len() == 2, String::new)
                .map(|()| (noticed, fallbacks))
        },
    );
    for i in &noticed {
        assert_eq!(s(i, "termination_reason"), "reclaimed_price", "{i}");
        assert!(i["termination_time"].is_string(), "{i}");
        assert_eq!(i["spec_index"], 0, "{i}");
    }
    for i in &fallbacks {
        assert_eq!(s(i, "host_id"), y, "the regular spec is on host Y: {i}");
        assert_eq!(i["billing"]["mode"], "regular", "{i}");
    }
    let survivor: Vec<String> = ids(&spot).difference(&ids(&noticed)).cloned().collect();
    assert_eq!(survivor.len(), 1, "one spot replica keeps winning the auction");
    let mut serving: BTreeSet<String> = ids(&fallbacks);
    serving.extend(survivor.iter().cloned());
    let endpoints = deps.endpoints(&id);
    assert_eq!(endpoint_ids(&endpoints), serving, "draining replicas are not endpoints");

    // The noticed replicas end at their deadline; X fills with the bidders, no spot room.
    for i in &noticed {
        let ended = c.wait_state_within(s(i, "id"), "terminated", RECLAIM);
        assert_eq!(s(&ended, "termination_reason"), "reclaimed_price", "{ended}");
    }
    for bidder in &bidders {
        c.wait_state(bidder, "running");
    }
    let d = deps.get(&id);
    assert_eq!(ids(&live(&d)), serving, "still 3 replicas: {}", summary(&d));
    assert_eq!(s(&d, "state"), "running", "{}", summary(&d));
    assert_eq!(deps.rebuild(&id)["moved"], 0, "no spot room yet: {}", summary(&deps.get(&id)));
    assert_eq!(ids(&live(&deps.get(&id))), serving, "a rebuild without room changes nothing");

    // Spot capacity comes back: the bidders leave and the price falls below the bid.
    for bidder in &bidders {
        let (status, body) = c.api.delete(&format!("/v1/instances/{bidder}"));
        assert_eq!(status, 200, "DELETE {bidder}: {body}");
        c.wait_state(bidder, "terminated");
    }
    wait_until(SOON, "the RTX 5090 price to fall below 0.50", || {
        let price = market_price(&c.api, "RTX 5090");
        holds(price < 500_000, || format!("market price {price} micros"))
    });

    let rebuilt = deps.rebuild(&id);
    assert_eq!(rebuilt["moved"], 2, "rebuild moves both fallbacks: {rebuilt}");
    let back = deps.wait(&id, SOON, "3 replicas running on spot again", |d| {
        let running = in_state(d, "running");
        let on_spot = running.iter().all(|i| i["spec_index"] == 0 && s(i, "host_id") == x);
        holds(live(d).len() == 3 && running.len() == 3 && on_spot, String::new).map(|()| running)
    });
    for old in ids(&fallbacks) {
        let ended = c.wait_state(&old, "terminated");
        assert_eq!(s(&ended, "termination_reason"), "user", "{ended}");
    }
    let endpoints = deps.endpoints(&id);
    assert_eq!(endpoint_ids(&endpoints), ids(&back), "endpoints after rebuild");
    for e in &endpoints {
        assert_eq!(e["spec_index"], 0, "{e}");
        assert_eq!(s(e, "hostname"), "spot-x", "{e}");
        assert_eq!(e["billing"]["mode"], "spot", "{e}");
        assert_eq!(e["gpu_uuids"].as_array().map(Vec::len), Some(1), "{e}");
    }
}

pub fn scaling_takes_effect_at_once_and_delete_stops_every_replica() {
    let c = cluster!();
    let a = c.agent(&Cluster::seed_profile("host-a"));
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "web", "mode": "replicaset", "replicas": 2,
        "specs": [regular_spec(&["RTX 5090"], 1)],
        "template": { "command": sh(SLEEP) },
    }));
    let id = s(&created, "id").to_owned();
    let running = |n: usize| {
        deps.wait(&id, SOON, &format!("{n} running, {n} live"), |d| {
            let running = in_state(d, "running");
            holds(running.len() == n && live(d).len() == n, String::new).map(|()| running)
        })
    };
    running(2);

    // Up: the new replicas exist in the PATCH answer itself.
    let (status, up) = deps.patch(&id, &json!({ "replicas": 5 }));
    assert_eq!(status, 200, "PATCH replicas 5: {up}");
    assert_eq!((up["replicas"].clone(), live(&up).len()), (json!(5), 5), "{}", summary(&up));
    running(5);
    assert_eq!(deps.endpoints(&id).len(), 5);

    // Beyond capacity: nothing is queued, and the deployment says why.
    let (status, over) = deps.patch(&id, &json!({ "replicas": 10 }));
    assert_eq!(status, 200, "PATCH replicas 10: {over}");
    running(8);
    let d = deps.get(&id);
    assert!(s(&d, "reason").contains("no spec can be placed"), "{}", summary(&d));
    assert!(in_state(&d, "queued").is_empty(), "{}", summary(&d));

    // Down: the extra replicas are stopped in the PATCH itself; the oldest stays.
    let (status, down) = deps.patch(&id, &json!({ "replicas": 1 }));
    assert_eq!(status, 200, "PATCH replicas 1: {down}");
    let serving: Vec<Value> = in_state(&down, "running");
    assert_eq!(serving.len(), 1, "{}", summary(&down));
    let oldest = running(1);
    assert_eq!(s(&oldest[0], "name"), "web-1", "the oldest replica is kept");
    assert_eq!(endpoint_ids(&deps.endpoints(&id)), ids(&oldest));
    for i in instances(&deps.get(&id)).iter().filter(|i| s(i, "id") != s(&oldest[0], "id")) {
        assert_eq!(s(i, "termination_reason"), "user", "{i}");
    }
    wait_until(SOON, "7 units free on host-a", || {
        let host = c.host("host-a").expect("host-a");
        holds(host["units_free"] == 7, || host.to_string())
    });

    // New conditions replace the replica that no longer matches them.
    let template = json!({ "template": { "command": sh(SLEEP), "env": { "V": "2" } } });
    let (status, changed) = deps.patch(&id, &template);
    assert_eq!(status, 200, "PATCH template: {changed}");
    let kept = deps.wait(&id, SOON, "a replica under the new template", |d| {
        let running = in_state(d, "running");
        let new = running.iter().all(|i| i["env"]["V"] == "2" && s(i, "name") != "web-1");
        holds(running.len() == 1 && live(d).len() == 1 && new, String::new).map(|()| running)
    });

    // DELETE ends the deployment and stops its last replica's workload.
    let pid = a.workload_pid(s(&kept[0], "id"));
    let (status, deleted) = c.api.delete(&format!("/v1/deployments/{id}"));
    assert_eq!(status, 200, "DELETE: {deleted}");
    assert_eq!(s(&deleted, "state"), "deleted", "{deleted}");
    let ended = c.wait_state(s(&kept[0], "id"), "terminated");
    assert_eq!(s(&ended, "termination_reason"), "user", "{ended}");
    wait_until(Duration::from_secs(10), &format!("workload {pid} to be gone"), || {
        holds(!is_alive(pid), || format!("/proc/{pid} alive"))
    });
    let d = deps.get(&id);
    assert!(live(&d).is_empty() && s(&d, "state") == "deleted", "{}", summary(&d));
    assert!(deps.endpoints(&id).is_empty());
    assert_eq!(c.host("host-a").expect("host-a")["units_free"], 8);
    let (status, body) = deps.patch(&id, &json!({ "replicas": 3 }));
    assert_eq!(status, 404, "a deleted deployment cannot be scaled: {body}");
}

pub fn a_replica_that_keeps_crashing_is_restarted_with_a_growing_backoff_not_in_a_hot_loop() {
    // 1 s doubling to 4 s: runs start about 0, 1, 3, 7 and 11 s after the first.
    let (base, max) = (Duration::from_secs(1), Duration::from_secs(4));
    let c = cluster!(&config_with_crash_backoff("1s", "4s"));
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let deps = Deployments::new(&c.api);
    let started = Instant::now();
    let created = deps.create(&json!({
        "name": "crashy", "mode": "replicaset", "replicas": 1,
        "specs": [regular_spec(&["RTX 5090"], 1)],
        "template": { "command": sh("exit 1") },
    }));
    let id = s(&created, "id").to_owned();
    let d = deps.wait(&id, SOON, "4 crashed runs, the 4th waiting out its backoff", |d| {
        let waiting = s(d, "reason").starts_with("crash_loop:");
        holds(d["failed"].as_u64() >= Some(4) && waiting, String::new).map(|()| d.clone())
    });
    let window = started.elapsed();
    let (runs, context) = (instances(&d), summary(&d));
    let bound = crash_loop_runs(base, max, window);
    eprintln!("{} runs in {window:.1?} (the backoff allows {bound})", runs.len());
    assert!(runs.len() <= bound, "at most {bound} runs in {window:?}: {context}");
    assert_eq!(d["failed"], runs.len(), "every run crashed: {context}");
    assert_eq!(d["restarts"], runs.len() - 1, "each crash restarted once: {context}");
    assert_eq!(s(&d, "state"), "waiting", "{context}");
    let reason = s(&d, "reason");
    let countdown = reason.strip_prefix("crash_loop: exit code 1, next start in ");
    assert!(countdown.is_some_and(|n| n.ends_with('s')), "{reason}");

    // Each restart came after its backoff (by the coordinator's clock), and soon after it.
    for (n, pair) in runs.windows(2).enumerate() {
        let (crashed, next) = (&pair[0], &pair[1]);
        assert_eq!((crashed["exit_code"].clone(), s(crashed, "state")), (json!(1), "terminated"));
        let delay = crash_delay(base, max, n as u32 + 1).as_nanos() as i128;
        let waited = time(next, "created_at") - time(crashed, "ended_at");
        assert!(waited >= delay, "restart {} waited {waited} ns < {delay}: {context}", n + 1);
        assert!(waited < delay + 2_000_000_000, "restart {} came late: {context}", n + 1);
    }
}
