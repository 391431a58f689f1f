//! Guests in containers end to end (docs/contracts.md#guests) on a real Podman (see
//! `gpuspot_e2e::podman`): an image instance with its socket and data dir, the seed 003
//! watcher catching its reclamation inside the container, the stop at the deadline and the
//! snapshot resumed in a new container on another host; the memory limit; a failed pull;
//! an agent killed with SIGKILL and restarted while its container runs on; and a process
//! guest and a container guest that cannot reach each other.

use gpuspot_e2e::deploy::{
    Deployments, TRAIN_LOOP, host_id, in_state, instances, spot_spec, step_after, summary,
};
use gpuspot_e2e::market::SEED_WATCHER;
use gpuspot_e2e::podman::{ContainerAgent, container_of, image_request, podman, podman_cli};
use gpuspot_e2e::values::{NANOS_PER_SECOND as SEC, signed, time, unix_nanos};
use gpuspot_e2e::{
    Cluster, SOON, binaries, cluster, config_with_timers, holds, request, s, sh, wait_until,
};
use serde_json::json;
use std::time::{Duration, Instant};

const RTX: &str = "NVIDIA GeForce RTX 5090";

/// A host with `cores` cores and `mem` GiB on one RTX 5090, running containers.
fn container_host(c: &Cluster, name: &str, cores: u32, mem: u32) -> ContainerAgent {
    let profile = c.write_profile(name, RTX, 1, cores, mem);
    ContainerAgent::start(c, &binaries!().agent, &profile)
}

/// The training guest of the container scenario: reports what it sees, runs the seed's
/// watcher in the background (its checkpoint script records the notice in /data), then
/// the seed's training loop (300 steps of 0.1 s, resumable from /data).
fn training_guest() -> String {
    format!(
        "echo \"SEES socket=$GPUSPOT_METADATA_SOCKET data=$GPUSPOT_DATA_DIR\"\n\
         [ -S /run/gpuspot/metadata.sock ] && [ -d /data ] && echo SOCKET_AND_DATA_OK\n\
         [ -f /data/noticed ] && echo \"RESTORED notice $(cat /data/noticed)\"\n\
         mkdir -p /tmp/w && cd /tmp/w\n\
         cat > spot_watcher.sh <<'EOF'\n{SEED_WATCHER}\nEOF\n\
         printf '#!/bin/sh\\ncat /tmp/spot_response > /data/noticed\\necho CHECKPOINT_SAVED\\n' > save_checkpoint.sh\n\
         chmod +x spot_watcher.sh save_checkpoint.sh\n\
         ./spot_watcher.sh &\n\
         cd /\n{}\n\
         echo \"STEPS $(tr '\\n' , < /data/steps)\"\n",
        TRAIN_LOOP.replace("TOTAL=120", "TOTAL=300")
    )
}

#[test]
fn reclaimed_container_is_noticed_stopped_at_the_deadline_and_resumes_on_another_host() {
    let c = cluster!(&config_with_timers(&[("hold_period", "2s"), ("notice_period", "8s")]));
    // h1's unit has 32 cores, h2's 16: a regular request for 32 cores fits only on h1.
    let h1 = container_host(&c, "h1", 32, 64);
    let host = c.host("h1").expect("h1 listed");
    assert_eq!(host["runtimes"], json!(["process", "container"]), "{host}");
    let deps = Deployments::new(&c.api);
    let created = deps.create(&json!({
        "name": "train", "mode": "job", "completions": 1, "parallelism": 1, "retry_limit": 0,
        "specs": [spot_spec(&["RTX 5090"], 1, "0.50")],
        "template": { "image": podman().image, "command": ["bash", "-c", training_guest()],
                      "snapshot": { "enabled": true } },
    }));
    let id = s(&created, "id").to_owned();
    let first = deps.wait(&id, SOON, "the first run to run", |d| {
        let running = in_state(d, "running");
        holds(running.len() == 1, String::new).map(|()| running[0].clone())
    });
    let first_id = s(&first, "id").to_owned();
    let logs = c.wait_logs(&first_id, "fresh start");
    assert!(logs.contains("SEES socket=/run/gpuspot/metadata.sock data=/data\n"), "{logs}");
    assert!(logs.contains("SOCKET_AND_DATA_OK\n"), "{logs}");
    assert!(matches!(container_of(&first_id), Some((true, _))), "no running container");
    let h2 = container_host(&c, "h2", 16, 64);

    let mut bully = request("bully", &["RTX 5090"], 1, &sh("exec sleep 120"));
    bully["cpu_cores"] = json!({ "min": 32 });
    let bully = s(&c.api.create(&bully), "id").to_owned();
    let noticed = c.wait_state_within(&first_id, "termination_scheduled", Duration::from_secs(30));
    assert_eq!(s(&noticed, "termination_reason"), "reclaimed_capacity", "{noticed}");
    let tt = time(&noticed, "termination_time");

    // The seed's watcher, inside the container, read the termination time from the socket.
    let logs = c.wait_logs(&first_id, "CHECKPOINT_SAVED");
    let line = logs.lines().find(|l| l.contains("Reclamation scheduled: ")).expect("watcher line");
    let seen = unix_nanos(line.rsplit("Reclamation scheduled: ").next().expect("time"));
    assert_eq!(seen, tt - tt.rem_euclid(SEC), "the socket said {line}, the API {noticed}");

    let ended = c.wait_state_within(&first_id, "terminated", Duration::from_secs(30));
    assert_eq!(s(&ended, "termination_reason"), "reclaimed_capacity", "{ended}");
    let late = time(&ended, "ended_at") - tt;
    assert!((0..=3 * SEC).contains(&late), "ended {} from its deadline: {ended}", signed(late));
    let logs = c.wait_logs(&first_id, "SIGTERM: checkpoint at step");
    let stopped_at = step_after(&logs, "SIGTERM: checkpoint at step ");
    assert!(stopped_at > 0 && stopped_at < 300, "stopped mid-run at {stopped_at}: {logs:?}");
    assert_eq!(s(&c.wait_state(&bully, "running"), "host_id"), host_id(&c, "h1"));
    wait_until(SOON, "the first container to be removed", || {
        holds(container_of(&first_id).is_none(), || format!("{:?}", container_of(&first_id)))
    });

    // The next run is a new container on h2, restored from the first run's snapshot.
    let done = deps.wait(&id, Duration::from_secs(90), "the job to complete", |d| {
        holds(s(d, "state") == "completed", String::new).map(|()| d.clone())
    });
    let all = instances(&done);
    let second = all.iter().find(|i| s(i, "id") != first_id).expect("a second run");
    let second_id = s(second, "id");
    assert_eq!(s(second, "host_id"), host_id(&c, "h2"), "{}", summary(&done));
    assert_eq!(second["exit_code"], 0, "{}", summary(&done));
    let logs = c.wait_logs(second_id, "done 300");
    assert_eq!(step_after(&logs, "resumed at step "), stopped_at, "{logs:?}");
    assert!(logs.contains("RESTORED notice \""), "the notice file came back in /data: {logs:?}");
    let logs = c.wait_logs(second_id, "STEPS ");
    let line = logs.lines().find_map(|l| l.strip_prefix("STEPS ")).expect("steps line");
    let steps: Vec<u32> =
        line.split(',').filter(|s| !s.is_empty()).map(|n| n.parse().expect("step")).collect();
    assert_eq!(steps, (1..=300).collect::<Vec<u32>>(), "each step once, across two containers");
    drop((h1, h2));
}

#[test]
fn a_container_over_its_memory_limit_is_killed_and_its_instance_says_why() {
    let c = cluster!();
    let _h = container_host(&c, "small", 2, 1);
    let hog = "echo start; exec awk 'BEGIN { s = \"0123456789abcdef\"; while (1) s = s s }'";
    let created = c.api.create(&image_request("hog", &["RTX 5090"], 1, &sh(hog)));
    let id = s(&created, "id").to_owned();
    let ended = c.wait_state_within(&id, "terminated", Duration::from_secs(60));
    assert_eq!(s(&ended, "termination_reason"), "failed", "{ended}");
    assert!(s(&ended, "reason").contains("memory limit of 1 GiB"), "{ended}");
    assert_eq!(s(&c.wait_host("small", "connected"), "state"), "connected");

    // The host is fine: the next container on it runs and exits normally.
    let next = c.api.create(&image_request("next", &["RTX 5090"], 1, &sh("echo fine")));
    let next = c.wait_state(s(&next, "id"), "terminated");
    assert_eq!((next["exit_code"].clone(), s(&next, "termination_reason")), (json!(0), "exited"));
}

#[test]
fn an_image_that_cannot_be_pulled_fails_the_instance_with_its_reason() {
    let c = cluster!();
    let _h = container_host(&c, "puller", 4, 8);
    let mut body = image_request("nope", &["RTX 5090"], 1, &sh("true"));
    body["image"] = json!("127.0.0.1:1/gpuspot/no-such-image:1");
    let id = s(&c.api.create(&body), "id").to_owned();
    let failed = c.wait_state_within(&id, "failed", Duration::from_secs(60));
    assert!(s(&failed, "reason").starts_with("image_pull_failed: "), "{failed}");
    assert!(s(&failed, "reason").contains("127.0.0.1:1/gpuspot/no-such-image:1"), "{failed}");
    let host = c.host("puller").expect("host");
    assert_eq!(host["units_free"], 1, "the unit is free again: {host}");
}

/// A guest printing `tick N` every 100 ms.
const TICKER: &str = "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done";

/// The ticks in `logs`; panics unless they are 0, 1, 2, … each once.
fn ticks(logs: &str) -> usize {
    let seen: Vec<usize> =
        logs.lines().filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok()).collect();
    assert_eq!(seen, (0..seen.len()).collect::<Vec<usize>>(), "every tick once, in order");
    seen.len()
}

#[test]
fn sigkilled_agent_restarts_and_readopts_its_running_container_with_logs_continuing() {
    let c = cluster!(&config_with_timers(&[("host_lost_after", "20s")]));
    let mut h = container_host(&c, "keeper", 4, 8);
    let created = c.api.create(&image_request("ticker", &["RTX 5090"], 1, &sh(TICKER)));
    let id = s(&created, "id").to_owned();
    c.wait_state(&id, "running");
    c.wait_logs(&id, "tick 10\n");
    let (_, pid) = container_of(&id).expect("its container");

    h.kill();
    let killed = Instant::now();
    // Nothing ends with the agent: the container runs on, the instance stays running.
    wait_until(SOON, "the container to keep ticking without its agent", || {
        let tail = podman_cli(&["logs", "--tail", "1", &format!("gpuspot-{id}")])?;
        let n: usize = tail.trim().strip_prefix("tick ").and_then(|n| n.parse().ok()).unwrap_or(0);
        holds(n > 20, || tail.clone())
    });
    assert_eq!(container_of(&id), Some((true, pid)), "the same container, running");
    assert_eq!(s(&c.api.instance(&id), "state"), "running");

    h.respawn(&c);
    let restarted = Instant::now();
    // The host may still show `connected` (its old link not yet timed out): new output is
    // what proves the new agent re-adopted the container.
    let shipped = ticks(&c.api.logs(&id));
    let logs = c.wait_logs(&id, &format!("tick {}\n", shipped + 5));
    eprintln!(
        "agent down {:?}; restart to new output in the API {:?}",
        restarted - killed,
        restarted.elapsed()
    );
    c.wait_host("keeper", "connected");
    ticks(&logs);
    assert_eq!(s(&c.api.instance(&id), "state"), "running");
    assert_eq!(container_of(&id), Some((true, pid)), "adopted, not restarted");

    // Only the coordinator ends it, and the readopted container stops like any other.
    let (status, body) = c.api.delete(&format!("/v1/instances/{id}"));
    assert_eq!(status, 200, "{body}");
    let ended = c.wait_state(&id, "terminated");
    assert_eq!(s(&ended, "termination_reason"), "user", "{ended}");
    wait_until(SOON, "the container to be removed", || {
        holds(container_of(&id).is_none(), || format!("{:?}", container_of(&id)))
    });
}

/// The host paths of a container's two mounts: (data dir, socket dir).
fn mounts_of(id: &str) -> (String, String) {
    let format = "{{range .Mounts}}{{.Destination}}={{.Source}} {{end}}";
    let text =
        podman_cli(&["inspect", "--format", format, &format!("gpuspot-{id}")]).expect("inspect");
    let source = |target: &str| {
        text.split_whitespace()
            .find_map(|m| m.strip_prefix(&format!("{target}=")))
            .unwrap_or_else(|| panic!("no {target} mount in {text}"))
            .to_owned()
    };
    (source("/data"), source("/run/gpuspot"))
}

fn run_in(c: &Cluster, id: &str, script: &str) -> (i64, String) {
    gpuspot_e2e::exec::run_in(&c.api, id, script)
}

fn denied(c: &Cluster, id: &str, script: &str, secret: &str) {
    gpuspot_e2e::exec::denied(&c.api, id, script, secret);
}

#[test]
fn a_process_guest_and_a_container_guest_cannot_reach_each_other() {
    let c = cluster!();
    // Two units on one host: one for each guest.
    let profile = c.write_profile("shared", RTX, 2, 8, 16);
    let _h = ContainerAgent::start(&c, &binaries!().agent, &profile);
    let mut process = request(
        "proc",
        &["RTX 5090"],
        1,
        &sh("echo p-file-secret > \"$GPUSPOT_DATA_DIR/secret\"; \
         echo \"P pid=$$ data=$GPUSPOT_DATA_DIR socket=$GPUSPOT_METADATA_SOCKET\"; exec sleep 300"),
    );
    process["env"] = json!({ "SECRET": "p-env-secret" });
    let p = s(&c.api.create(&process), "id").to_owned();
    let mut container = image_request(
        "ctr",
        &["RTX 5090"],
        1,
        &sh("echo c-file-secret > /data/secret; echo C up; exec sleep 300"),
    );
    container["env"] = json!({ "SECRET": "c-env-secret" });
    let k = s(&c.api.create(&container), "id").to_owned();
    let p_line = c.wait_logs(&p, "P pid=");
    c.wait_logs(&k, "C up");
    let field = |key: &str| -> String {
        let line = p_line.lines().find(|l| l.starts_with("P pid=")).expect("P line");
        let value = line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{key}=")));
        value.expect("field").to_owned()
    };
    let (p_pid, p_data, p_socket) = (field("pid"), field("data"), field("socket"));
    let (_, k_pid) = container_of(&k).expect("container");
    let (k_data, k_socket_dir) = mounts_of(&k);
    let k_socket = format!("{k_socket_dir}/metadata.sock");

    // The process guest cannot read, connect to or signal anything of the container.
    denied(&c, &p, &format!("cat {k_data}/secret"), "c-file-secret");
    denied(&c, &p, &format!("tr '\\0' '\\n' < /proc/{k_pid}/environ"), "c-env-secret");
    denied(&c, &p, &format!("kill -0 {k_pid} && echo SIGNALLED"), "SIGNALLED");
    denied(&c, &p, &format!("curl -sf --unix-socket {k_socket} http://localhost/vm/metadata"), &k);
    // Nor the container anything of the process guest: none of it is even in its view.
    denied(&c, &k, &format!("cat {p_data}/secret"), "p-file-secret");
    denied(&c, &k, &format!("tr '\\0' '\\n' < /proc/{p_pid}/environ"), "p-env-secret");
    denied(&c, &k, &format!("kill -0 {p_pid} && echo SIGNALLED"), "SIGNALLED");
    denied(&c, &k, &format!("curl -sf --unix-socket {p_socket} http://localhost/vm/metadata"), &p);
    // Each still reaches its own.
    assert_eq!(
        run_in(&c, &k, "cat /data/secret; echo $SECRET"),
        (0, "c-file-secret\nc-env-secret\n".into())
    );
    let own = run_in(&c, &p, "cat \"$GPUSPOT_DATA_DIR/secret\"; echo $SECRET");
    assert_eq!(own, (0, "p-file-secret\np-env-secret\n".into()));
}
