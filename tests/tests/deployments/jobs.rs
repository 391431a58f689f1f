//! Jobs: exactly the completions asked for while runs are reclaimed, and seed 003's
//! checkpoint/resume training loop moving hosts through a snapshot.

use super::{RECLAIM, SLEEP};
use gpuspot_e2e::deploy::{
    Deployments, TRAIN_LOOP, host_id, in_state, instances, live, spot_spec, step_after, summary,
};
use gpuspot_e2e::{SOON, cluster, holds, request, s, sh, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

pub fn job_reaches_exactly_its_completions_while_runs_are_reclaimed() {
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

pub fn checkpointed_training_job_resumes_on_another_host_from_its_snapshot() {
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
