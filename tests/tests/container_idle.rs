//! Idle containers cost nothing (issue 26, item 6): the agent follows its containers' ends
//! through one engine events stream, never a `wait` held per container (which Podman
//! before 4.5 serves by polling in a loop, a core's worth for a handful of containers). With
//! 20 quiet containers, the engine's service and the agent each use well under a core's 1 %.
//! Ends are still seen at once: an exit, and a stop from the coordinator.

use gpuspot_e2e::podman::{ContainerAgent, PrivateEngine, image_request};
use gpuspot_e2e::{SOON, binaries, cluster, s, sh, wait_until};
use std::time::{Duration, Instant};

const CONTAINERS: usize = 20;
/// The bound asserted, far above the target (1 %) so that a loaded machine does not fail
/// the test, far below what a wait per container costs (0.54 of a core for 4 here).
const BOUND_CORES: f64 = 0.05;
const WINDOW: Duration = Duration::from_secs(10);

/// CPU seconds `pid` (all its threads) has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the parenthesised name: state is 3rd, utime 14th, stime 15th.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Cores each of `pids` used over `window`.
fn cores(pids: &[u32], window: Duration) -> Vec<f64> {
    let before: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let start = Instant::now();
    std::thread::sleep(window);
    let elapsed = start.elapsed().as_secs_f64();
    pids.iter().zip(before).map(|(p, b)| (cpu_seconds(*p) - b) / elapsed).collect()
}

#[test]
fn twenty_idle_containers_leave_the_engine_and_the_agent_idle_and_ends_are_still_seen() {
    let c = cluster!();
    // An engine of this test's own: the shared one serves other tests meanwhile.
    let engine = PrivateEngine::start(c.dir());
    let profile = c.write_profile("idle", "NVIDIA H100 80GB HBM3", CONTAINERS as u32 + 1, 42, 84);
    let agent = ContainerAgent::start_on(&c, &binaries!().agent, &profile, &engine.url);
    let ids: Vec<String> = (0..CONTAINERS)
        .map(|n| {
            let request = image_request(&format!("idle-{n}"), &["H100"], 1, &["sleep", "600"]);
            s(&c.api.create(&request), "id").to_owned()
        })
        .collect();
    for id in &ids {
        c.wait_state_within(id, "running", Duration::from_secs(120));
    }
    // Let the starts' own work (conmon, cleanup of pulls) settle, then measure.
    let settle = cores(&[engine.pid, agent.pid()], Duration::from_secs(2));
    let measured = cores(&[engine.pid, agent.pid()], WINDOW);
    let (engine_cores, agent_cores) = (measured[0], measured[1]);
    eprintln!(
        "{CONTAINERS} idle containers over {WINDOW:?}: podman service {:.2} % of a core, \
         agent {:.2} % (settling: {settle:.3?})",
        engine_cores * 100.0,
        agent_cores * 100.0
    );
    assert!(engine_cores < BOUND_CORES, "the engine works for idle containers: {engine_cores}");
    assert!(agent_cores < BOUND_CORES, "the agent works for idle containers: {agent_cores}");

    // Ends still arrive at once: one container exits by itself, one is stopped.
    let exiting = image_request("exits", &["H100"], 1, &sh("sleep 1; exit 7"));
    let exiting = s(&c.api.create(&exiting), "id").to_owned();
    let ended = wait_until(Duration::from_secs(60), "the exiting container to end", || {
        let instance = c.api.instance(&exiting);
        let end = ["terminated", "failed"].contains(&s(&instance, "state"));
        gpuspot_e2e::holds(end, || instance.to_string()).map(|()| instance)
    });
    assert_eq!(ended["exit_code"], 7, "{ended}");
    let (status, body) = c.api.delete(&format!("/v1/instances/{}", ids[0]));
    assert!(status < 300, "{status} {body}");
    wait_until(SOON, "the stopped container to end", || {
        let instance = c.api.instance(&ids[0]);
        gpuspot_e2e::holds(s(&instance, "state") == "terminated", || instance.to_string())
    });
}
