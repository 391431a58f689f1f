//! Deployments and snapshots (docs/contracts.md#deployments, #snapshots, seeds 002, 003, 004): a
//! ReplicaSet that rides out a spot price rise on its regular fallback and `rebuild`s back to spot,
//! a Job that reaches exactly its completions while runs are reclaimed, seed 003's
//! checkpoint/resume training loop moving hosts through a snapshot, scaling and deleting, and a
//! crash loop held back by its backoff (docs/contracts.md#deployments).

use gpuspot_e2e::deploy::{
    Deployments, TRAIN_LOOP, cli, config_with_5090_notice, config_with_crash_backoff, crash_delay,
    crash_loop_runs, endpoint_ids, host_id, ids, in_state, instances, live, market_price,
    regular_spec, spot_request, spot_spec, step_after, summary, use_config,
};
use gpuspot_e2e::values::time;
use gpuspot_e2e::{Cluster, SOON, cluster, holds, is_alive, request, s, sh, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A long-lived workload that leaves its pid in its data dir.
const SLEEP: &str = "echo $$ > pid; exec sleep 120";

/// Hold 4 s + a price tick + notice + start-up, with room for a loaded machine.
const RECLAIM: Duration = Duration::from_secs(25);

#[test]
fn replicaset_rides_out_a_price_rise_on_regular_and_rebuilds_back_to_spot() {
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

#[test]
fn job_reaches_exactly_its_completions_while_runs_are_reclaimed() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("batch", "NVIDIA GeForce RTX 5090", 2, 32, 128));
    // Where every run can see it: a process guest's /tmp (the test dir's home) and
    // /dev/shm are its own; /run is the host's.
    let name = c.dir().file_name().expect("a named test dir").to_string_lossy();
    let go = std::path::Path::new("/run").join(format!("gpuspot-e2e-go-{name}"));
    let deps = Deployments::new(&c.api);
    // Every run works until the test says go; retry_limit 0: one counted failure fails it.
    let created = deps.create(&json!({
        "name": "batch", "mode": "job", "completions": 5, "parallelism": 2, "retry_limit": 0,
        "specs": [spot_spec(&["RTX 5090"], 1, "0.50")],
        "template": {
            "command": sh("while [ ! -e \"$GO\" ]; do sleep 0.1; done; echo finished; exit 0"),
            "env": { "GO": go.to_string_lossy() },
        },
    }));
    let id = s(&created, "id").to_owned();
    deps.wait(&id, SOON, "2 runs running", |d| {
        holds(in_state(d, "running").len() == 2, String::new)
    });

    // A regular request with no room reclaims the lowest (newest) bid once its hold is over.
    let bully = c.api.create(&request("bully", &["RTX 5090"], 1, &sh(SLEEP)));
    let bully = s(&bully, "id").to_owned();
    let noticed = deps.wait(&id, RECLAIM, "one run noticed for capacity", |d| {
        let noticed = in_state(d, "termination_scheduled");
        holds(noticed.len() == 1, String::new).map(|()| noticed[0].clone())
    });
    assert_eq!(s(&noticed, "termination_reason"), "reclaimed_capacity", "{noticed}");
    let d = deps.get(&id);
    assert_eq!(instances(&d).len(), 2, "a draining run still counts: {}", summary(&d));

    let ended = c.wait_state_within(s(&noticed, "id"), "terminated", RECLAIM);
    assert_eq!(s(&ended, "termination_reason"), "reclaimed_capacity", "{ended}");
    c.wait_state(&bully, "running");
    let d = deps.get(&id);
    assert_eq!((d["succeeded"].clone(), d["failed"].clone()), (json!(0), json!(0)), "{d}");
    assert_eq!(live(&d).len(), 1, "no room for a re-run yet: {}", summary(&d));

    // Room again: the reclaimed run is run again; then every run may finish.
    let (status, body) = c.api.delete(&format!("/v1/instances/{bully}"));
    assert_eq!(status, 200, "DELETE bully: {body}");
    deps.wait(&id, SOON, "a re-run running next to the survivor", |d| {
        holds(in_state(d, "running").len() == 2 && instances(d).len() == 3, String::new)
    });
    std::fs::write(&go, "go").expect("write go file");
    let done = deps.wait(&id, Duration::from_secs(30), "the job to complete", |d| {
        holds(s(d, "state") == "completed", String::new).map(|()| d.clone())
    });
    let _ = std::fs::remove_file(&go);

    let all = instances(&done);
    let context = summary(&done);
    assert_eq!(
        (done["succeeded"].clone(), done["failed"].clone()),
        (json!(5), json!(0)),
        "{context}"
    );
    assert!(all.iter().all(|i| s(i, "state") == "terminated"), "{context}");
    let succeeded: Vec<&Value> = all
        .iter()
        .filter(|i| i["exit_code"] == 0 && s(i, "termination_reason") == "exited")
        .collect();
    assert_eq!(succeeded.len(), 5, "exactly 5 successful runs: {context}");
    let reclaimed: Vec<&Value> =
        all.iter().filter(|i| s(i, "termination_reason") == "reclaimed_capacity").collect();
    assert_eq!(reclaimed.len(), 1, "{context}");
    assert_eq!(all.len(), 6, "5 successes + 1 reclaimed run, nothing else: {context}");
    let names: BTreeSet<&str> = all.iter().map(|i| s(i, "name")).collect();
    let expected: BTreeSet<String> = (1..=6).map(|n| format!("batch-{n}")).collect();
    assert_eq!(names, expected.iter().map(String::as_str).collect(), "{context}");
    assert!(c.api.logs(s(succeeded[0], "id")).contains("finished"));
}

#[test]
fn checkpointed_training_job_resumes_on_another_host_from_its_snapshot() {
    let c = cluster!();
    // H1's units have 32 cores, H2's 16: a regular request for 32 cores fits only on H1.
    let _h1 = c.agent(&c.write_profile("h1", "NVIDIA GeForce RTX 5090", 1, 32, 64));
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "train", "mode": "job", "completions": 1, "parallelism": 1, "retry_limit": 0,
        "specs": [spot_spec(&["RTX 5090"], 1, "0.50")],
        "template": { "command": ["bash", "-c", TRAIN_LOOP], "snapshot": { "enabled": true } },
    }));
    let id = s(&created, "id").to_owned();
    let first = deps.wait(&id, SOON, "the first run to run", |d| {
        let running = in_state(d, "running");
        holds(running.len() == 1, String::new).map(|()| running[0].clone())
    });
    let first_id = s(&first, "id").to_owned();
    assert_eq!(s(&first, "host_id"), host_id(&c, "h1"), "{first}");
    c.wait_logs(&first_id, "fresh start");
    let h2 = c.agent(&c.write_profile("h2", "NVIDIA GeForce RTX 5090", 1, 16, 64));

    // H1 is wanted for a regular instance: the run is reclaimed after its hold, mid-run.
    let mut bully = request("bully", &["RTX 5090"], 1, &sh(SLEEP));
    bully["cpu_cores"] = json!({ "min": 32 });
    let bully = s(&c.api.create(&bully), "id").to_owned();
    let ended = c.wait_state_within(&first_id, "terminated", RECLAIM);
    assert_eq!(s(&ended, "termination_reason"), "reclaimed_capacity", "{ended}");
    let logs = c.wait_logs(&first_id, "SIGTERM: checkpoint at step");
    let stopped_at = step_after(&logs, "SIGTERM: checkpoint at step ");
    assert!(stopped_at > 0 && stopped_at < 120, "stopped mid-run at {stopped_at}: {logs:?}");
    assert!(!logs.contains("done"), "the first run must not finish: {logs:?}");
    let bully = c.wait_state(&bully, "running");
    assert_eq!(s(&bully, "host_id"), host_id(&c, "h1"), "{bully}");

    // The next run lands on H2, restores the snapshot and resumes where the first stopped.
    let done = deps.wait(&id, Duration::from_secs(30), "the job to complete", |d| {
        holds(s(d, "state") == "completed", String::new).map(|()| d.clone())
    });
    let context = summary(&done);
    let all = instances(&done);
    assert_eq!(all.len(), 2, "one reclaimed run and one resumed run: {context}");
    assert_eq!((done["succeeded"].clone(), done["failed"].clone()), (json!(1), json!(0)));
    let second = all.iter().find(|i| s(i, "id") != first_id).expect("second run");
    let second_id = s(second, "id");
    assert_eq!(s(second, "host_id"), host_id(&c, "h2"), "{context}");
    assert_eq!(second["exit_code"], 0, "{context}");
    let logs = c.wait_logs(second_id, "done 120");
    let resumed_at = step_after(&logs, "resumed at step ");
    assert_eq!(resumed_at, stopped_at, "resumed from the SIGTERM checkpoint: {logs:?}");
    eprintln!("stopped on h1 at step {stopped_at}, resumed on h2 at step {resumed_at}");

    // Every step was done exactly once across the two hosts (the run prints its data dir's
    // `steps` file at the end: the dir itself is deleted once the run is over,
    // docs/contracts.md#guests).
    let line = |prefix: &str| {
        let found = logs.lines().find_map(|l| l.strip_prefix(prefix).map(str::to_owned));
        found.unwrap_or_else(|| panic!("no {prefix:?} in {logs:?}"))
    };
    let steps: Vec<u32> =
        line("steps: ").split_whitespace().map(|n| n.parse().expect("step")).collect();
    assert_eq!(steps, (1..=120).collect::<Vec<u32>>(), "each step once, in order");
    assert_eq!(line("checkpoint: ").trim(), "120");
    let data = h2.instance_data_dir(second_id);
    wait_until(SOON, "the finished run's data dir to be deleted", || {
        holds(!data.exists(), || format!("{} exists", data.display()))
    });

    // The store kept the first run's snapshot for the deployment (the second's follows).
    let snapshots = wait_until(SOON, "snapshots of both runs", || {
        let list = c.api.get_ok("/v1/snapshots");
        let mine: Vec<Value> = list
            .as_array()
            .map(|l| l.iter().filter(|s| s["deployment_id"] == id.as_str()).cloned().collect())
            .unwrap_or_default();
        holds(mine.len() == 2, || list.to_string()).map(|()| mine)
    });
    let saved = snapshots.iter().find(|snap| s(snap, "instance_id") == first_id);
    let saved = saved.unwrap_or_else(|| panic!("no snapshot of {first_id}: {snapshots:?}"));
    assert!(saved["size"].as_u64().is_some_and(|n| n > 0), "{saved}");
    assert_eq!(s(saved, "sha256").len(), 64, "{saved}");
}

#[test]
fn scaling_takes_effect_at_once_and_delete_stops_every_replica() {
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

#[test]
fn a_replica_that_keeps_crashing_is_restarted_with_a_growing_backoff_not_in_a_hot_loop() {
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

/// A deployment file for the CLI (TOML, like the API's JSON body).
const WEB_TOML: &str = r#"name = "cli"
mode = "replicaset"
replicas = 2
template = { command = ["sleep", "120"] }
[[specs]]
gpu = { models = ["RTX 5090"], count = 1 }
billing = { mode = "regular" }
"#;

#[test]
fn cli_creates_scales_rebuilds_and_deletes_a_deployment() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let file = c.dir().join("web.toml");
    std::fs::write(&file, WEB_TOML).expect("write deployment file");
    let Some(created) = cli(&c.api, &["deployments", "create", "--file", &file.to_string_lossy()])
    else {
        return;
    };
    let id = s(&created, "id").to_owned();
    let deps = Deployments::new(&c.api);
    deps.wait(&id, SOON, "2 running", |d| holds(in_state(d, "running").len() == 2, String::new));
    let scaled = cli(&c.api, &["deployments", "scale", &id, "3"]).expect("gpuspot");
    assert_eq!(scaled["replicas"], 3, "{scaled}");
    deps.wait(&id, SOON, "3 running", |d| holds(in_state(d, "running").len() == 3, String::new));
    let listed = cli(&c.api, &["deployments", "list"]).expect("gpuspot");
    assert!(ids(listed.as_array().expect("a list")).contains(&id), "{listed}");
    let rebuilt = cli(&c.api, &["deployments", "rebuild", &id]).expect("gpuspot");
    assert_eq!(rebuilt["moved"], 0, "nothing to move off regular-only specs: {rebuilt}");
    cli(&c.api, &["deployments", "delete", &id]).expect("gpuspot");
    deps.wait(&id, SOON, "deleted, nothing live", |d| {
        holds(s(d, "state") == "deleted" && live(d).is_empty(), String::new)
    });
}
