//! Process guests in their own network namespace (docs/contracts.md#limits; issue 24 hole 4): one
//! tenant's guest cannot reach another's undeclared port, neither over 127.0.0.1 nor over
//! the host's address; it reaches the other's published `PORT` through the host, and the
//! outside world (here a server on the host's non-loopback address), but not the host's
//! loopback. Commands run in a guest (exec) see its network. The helper that connects a
//! guest's network outlives an agent restart, is started again when it dies (while the
//! agent runs or not) and goes with the guest.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::exec::exec;
use gpuspot_e2e::guests::host_address;
use gpuspot_e2e::guests::value_of;
use gpuspot_e2e::{
    Cluster, SOON, cluster, config_with_timers, is_alive, request, s, sh, wait_until,
};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::time::Duration;

/// A server answering `body` to every connection, until the test process ends; its port.
fn serve(address: IpAddr, body: &'static str) -> u16 {
    let listener = TcpListener::bind((address, 0)).expect("bind a test server");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let answer = format!("HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    port
}

/// B serves `published` on its `PORT` and `secret` on an undeclared port, on every address.
const B: &str = "mkdir -p pub sec; echo published > pub/who; echo secret > sec/who; \
                 (cd sec && exec python3 -m http.server 9999 >/dev/null 2>&1 &); \
                 echo PORT=$PORT; cd pub; exec python3 -m http.server $PORT";

/// What A tries; each line is what curl got, then its exit status.
fn probe(host: IpAddr, b_port: &str, outside: u16, loopback: u16) -> String {
    let get = |key: &str, url: String| {
        format!("echo {key}=$(curl -s --max-time 3 {url} 2>&1; echo \" $?\"); ")
    };
    [
        get("B_LOOPBACK", "http://127.0.0.1:9999/who".into()),
        get("B_HOST", format!("http://{host}:9999/who")),
        get("B_PUBLISHED", format!("http://{host}:{b_port}/who")),
        get("OUTSIDE", format!("http://{host}:{outside}/")),
        get("HOST_LOOPBACK", format!("http://127.0.0.1:{loopback}/")),
        get("HOST_VIA_GATEWAY", format!("http://10.0.2.2:{loopback}/")),
        "echo PROBED; exec sleep 120".into(),
    ]
    .concat()
}

#[test]
fn tenants_process_guests_reach_each_other_only_through_published_ports() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let (alice, bob) = (create_account(&c.api, "alice"), create_account(&c.api, "bob"));
    for tenant in [&alice, &bob] {
        tenant.pay(&c.api, "100");
    }
    let host = host_address();
    let outside = serve(host, "outside-ok");
    let loopback = serve(IpAddr::from([127, 0, 0, 1]), "host-loopback");

    let b = s(&bob.api.create(&request("b", &["RTX 5090"], 1, &sh(B))), "id").to_owned();
    c.wait_state(&b, "running");
    let b_logs = c.wait_logs(&b, "PORT=");
    let b_port = value_of(&b_logs, "PORT").expect("B's PORT").to_owned();
    // B's own command sees its undeclared server.
    wait_until(SOON, "B's servers to listen", || {
        let look = "curl -s --max-time 2 http://127.0.0.1:9999/who; \
                    curl -s --max-time 2 http://127.0.0.1:$PORT/who";
        let (status, body) = exec(&c.api, &b, &["sh", "-c", look], 10);
        let output = s(&body, "output").to_owned();
        if status == 200 && output == "secret\npublished\n" {
            Ok(())
        } else {
            Err(body.to_string())
        }
    });

    let script = probe(host, &b_port, outside, loopback);
    let a = s(&alice.api.create(&request("a", &["RTX 5090"], 1, &sh(&script))), "id").to_owned();
    let out = c.wait_logs(&a, "PROBED");
    eprintln!("{out}");
    let line = |key: &str| value_of(&out, key).unwrap_or_else(|| panic!("no {key}= in {out}"));
    for key in ["B_LOOPBACK", "B_HOST"] {
        assert!(!line(key).contains("secret"), "{key}: A reached B's undeclared port: {out}");
        assert!(!line(key).ends_with(" 0"), "{key}: {out}");
    }
    assert_eq!(line("B_PUBLISHED"), "published 0", "B's published port through the host");
    assert_eq!(line("OUTSIDE"), "outside-ok 0", "the guest's outbound access");
    for key in ["HOST_LOOPBACK", "HOST_VIA_GATEWAY"] {
        assert!(!line(key).contains("host-loopback"), "{key}: the host's loopback: {out}");
    }
}

/// The network helper of instance `id`: the process serving its API socket.
fn helper_of(id: &str) -> Option<u32> {
    let socket = format!("/{id}/net.sock");
    let pids = std::fs::read_dir("/proc").expect("/proc").flatten();
    pids.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).find(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline.contains("slirp4netns") && cmdline.contains(&socket)
    })
}

/// What `url` answers, if anything, within a second.
fn answer(url: &str) -> Option<String> {
    let client = reqwest::blocking::Client::new();
    let response = client.get(url).timeout(Duration::from_secs(1)).send().ok()?;
    response.text().ok()
}

#[test]
fn a_published_port_outlives_an_agent_restart_and_a_dead_helper_and_goes_with_the_guest() {
    let c = cluster!(&config_with_timers(&[("host_lost_after", "30s")]));
    let profile = Cluster::seed_profile("host-a");
    let mut a = c.agent(&profile);
    let server = "echo ok > who; echo GID=$(id -g); echo PORT=$PORT; \
                  exec python3 -m http.server $PORT";
    let id = s(&c.api.create(&request("web", &["RTX 5090"], 1, &sh(server))), "id").to_owned();
    let logs = c.wait_logs(&id, "PORT=");
    let url = format!("http://127.0.0.1:{}/who", value_of(&logs, "PORT").expect("PORT"));
    let serves = || answer(&url).filter(|a| a == "ok\n").ok_or("no answer".to_owned());
    wait_until(SOON, "the guest to answer on its port", serves);
    let helper = helper_of(&id).expect("the guest's network helper");
    // Root without capabilities, in the guest's group: the host's filter knows its traffic.
    let status = std::fs::read_to_string(format!("/proc/{helper}/status")).expect("status");
    let ids = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).unwrap_or("").trim();
    let gid = value_of(&logs, "GID").expect("GID");
    assert!(ids("Uid:").split_whitespace().all(|id| id == "0"), "{status}");
    assert!(ids("Gid:").split_whitespace().all(|id| id == gid), "{status}");
    assert_eq!(ids("CapEff:"), "0000000000000400", "only CAP_NET_BIND_SERVICE: {status}");

    c.restart_agent(&mut a, &profile);
    serves().expect("the port answers while no agent runs");
    wait_until(SOON, "the agent to adopt the guest", || {
        let log = a.log();
        if log.contains("adopting a workload") { Ok(()) } else { Err(log) }
    });
    assert_eq!(helper_of(&id), Some(helper), "the restarted agent keeps the running helper");

    // The helper dies while no agent runs: the restarted agent starts another.
    a.kill();
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(helper as i32, libc::SIGKILL) };
    wait_until(SOON, "the helper to end", || {
        if is_alive(helper) { Err(String::new()) } else { Ok(()) }
    });
    assert!(serves().is_err(), "the port answers without its helper");
    c.restart_agent(&mut a, &profile);
    wait_until(SOON, "the guest to answer again", serves);
    let second = helper_of(&id).expect("a new helper");
    assert_ne!(second, helper);
    // And while the agent runs: it starts another at once.
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(second as i32, libc::SIGKILL) };
    wait_until(SOON, "a third helper", || match helper_of(&id) {
        Some(third) if third != second => Ok(()),
        other => Err(format!("{other:?}")),
    });
    wait_until(SOON, "the guest to answer through it", serves);

    let (status, body) = c.api.delete(&format!("/v1/instances/{id}"));
    assert!(status < 300, "{status} {body}");
    c.wait_state(&id, "terminated");
    wait_until(SOON, "the helper to be gone and the port closed", || {
        match (helper_of(&id), answer(&url)) {
            (None, None) => Ok(()),
            left => Err(format!("{left:?}")),
        }
    });
}
