//! Noticed replicas keep serving (docs/contracts.md#serving): a replica with a termination notice
//! still runs for its whole notice, so the gateway keeps it in the rotation until a replacement is
//! ready or until `[gateway] drain_margin` before its deadline. Every replica of a replica set
//! reclaimed at once, or every replica on a drained host (docs/contracts.md#operating-hosts), fails
//! no request under a steady load when the notice outlasts a replacement's start; with no
//! replacement, a noticed replica leaves the rotation at the margin, not before.

use chrono::{DateTime, Utc};
use gpuspot_e2e::deploy::{
    Deployments, host_id, ids, in_state, regular_spec, serving, spot_request, spot_spec,
};
use gpuspot_e2e::load::SteadyLoad;
use gpuspot_e2e::{SOON, cluster, config_with_timers, holds, s, sh, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Each replica serves its data dir, where `id.txt` names the instance.
const SERVER: &str = "echo $GPUSPOT_INSTANCE_ID > id.txt; exec python3 -m http.server $PORT";
/// Long enough for a replacement to start (a second or two) plus the margin, on a loaded
/// machine.
const NOTICE: &str = "20s";
const MARGIN: &str = "4s";
const MARGIN_S: i64 = 4;
/// Hold 4 s, a price tick and the notice, with room for a loaded machine.
const THROUGH_NOTICE: Duration = Duration::from_secs(45);

fn config(notice: &str) -> String {
    let timers = config_with_timers(&[("notice_period", notice)]);
    format!("{timers}\n[gateway]\nlisten = \"127.0.0.1:0\"\ndrain_margin = {MARGIN:?}\n")
}

/// A replica set `web` of `replicas` HTTP servers with a readiness probe.
fn web(deps: &Deployments, replicas: u32, specs: Value) -> String {
    let created = deps.create(&json!({
        "name": "web", "mode": "replicaset", "replicas": replicas, "specs": specs,
        "template": { "command": sh(SERVER), "readiness": { "http_path": "/id.txt", "interval": "200ms" } },
    }));
    s(&created, "id").to_owned()
}

/// Waits for `n` replicas in the rotation; their endpoints.
fn wait_serving(deps: &Deployments, id: &str, n: usize) -> Vec<Value> {
    wait_until(SOON, &format!("{n} replicas in the rotation"), || {
        let endpoints = deps.endpoints(id);
        holds(serving(&endpoints).len() == n, || format!("{endpoints:?}")).map(|()| endpoints)
    })
}

/// Requests back to back through the gateway, once they are seen to get answers.
fn steady_load(gateway: &str) -> SteadyLoad {
    let load = SteadyLoad::back_to_back(&format!("http://{gateway}/d/web/id.txt"), 2);
    wait_until(SOON, "the load to get answers", || {
        holds(load.answered() >= 20, || format!("{} answers", load.answered()))
    });
    load
}

/// The notice's deadline of instance `id`.
fn deadline(c: &gpuspot_e2e::Cluster, id: &str) -> DateTime<Utc> {
    let instance = c.api.instance(id);
    s(&instance, "termination_time").parse().unwrap_or_else(|e| panic!("{e}: {instance}"))
}

/// With every replica in `first` noticed: replacements on `host` take the rotation, the
/// noticed ones are out of it by then and end at their deadline, and the load, which ran
/// through all of it, saw no failed request.
fn ride_out(c: &gpuspot_e2e::Cluster, deps: &Deployments, id: &str, first: &[Value], host: &str) {
    let old: BTreeSet<String> = first.iter().map(|e| s(e, "instance_id").to_owned()).collect();
    let replaced = wait_until(SOON, "3 replacements in the rotation", || {
        let endpoints = deps.endpoints(id);
        let new = serving(&endpoints);
        let placed = endpoints.iter().filter(|e| new.contains(s(e, "instance_id")));
        let on_host = placed.filter(|e| s(e, "host_id") == host).count();
        holds(new.is_disjoint(&old) && on_host == 3, || format!("{endpoints:?}"))
            .map(|()| endpoints)
    });
    for e in replaced.iter().filter(|e| old.contains(s(e, "instance_id"))) {
        assert_eq!(e["draining"], true, "a replaced replica is out of the rotation: {e}");
    }
    for replica in &old {
        c.wait_state_within(replica, "terminated", THROUGH_NOTICE);
    }
}

/// Lets the load run on past the old replicas' end, then stops it: every answer was a 2xx.
fn assert_no_failed_request(load: SteadyLoad) {
    let at_end = load.answered();
    wait_until(SOON, "the load to go on after the old replicas ended", || {
        holds(load.answered() >= at_end + 20, || format!("{} answers", load.answered()))
    });
    let report = load.stop();
    eprintln!(
        "{} requests in {:.1?}, {} failed, p99 {:?}",
        report.sent,
        report.elapsed,
        report.failures.len(),
        report.percentile(0.99)
    );
    assert!(report.sent >= 200, "the load ran through the notice: {} requests", report.sent);
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed, first: {:?}",
        report.failures.len(),
        report.sent,
        &report.failures[..report.failures.len().min(5)]
    );
}

#[test]
fn every_replica_reclaimed_at_once_fails_no_request_when_the_notice_outlasts_a_start() {
    let c = cluster!(&config(NOTICE));
    let gateway = c.gateway().expect("the gateway's address in endpoints.json");
    let _x = c.agent(&c.write_profile("spot-x", "NVIDIA GeForce RTX 5090", 3, 64, 256));
    let _y = c.agent(&c.write_profile("regular-y", "NVIDIA GeForce RTX 4090", 4, 64, 256));
    let (x, y) = (host_id(&c, "spot-x"), host_id(&c, "regular-y"));
    let deps = Deployments::new(&c.api);
    let specs = json!([spot_spec(&["RTX 5090"], 1, "0.50"), regular_spec(&["RTX 4090"], 1)]);
    let id = web(&deps, 3, specs);
    let first = wait_serving(&deps, &id, 3);
    assert!(first.iter().all(|e| s(e, "host_id") == x), "all 3 on spot host X: {first:?}");
    let load = steady_load(&gateway);

    // A higher bid for all of X: once their hold is over, all 3 replicas lose the auction.
    c.api.create(&spot_request("bidder", &["RTX 5090"], 3, "0.80", &sh("sleep 300")));
    let noticed = deps.wait(&id, THROUGH_NOTICE, "all 3 replicas noticed", |d| {
        let noticed = in_state(d, "termination_scheduled");
        holds(noticed.len() == 3, String::new).map(|()| noticed)
    });
    let old: BTreeSet<String> = first.iter().map(|e| s(e, "instance_id").to_owned()).collect();
    assert_eq!(ids(&noticed), old, "the 3 replicas are noticed at once");
    for i in &noticed {
        assert_eq!(s(i, "termination_reason"), "reclaimed_price", "{i}");
    }
    ride_out(&c, &deps, &id, &first, &y);
    assert_no_failed_request(load);
}

#[test]
fn every_replica_on_a_drained_host_fails_no_request_when_the_notice_outlasts_a_start() {
    let c = cluster!(&config(NOTICE));
    let gateway = c.gateway().expect("the gateway's address in endpoints.json");
    let _old = c.agent(&c.write_profile("old", "NVIDIA GeForce RTX 4090", 3, 64, 256));
    let deps = Deployments::new(&c.api);
    let id = web(&deps, 3, json!([regular_spec(&["RTX 4090"], 1)]));
    let first = wait_serving(&deps, &id, 3);
    let _new = c.agent(&c.write_profile("new", "NVIDIA GeForce RTX 4090", 3, 64, 256));
    let (old, new) = (host_id(&c, "old"), host_id(&c, "new"));
    assert!(first.iter().all(|e| s(e, "host_id") == old), "all 3 on the old host: {first:?}");
    let load = steady_load(&gateway);

    let (status, host) =
        c.api.post(&format!("/v1/hosts/{old}/drain"), &json!({ "deadline": NOTICE }));
    assert_eq!((status, s(&host, "state")), (200, "draining"), "{host}");
    for e in &first {
        let noticed = c.api.instance(s(e, "instance_id"));
        assert_eq!(s(&noticed, "state"), "termination_scheduled", "{noticed}");
        assert_eq!(s(&noticed, "termination_reason"), "host_maintenance", "{noticed}");
    }
    ride_out(&c, &deps, &id, &first, &new);
    c.wait_host("old", "drained");
    assert_no_failed_request(load);
}

#[test]
fn a_noticed_replica_without_a_replacement_leaves_the_rotation_at_the_drain_margin() {
    let c = cluster!(&config("30s"));
    let gateway = c.gateway().expect("the gateway's address in endpoints.json");
    let _only = c.agent(&c.write_profile("only", "NVIDIA GeForce RTX 4090", 2, 64, 256));
    let only = host_id(&c, "only");
    let deps = Deployments::new(&c.api);
    let id = web(&deps, 2, json!([regular_spec(&["RTX 4090"], 1)]));
    let first = serving(&wait_serving(&deps, &id, 2));
    let url = format!("http://{gateway}/d/web/id.txt");
    let client = reqwest::blocking::Client::builder().no_proxy().build().unwrap();

    // The only host drains: the replacements cannot be placed anywhere.
    let (status, _) = c.api.post(&format!("/v1/hosts/{only}/drain"), &json!({ "deadline": "12s" }));
    assert_eq!(status, 200);
    let deadlines: Vec<DateTime<Utc>> = first.iter().map(|i| deadline(&c, i)).collect();
    let margin_at = *deadlines.iter().min().unwrap() - chrono::Duration::seconds(MARGIN_S);
    assert_eq!(serving(&deps.endpoints(&id)), first, "noticed replicas keep serving");
    let answer = client.get(&url).send().unwrap();
    assert_eq!(answer.status(), 200, "the gateway still routes to them");

    let left_at = wait_until(THROUGH_NOTICE, "the noticed replicas to leave the rotation", || {
        let endpoints = deps.endpoints(&id);
        let now = Utc::now();
        let draining = endpoints.iter().filter(|e| e["draining"] == true).count();
        let early = margin_at - chrono::Duration::milliseconds(300);
        assert!(draining == 0 || now >= early, "left before the margin at {now}: {endpoints:?}");
        holds(draining == 2, || format!("{endpoints:?}")).map(|()| now)
    });
    for (replica, at) in first.iter().zip(&deadlines) {
        assert!(left_at < *at, "{replica} left the rotation before its deadline {at}");
    }
    let answer = client.get(&url).send().unwrap();
    let code = answer.status();
    let body: Value = answer.json().unwrap_or_default();
    assert_eq!(
        (code.as_u16(), &body["error"]["code"]),
        (503, &json!("no_ready_replica")),
        "{body}"
    );
    for replica in &first {
        let instance = c.api.instance(replica);
        let at = deadline(&c, replica);
        assert!(
            s(&instance, "state") == "termination_scheduled" || Utc::now() >= at,
            "out of the rotation while it still runs its notice: {instance}"
        );
    }
}
