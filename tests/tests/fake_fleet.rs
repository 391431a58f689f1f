//! A load-test fleet on the fake runtime (issue 26, item 5; docs/contracts.md#guests "The fake
//! runtime binds no host ports"): 250 simulated hosts in one `gpuspot-agent fleet` process start
//! 2,000 instances and none fails, even when every port of the fleet's range is held by another
//! program, because fake guests listen on nothing.

use gpuspot_e2e::process::Proc;
use gpuspot_e2e::{binaries, cluster, config_with_timers, request, s, wait_until};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

const HOSTS: usize = 250;
const INSTANCES: usize = 2_000;
/// Ports the fleet hands to guests; the test holds them all. Below the ephemeral ports,
/// above the blocks the other tests' agents and `gpuspot dev` use.
const PORTS: (u16, u16) = (32_700, 32_715);

/// Holds every port of `PORTS` that nobody holds yet (one held elsewhere is busy anyway).
fn squat() -> Vec<TcpListener> {
    (PORTS.0..=PORTS.1).filter_map(|port| TcpListener::bind(("0.0.0.0", port)).ok()).collect()
}

/// Instances by state, and the first failed one.
fn census(instances: &[Value]) -> (BTreeMap<String, usize>, Option<Value>) {
    let mut states = BTreeMap::new();
    for instance in instances {
        *states.entry(s(instance, "state").to_owned()).or_insert(0) += 1;
    }
    let failed = instances.iter().find(|i| ["failed", "terminated"].contains(&s(i, "state")));
    (states, failed.cloned())
}

#[test]
fn a_fake_fleet_of_250_hosts_starts_2000_instances_with_none_failed() {
    // A slower heartbeat than the other tests: 250 hosts share this machine's cores.
    let c = cluster!(&config_with_timers(&[("heartbeat", "2s"), ("host_lost_after", "30s")]));
    let _squatted = squat();
    let profile = c.write_profile("fleet", "NVIDIA H100 80GB HBM3", 8, 64, 512);
    let mut fleet = Command::new(binaries!().agent);
    fleet
        .args(["fleet", "--runtime", "fake", "--hosts", &HOSTS.to_string()])
        .arg("--coordinator")
        .arg(c.coordinator.quic.to_string())
        .arg("--profile")
        .arg(&profile)
        .arg("--state-dir")
        .arg(c.dir().join("fleet"))
        .arg(format!("--ports={}-{}", PORTS.0, PORTS.1))
        .env("GPUSPOT_JOIN_TOKEN", c.join_token_for(HOSTS as u32))
        .env("RUST_LOG", "warn");
    let _fleet = Proc::spawn("fleet", fleet, &c.dir().join("fleet.log"));
    wait_until(Duration::from_secs(120), "every fleet host to be connected", || {
        let hosts = c.api.hosts();
        let connected = hosts.iter().filter(|h| s(h, "state") == "connected").count();
        if connected == HOSTS { Ok(()) } else { Err(format!("{connected} connected")) }
    });

    let body = request("fleet", &["H100"], 1, &["sleep", "infinity"]);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..INSTANCES / 8 {
                    c.api.create(&body);
                }
            });
        }
    });
    let states = wait_until(Duration::from_secs(180), "every instance to run", || {
        let (states, failed) = census(&c.api.instances());
        if let Some(failed) = failed {
            panic!("an instance of the fake fleet ended: {failed}");
        }
        match states.get("running") {
            Some(&n) if n == INSTANCES => Ok(states),
            _ => Err(format!("{states:?}")),
        }
    });
    assert_eq!(states.values().sum::<usize>(), INSTANCES, "{states:?}");
}
