//! Placement by guest runtime (docs/contracts.md#guests): image requests go only to hosts that run
//! containers, and wait with a reason that says so when none does.

use super::{NoFit, place};
use crate::model::{Billing, GpuRequest, InstanceRequest, Range, SnapshotOptions};
use crate::registry::{Host, Registry};
use chrono::DateTime;
use gpuspot_common::protocol::GuestRuntime;
use gpuspot_common::{GpuInfo, HostId, HostInventory, Money};

fn host(id: &str, model: &str, gpus: u32, runtimes: &[GuestRuntime]) -> Host {
    let inventory = HostInventory {
        hostname: id.into(),
        gpus: (0..gpus)
            .map(|i| GpuInfo {
                index: i,
                uuid: format!("GPU-{id}-{i}"),
                // A mixed host (second GPU of another model) is examined one by one.
                model: if model == "mixed" && i % 2 == 1 { "NVIDIA L4" } else { "NVIDIA H100" }
                    .into(),
                memory_mib: 1,
                pci_bus_id: String::new(),
                healthy: true,
            })
            .collect(),
        cpu_cores: 64,
        memory_gib: 512,
    };
    let mut host = Host::new(HostId::from(id), &inventory, "test", DateTime::UNIX_EPOCH);
    host.set_runtimes(runtimes);
    host
}

fn request(image: Option<&str>) -> InstanceRequest {
    InstanceRequest {
        name: "r".into(),
        gpu: GpuRequest { models: vec!["H100".into()], count: 1 },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing: Billing::Regular,
        command: vec![],
        env: Default::default(),
        snapshot: SnapshotOptions::default(),
        image: image.map(str::to_owned),
        data_disk_gib: 50,
        on_unavailable: Default::default(),
        ports: Vec::new(),
        readiness: None,
    }
}

const PROCESS: &[GuestRuntime] = &[GuestRuntime::Process];
const BOTH: &[GuestRuntime] = &[GuestRuntime::Process, GuestRuntime::Container];

fn registry(hosts: Vec<Host>) -> Registry {
    let mut registry = Registry::default();
    for host in hosts {
        registry.insert(host);
    }
    registry
}

fn placed_on(registry: &Registry, request: &InstanceRequest) -> Result<String, NoFit> {
    place(registry, request, |_| Money(1), |_| true).map(|p| p.host_id.to_string())
}

#[test]
fn image_requests_go_only_to_hosts_that_run_containers() {
    // The process-only host is the better fit (fewer free units left) but cannot run it.
    let reg = registry(vec![host("h-proc", "H100", 1, PROCESS), host("h-box", "H100", 8, BOTH)]);
    assert_eq!(placed_on(&reg, &request(Some("busybox"))).unwrap(), "h-box");
    assert_eq!(placed_on(&reg, &request(None)).unwrap(), "h-proc");
}

#[test]
fn without_a_container_host_an_image_request_waits_and_says_why() {
    for model in ["H100", "mixed"] {
        let reg = registry(vec![host("h-proc", model, 2, PROCESS)]);
        let Err(NoFit::Never(reason)) = placed_on(&reg, &request(Some("busybox"))) else {
            panic!("an image request must not be placed on a process-only host ({model})")
        };
        assert!(
            reason.starts_with("no host with a matching GPU runs containers"),
            "{model}: {reason}"
        );
        assert!(placed_on(&reg, &request(None)).is_ok(), "{model}");
    }
}

#[test]
fn a_busy_container_host_means_waiting_for_capacity() {
    let mut busy = host("h-box", "H100", 1, BOTH);
    busy.units[0].instance = Some("i-x".into());
    let reg = registry(vec![busy, host("h-proc", "H100", 4, PROCESS)]);
    let Err(NoFit::Wait(reason)) = placed_on(&reg, &request(Some("busybox"))) else {
        panic!("the container host will free up: wait")
    };
    assert!(reason.starts_with("waiting for capacity"), "{reason}");
}

#[test]
fn a_host_that_starts_offering_containers_is_reindexed() {
    let mut reg = registry(vec![host("h-a", "H100", 2, PROCESS)]);
    assert!(placed_on(&reg, &request(Some("busybox"))).is_err());
    let changed = reg.get_mut(&HostId::from("h-a")).unwrap().set_runtimes(&[
        GuestRuntime::Container,
        GuestRuntime::Process,
        GuestRuntime::Container,
    ]);
    assert!(changed);
    assert_eq!(reg.get(&HostId::from("h-a")).unwrap().runtimes, BOTH);
    assert_eq!(placed_on(&reg, &request(Some("busybox"))).unwrap(), "h-a");
}
