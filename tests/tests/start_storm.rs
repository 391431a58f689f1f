//! Start storms (docs/contracts.md#guests "Cost of a start"): one simulated host of 256 GPUs runs
//! 256 one-GPU process guests, each still isolated (its own uid and PID namespace, its cgroup
//! limits, its data disk limit, only its own processes in sight); an agent busy starting 500 guests
//! keeps its host `connected` all along, and so do 32 hosts of one fleet process starting 256 (the
//! coordinator of these tests takes a host silent for 2 s for lost).

use gpuspot_e2e::guest_limits::ConfiguredAgent;
use gpuspot_e2e::guests::{host_pid_of, is_mount_point, value_of};
use gpuspot_e2e::process::Proc;
use gpuspot_e2e::{Cluster, binaries, cluster, request, s, sh, wait_until};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What each guest tells about itself, then it idles.
const SHOW: &str = "echo $$ > pid; echo UID=$(id -u); echo PIDNS=$(readlink /proc/self/ns/pid); \
                    echo PROCS=$(ls -d /proc/[0-9]* | wc -l); \
                    echo CGROUPS=$(grep -E ':(memory|pids):|^0::' /proc/self/cgroup | tr '\\n' ' '); \
                    echo BIG=$(fallocate -l 2G big 2>&1; echo $?); rm -f big; exec sleep 600";

/// An agent for a simulated host of `gpus` H100s named `name`, with a host port for each
/// guest (every process guest gets one) from `ports`: above the kernel's ephemeral range
/// (32768-60999), where no client socket takes one, and used by no other test.
fn agent(c: &Cluster, name: &str, gpus: u32, ports: &str) -> ConfiguredAgent {
    let profile = c.write_profile(name, "H100", gpus, gpus * 2, gpus * 16);
    let config = format!("[ports]\nrange = {ports:?}\n");
    ConfiguredAgent::start(c, &binaries!().agent, &profile, name, &config)
}

/// The host pid of the guest whose data dir is `data` (it wrote its own pid to `pid`).
fn guest_pid(data: &std::path::Path) -> Option<u32> {
    let pid = std::fs::read_to_string(data.join("pid")).ok()?.trim().parse().ok()?;
    host_pid_of(data, pid)
}

/// Asks for `n` one-GPU guests running `script` on H100s with a 1 GiB data disk.
fn create(c: &Cluster, n: usize, script: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut body = request(&format!("storm-{i}"), &["H100"], 1, &sh(script));
            body["data_disk_gib"] = json!(1);
            s(&c.api.create(&body), "id").to_owned()
        })
        .collect()
}

/// How many of `ids` run now, and any that failed or ended instead.
fn running(c: &Cluster, ids: &BTreeSet<String>) -> Result<usize, String> {
    let instances = c.api.instances();
    let mine = instances.iter().filter(|i| ids.contains(i["id"].as_str().unwrap_or("")));
    let mut n = 0;
    for instance in mine {
        match instance["state"].as_str() {
            Some("running") => n += 1,
            Some("queued" | "scheduled") => {}
            other => return Err(format!("an instance is {other:?}, not starting: {instance}")),
        }
    }
    Ok(n)
}

/// The state of host `name` as `GET /v1/hosts` shows it.
fn host_state(c: &Cluster, name: &str) -> String {
    c.host(name).map(|h| s(&h, "state").to_owned()).unwrap_or_default()
}

/// The memory limit the guest's memory cgroup holds (v1 or v2), from the host's side.
fn memory_limit(cgroups: &str) -> Option<u64> {
    for entry in cgroups.split_whitespace() {
        let read = |path: String| std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok();
        if let Some(path) = entry.split_once(":memory:").map(|(_, p)| p) {
            return read(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        }
        if let Some(path) = entry.strip_prefix("0::") {
            let limit = read(format!("/sys/fs/cgroup{path}/memory.max"))
                .or_else(|| read(format!("/sys/fs/cgroup/unified{path}/memory.max")));
            if limit.is_some() {
                return limit;
            }
        }
    }
    None
}

#[test]
fn a_host_of_256_gpus_runs_256_process_guests_each_isolated() {
    let c = cluster!();
    let agent = agent(&c, "big", 256, "61000-61299");
    let began = Instant::now();
    let ids = create(&c, 256, SHOW);
    let all: BTreeSet<String> = ids.iter().cloned().collect();
    wait_until(Duration::from_secs(240), "all 256 guests to run", || {
        let n = running(&c, &all)?;
        if n == 256 { Ok(()) } else { Err(format!("{n} of 256 run")) }
    });
    eprintln!("256 guests running after {:?}", began.elapsed());

    let mut uids = BTreeSet::new();
    let mut namespaces = BTreeSet::new();
    for id in &ids {
        let logs = c.wait_logs(id, "BIG=");
        let uid: u32 = value_of(&logs, "UID").and_then(|u| u.parse().ok()).expect("UID");
        assert_ne!(uid, 0, "{id} runs as root: {logs}");
        uids.insert(uid);
        namespaces.insert(value_of(&logs, "PIDNS").expect("PIDNS").to_owned());
        let procs: u32 = value_of(&logs, "PROCS").and_then(|p| p.parse().ok()).expect("PROCS");
        assert!(procs <= 4, "{id} sees {procs} processes, more than its own: {logs}");
    }
    assert_eq!(uids.len(), 256, "every guest has a uid of its own: {uids:?}");
    assert_eq!(namespaces.len(), 256, "every guest has a PID namespace of its own");

    // The costlier checks on a few: cgroup limits, the data disk, the pid on the host.
    for id in [&ids[0], &ids[127], &ids[255]] {
        let logs = c.wait_logs(id, "BIG=");
        let cgroups = value_of(&logs, "CGROUPS").unwrap_or_default();
        let limit = memory_limit(cgroups)
            .unwrap_or_else(|| panic!("{id}: no memory cgroup in {cgroups:?}"));
        assert!(limit <= 16 << 30, "{id}: memory limit {limit} is not its share");
        let data = agent.state_dir.join("instances").join(id).join("data");
        assert!(guest_pid(&data).is_some(), "{id} runs no process on the host");
        if is_mount_point(&data) {
            let big = value_of(&logs, "BIG").unwrap_or_default();
            assert!(!big.ends_with(" 0") && big != "0", "{id}: 2 GiB fit on a 1 GiB disk: {big}");
        }
    }
}

#[test]
fn an_agent_starting_500_guests_keeps_its_host_connected() {
    let c = cluster!();
    let _agent = agent(&c, "busy", 512, "61400-61999");
    let ids = create(&c, 500, "exec sleep 600");
    let all: BTreeSet<String> = ids.into_iter().collect();
    let began = Instant::now();
    wait_until(Duration::from_secs(300), "all 500 guests to run, the host connected", || {
        let state = host_state(&c, "busy");
        assert_eq!(state, "connected", "the host went {state} while starting guests");
        let n = running(&c, &all)?;
        if n == 500 { Ok(()) } else { Err(format!("{n} of 500 run")) }
    });
    eprintln!("500 guests running after {:?}", began.elapsed());
    assert_eq!(host_state(&c, "busy"), "connected");
}

/// The fleet case: many hosts in one agent process share its few threads, so a
/// start that held one (synchronously, in a host's link loop) starved the other hosts'
/// heartbeats and they were declared lost. 32 hosts of 8 GPUs start 256 guests; none is
/// ever anything but `connected`.
#[test]
fn a_fleet_of_hosts_starting_256_guests_loses_no_host() {
    let c = cluster!();
    let profile = c.write_profile("fleet", "H100", 8, 16, 128);
    let mut command = std::process::Command::new(binaries!().agent);
    command
        .args(["fleet", "--hosts", "32", "--link-timeout", "3s", "--coordinator"])
        .arg(c.coordinator.quic.to_string())
        .arg("--profile")
        .arg(&profile)
        .arg("--state-dir")
        .arg(c.dir().join("fleet"))
        .env("GPUSPOT_JOIN_TOKEN", c.join_token_for(32));
    let _fleet = Proc::spawn("fleet", command, &c.dir().join("fleet.log"));
    let hosts = || c.api.hosts().into_iter().filter(|h| s(h, "hostname").starts_with("fleet-"));
    wait_until(Duration::from_secs(60), "32 fleet hosts to connect", || {
        let n = hosts().filter(|h| s(h, "state") == "connected").count();
        if n == 32 { Ok(()) } else { Err(format!("{n} of 32 connected")) }
    });
    let ids: BTreeSet<String> = create(&c, 256, "exec sleep 600").into_iter().collect();
    let began = Instant::now();
    wait_until(Duration::from_secs(300), "256 guests to run, every host connected", || {
        let lost: Vec<String> = hosts()
            .filter(|h| s(h, "state") != "connected")
            .map(|h| format!("{} {}", s(&h, "hostname"), s(&h, "state")))
            .collect();
        assert!(lost.is_empty(), "hosts not connected while starting guests: {lost:?}");
        let n = running(&c, &ids)?;
        if n == 256 { Ok(()) } else { Err(format!("{n} of 256 run")) }
    });
    eprintln!("256 guests on 32 hosts running after {:?}", began.elapsed());
}
