//! Agents of another protocol version (docs/architecture.md#agent-link): the coordinator
//! refuses them with a version mismatch, in the sentence-only form every version decodes,
//! also when the rest of their hello has a shape it cannot read (protocol 5 reported a
//! failed workload as a bare sentence; a newer agent's fields are unknown here), instead of
//! dropping the connection without a word. The host they hold a certificate for stays
//! disconnected (or lost).

use gpuspot_common::codec;
use gpuspot_common::protocol::{
    AgentMessage, CoordinatorMessage, GuestNetwork, GuestRuntime, PROTOCOL_VERSION,
};
use gpuspot_common::{GpuInfo, HostInventory};
use gpuspot_e2e::{Cluster, SOON, cluster, peer, wait_until};

/// Protocol 5's report of a failed workload: its instance id, then `Failed` (variant 3)
/// holding only the sentence.
type FailedReportV5<'a> = (&'a str, (u32, &'a str));

fn inventory() -> HostInventory {
    let gpu = GpuInfo {
        index: 0,
        uuid: "GPU-old".into(),
        model: "NVIDIA H100 80GB HBM3".into(),
        memory_mib: 81920,
        pci_bus_id: "0000:00:00.0".into(),
        healthy: true,
    };
    HostInventory { hostname: "old".into(), gpus: vec![gpu], cpu_cores: 16, memory_gib: 64 }
}

/// The body of a hello as an agent of `version` with protocol 5's shapes writes it: bincode
/// writes the variant (1, `Hello`) and then each field in order.
fn hello(version: u32, reports: &[FailedReportV5<'_>]) -> Vec<u8> {
    let network = GuestNetwork { ports: (20_000, 20_009), address: None };
    let fields =
        (1u32, version, "0.old", inventory(), reports, vec![GuestRuntime::Process], network);
    codec::encode(&fields).expect("encode")[4..].to_vec()
}

fn refusal_of(version: u32) -> CoordinatorMessage {
    let reason = format!(
        "protocol version {version} is not supported (coordinator speaks {PROTOCOL_VERSION})"
    );
    CoordinatorMessage::LegacyRefused { reason }
}

/// Ok once host `old` is no longer connected (disconnected, or lost already).
fn gone(c: &Cluster) -> Result<(), String> {
    let host = c.host("old").ok_or("host old is not listed")?;
    if host["state"] == "connected" { Err(host.to_string()) } else { Ok(()) }
}

/// A cluster whose one host joined and then went away, leaving its credentials behind.
fn cluster_with_credentials() -> (Cluster, std::path::PathBuf) {
    let c = cluster!();
    let profile = c.write_profile("old", "NVIDIA H100 80GB HBM3", 1, 16, 64);
    let mut agent = c.agent(&profile);
    agent.kill();
    wait_until(SOON, "the killed agent's host to go", || gone(&c));
    (c, agent.state_dir.clone())
}

#[test]
fn the_hello_layout_here_is_the_protocols() {
    // With no report, protocol 5's hello and ours have one shape: it must read as a hello.
    let read: AgentMessage = codec::decode_body(&hello(5, &[])).expect("a hello");
    let AgentMessage::Hello { version, instances, .. } = read else { panic!("{read:?}") };
    assert_eq!((version, instances.len()), (5, 0));
}

#[test]
fn agents_of_other_versions_are_refused_with_a_version_mismatch() {
    let (c, state_dir) = cluster_with_credentials();
    let failed: FailedReportV5<'_> = ("i-0123456789abcdef", (3, "image_pull_failed: gone"));
    let newer = PROTOCOL_VERSION + 1;
    let mut future = codec::encode(&(1u32, newer, "0.new")).expect("encode")[4..].to_vec();
    future.extend_from_slice(&[0xff; 16]);
    let cases = [
        ("an older agent", 5, hello(5, &[])),
        ("an older agent that reports a failed workload", 5, hello(5, &[failed])),
        ("a newer agent", newer, future),
    ];
    for (who, version, body) in cases {
        let answer = peer::first_answer(c.coordinator.quic, &state_dir, &body);
        let answer = answer.unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(answer, Some(refusal_of(version)), "{who}");
    }
    gone(&c).expect("a refused agent's host stays away");
}
