//! Host ports held by programs outside gpuspot (issue 24 hole 6, docs/contracts.md#serving): a
//! guest or a second cluster on the same machine that binds most of the agent's `[ports]` range
//! does not fail anyone's request; the agent refuses the start naming the busy port and the
//! coordinator draws another, until the guest runs on a free one.

use gpuspot_e2e::{cluster, request, s, sh};
use std::net::TcpListener;

#[test]
fn ports_held_by_another_program_do_not_fail_requests_they_run_on_free_ports() {
    let c = cluster!();
    let agent = c.agent(&c.write_profile("squatted", "NVIDIA GeForce RTX 5090", 3, 24, 48));
    let (first, last) = agent.ports();
    // Another program holds the lowest 10 of the host's 16 ports.
    let squatted: Vec<TcpListener> = (first..first + 10)
        .map(|port| TcpListener::bind(("127.0.0.1", port)).expect("bind a port of the range"))
        .collect();
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let command = sh("echo \"port=$PORT\"; exec sleep 300");
            let created = c.api.create(&request(&format!("web-{n}"), &["RTX 5090"], 1, &command));
            s(&created, "id").to_owned()
        })
        .collect();
    let mut given = Vec::new();
    for id in &ids {
        let running = c.wait_state(id, "running");
        let port = running["host_ports"][0].as_u64().expect("a host port") as u16;
        assert!((first + 10..=last).contains(&port), "{port} is not a free port: {running}");
        c.wait_logs(id, &format!("port={port}\n"));
        given.push(port);
    }
    given.sort_unstable();
    given.dedup();
    assert_eq!(given.len(), 3, "each guest its own port: {given:?}");
    drop(squatted);
}
