//! What one tenant's guests cannot do to another's over the network or the host's disk
//! (docs/contracts.md#limits, issue 24 holes 4 and 7), on a real Podman: each container in a
//! network of its own, reached only on its declared ports through the host (not from another
//! tenant's container or process guest); no raw sockets, no device nodes; and a root filesystem a
//! guest cannot fill the host's disk through.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::exec::{denied, run_in};
use gpuspot_e2e::guests::host_address;
use gpuspot_e2e::podman::{ContainerAgent, container_ip, image_request, networks_of};
use gpuspot_e2e::{SOON, binaries, cluster, holds, request, s, sh, wait_until};
use serde_json::json;
use std::time::Instant;

const RTX: &str = "NVIDIA GeForce RTX 5090";

/// Serves `bob-secret` on 8080 and 9999 (busybox httpd, in the background), then idles.
const BOB_SERVER: &str = "mkdir -p /tmp/w && echo bob-secret > /tmp/w/index.html && \
     httpd -p 9999 -h /tmp/w && httpd -p 8080 -h /tmp/w && echo SERVING; exec sleep 300";

#[test]
fn tenants_guests_reach_a_container_only_on_its_declared_ports_through_the_host() {
    let c = cluster!();
    let profile = c.write_profile("shared", RTX, 3, 12, 24);
    let h = ContainerAgent::start(&c, &binaries!().agent, &profile);
    let (alice, bob) = (create_account(&c.api, "alice"), create_account(&c.api, "bob"));
    alice.pay(&c.api, "100.00");
    bob.pay(&c.api, "100.00");

    let mut web = image_request("bobweb", &["RTX 5090"], 1, &sh(BOB_SERVER));
    web["ports"] = json!([8080]);
    let started = Instant::now();
    let b = s(&bob.api.create(&web), "id").to_owned();
    c.wait_state(&b, "running");
    eprintln!("request to running container (own network included): {:?}", started.elapsed());
    let idle = sh("echo UP; exec sleep 300");
    let id = |created: serde_json::Value| s(&created, "id").to_owned();
    let a = id(alice.api.create(&image_request("alicebox", &["RTX 5090"], 1, &idle)));
    let p = id(alice.api.create(&request("aliceproc", &["RTX 5090"], 1, &idle)));
    c.wait_logs(&b, "SERVING");
    c.wait_logs(&a, "UP");
    c.wait_logs(&p, "UP");
    let bob_ip = container_ip(&b);
    let host_port = c.api.instance(&b)["host_ports"][0].as_u64().expect("a host port");

    // The declared port answers through the host, from the host and from a process guest
    // (whose 127.0.0.1 is its own: it comes through the host's address).
    let through_host = format!("curl -sS -m 5 http://{}:{host_port}/", host_address());
    let page = reqwest::blocking::get(format!("http://127.0.0.1:{host_port}/")).unwrap();
    assert_eq!(page.text().unwrap(), "bob-secret\n");
    assert_eq!(run_in(&alice.api, &p, &through_host), (0, "bob-secret\n".into()));

    // Bob's undeclared port, and his container's own address, are out of reach for Alice's
    // container and for her process guest.
    for port in [9999, 8080] {
        let direct = format!("curl -sS -m 5 http://{bob_ip}:{port}/");
        denied(&alice.api, &a, &direct, "bob-secret");
        denied(&alice.api, &p, &direct, "bob-secret");
    }
    // Bob's container itself serves both.
    let own = run_in(&bob.api, &b, "curl -sS -m 5 http://127.0.0.1:9999/");
    assert_eq!(own, (0, "bob-secret\n".into()));

    // Each container had a network of its own; they go with their instances.
    assert_eq!(networks_of(&h.label()).len(), 2, "{:?}", networks_of(&h.label()));
    for id in [&a, &b] {
        let (status, body) = c.api.delete(&format!("/v1/instances/{id}"));
        assert_eq!(status, 200, "{body}");
    }
    wait_until(SOON, "the containers' networks to be removed", || {
        let left = networks_of(&h.label());
        holds(left.is_empty(), || format!("{left:?}"))
    });
}

#[test]
fn a_container_has_no_raw_sockets_no_device_nodes_and_cannot_fill_the_host_disk() {
    let c = cluster!();
    // 4 GiB of memory: the scratch space fills (1 GiB, the data disk) before the memory.
    let profile = c.write_profile("tight", RTX, 1, 4, 4);
    let _h = ContainerAgent::start(&c, &binaries!().agent, &profile);
    let mut body = image_request("filler", &["RTX 5090"], 1, &sh("echo UP; exec sleep 300"));
    body["data_disk_gib"] = json!(1);
    let k = s(&c.api.create(&body), "id").to_owned();
    c.wait_logs(&k, "UP");

    let ping = denied(&c.api, &k, "ping -c 1 -W 1 127.0.0.1", "1 packets received");
    assert!(ping.contains("permission denied"), "{ping}");
    let arp = denied(&c.api, &k, "arping -c 1 -w 1 -I eth0 10.0.0.1", "Unicast reply");
    assert!(arp.contains("Operation not permitted"), "{arp}");
    let node = denied(&c.api, &k, "mknod /tmp/mem c 1 1 && echo MADE", "MADE");
    assert!(node.contains("Operation not permitted"), "{node}");

    // 1.5 GiB into the root filesystem: nothing lands on the host's disk.
    for (path, error) in [
        ("/big", "Read-only file system"),
        ("/usr/big", "Read-only file system"),
        ("/tmp/big", "No space left on device"),
        ("/root/big", "No space left on device"),
    ] {
        let write = format!("dd if=/dev/zero of={path} bs=1M count=1536 2>&1; rm -f {path}");
        let output = denied(&c.api, &k, &format!("{write}; exit 1"), "1536+0 records out");
        assert!(output.contains(error), "{path}: {output}");
    }
    // The instance is unharmed, and its data disk is where large files go.
    let (code, output) = run_in(&c.api, &k, "dd if=/dev/zero of=/data/f bs=1M count=100 2>&1");
    assert_eq!(code, 0, "{output}");
    assert_eq!(s(&c.api.instance(&k), "state"), "running");
}
