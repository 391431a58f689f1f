//! Agent restarts never end workloads (docs/contracts.md#guests): after `kill -9` or SIGTERM of the
//! agent every process workload keeps running and stays `running` in the API; the restarted agent
//! adopts them, their output keeps coming, a workload that exited while no agent ran reports its
//! real exit code, and only a stop from the coordinator ends one. A second agent on the same state
//! dir refuses to start.

use gpuspot_e2e::{
    Agent, Cluster, SOON, cluster, config_with_timers, is_alive, request, s, sh, wait_until,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// Long enough that a restart never makes the host `lost` (which would end its instances).
fn config() -> String {
    config_with_timers(&[("host_lost_after", "30s")])
}

/// Prints a tick every 100 ms, and `MARKED` once `mark` appears in its data dir.
const TICKER: &str = "echo $$ > pid; n=0; while :; do n=$((n+1)); echo tick $n; \
                      if [ -e mark ] && [ ! -e marked ]; then echo MARKED; touch marked; fi; \
                      sleep 0.1; done";

fn start(c: &Cluster, name: &str, script: &str) -> String {
    let id = s(&c.api.create(&request(name, &["RTX 5090"], 1, &sh(script))), "id").to_owned();
    c.wait_state(&id, "running");
    id
}

/// Waits until the agent's log says it re-adopted `n` workloads; how long that took.
fn wait_adopted(agent: &Agent, n: usize, since: Instant) -> Duration {
    wait_until(SOON, &format!("{} to re-adopt {n} workloads", agent.hostname), || {
        let log = plain(&agent.log());
        let needle = format!("adopted={n}");
        let line = log.lines().rev().find(|l| l.contains("workloads re-adopted"));
        match line {
            Some(line) if line.contains(&needle) => Ok(since.elapsed()),
            _ => Err(log.lines().rev().take(5).collect::<Vec<_>>().join("\n")),
        }
    })
}

#[test]
fn kill_9_and_a_restart_leave_every_process_workload_running_with_its_output() {
    let c = cluster!(&config());
    let profile = Cluster::seed_profile("host-a");
    let mut a = c.agent(&profile);
    let ids: Vec<String> = (0..3).map(|n| start(&c, &format!("w{n}"), TICKER)).collect();
    let pids: Vec<u32> = ids.iter().map(|id| a.workload_pid(id)).collect();
    let before: Vec<_> = ids.iter().map(|id| c.api.instance(id)).collect();
    for id in &ids {
        c.wait_logs(id, "tick 3");
    }

    let restarted = Instant::now();
    c.restart_agent(&mut a, &profile);
    let adopted = wait_adopted(&a, 3, restarted);
    for id in &ids {
        std::fs::write(a.instance_data_dir(id).join("mark"), "").unwrap();
    }
    for id in &ids {
        c.wait_logs(id, "MARKED");
    }
    let shipping = restarted.elapsed();
    eprintln!("restart to re-adopted: {adopted:?}; to new output in the API: {shipping:?}");

    for ((id, pid), before) in ids.iter().zip(&pids).zip(&before) {
        assert!(is_alive(*pid), "workload {id} ({pid}) died with its agent");
        let now = c.api.instance(id);
        assert_eq!(s(&now, "state"), "running", "{now}");
        assert_eq!(now["started_at"], before["started_at"], "{id} was restarted: {now}");
        let logs = c.api.logs(id);
        let ticks: Vec<u32> =
            logs.lines().filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok()).collect();
        assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{id}: ticks lost or repeated");
    }
    assert_eq!(a.workload_pid(&ids[0]), pids[0], "the same process, not a new one");

    // Only the coordinator ends them: a DELETE reaches the adopted workload.
    let (status, body) = c.api.delete(&format!("/v1/instances/{}", ids[0]));
    assert_eq!(status, 200, "{body}");
    let ended = c.wait_state(&ids[0], "terminated");
    assert_eq!(s(&ended, "termination_reason"), "user", "{ended}");
    wait_until(SOON, "the stopped workload to be gone", || {
        if is_alive(pids[0]) { Err(format!("pid {} alive", pids[0])) } else { Ok(()) }
    });
}

#[test]
fn a_workload_that_exits_while_the_agent_is_down_reports_its_real_exit_code() {
    let c = cluster!(&config());
    let profile = Cluster::seed_profile("host-a");
    let mut a = c.agent(&profile);
    let id = start(&c, "exits", "echo $$ > pid; while [ ! -e go ]; do sleep 0.05; done; exit 42");
    let pid = a.workload_pid(&id);

    a.kill();
    std::fs::write(a.instance_data_dir(&id).join("go"), "").unwrap();
    wait_until(SOON, "the workload to exit", || {
        if is_alive(pid) { Err(format!("pid {pid} alive")) } else { Ok(()) }
    });
    assert_eq!(s(&c.api.instance(&id), "state"), "running", "nobody told the coordinator yet");
    c.restart_agent(&mut a, &profile);
    let ended = c.wait_state(&id, "terminated");
    assert_eq!(ended["exit_code"], 42, "{ended}");
    assert_eq!(s(&ended, "termination_reason"), "exited", "{ended}");
}

#[test]
fn sigterm_stops_the_agent_but_not_its_workloads() {
    let c = cluster!(&config());
    let profile = Cluster::seed_profile("host-a");
    let mut a = c.agent(&profile);
    let id = start(&c, "survivor", TICKER);
    let pid = a.workload_pid(&id);

    signal(a.pid(), libc::SIGTERM);
    let status = a.wait_exit(SOON);
    assert!(status.success(), "the agent exits cleanly on SIGTERM: {status}\n{}", a.log());
    assert!(is_alive(pid), "SIGTERM of the agent ended its workload");
    assert!(plain(&a.log()).contains("workloads keep running"), "{}", a.log());

    c.restart_agent(&mut a, &profile);
    wait_adopted(&a, 1, Instant::now());
    std::fs::write(a.instance_data_dir(&id).join("mark"), "").unwrap();
    c.wait_logs(&id, "MARKED");
    assert_eq!(s(&c.api.instance(&id), "state"), "running");
    assert!(is_alive(pid));
}

#[test]
fn a_second_agent_on_the_same_state_dir_refuses_to_start() {
    let c = cluster!(&config());
    let profile = Cluster::seed_profile("host-a");
    let a = c.agent(&profile);
    let id = start(&c, "owned", TICKER);
    let pid = a.workload_pid(&id);

    let mut second = c.spawn_agent_on(&profile, &a.state_dir, "host-a");
    let status = second.wait_exit(SOON);
    assert!(!status.success(), "a second agent ran: {}", second.log());
    let expected = format!("another gpuspot agent (pid {}) is using the state dir", a.pid());
    assert!(plain(&second.log()).contains(&expected), "{}", second.log());
    assert!(is_alive(pid), "the refused agent touched the first one's workload");
    assert_eq!(s(&c.api.instance(&id), "state"), "running");
    assert!(Path::new(&a.state_dir).join("agent.lock").exists());
    // Its drop sweeps the shared state dir: keep it until the end of the test.
    drop(second);
}

/// `text` without the terminal colour codes of the agent's log.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a process this test started; no memory is involved.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
}
