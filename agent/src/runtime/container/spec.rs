//! What a guest's container is made of (docs/contracts.md#guests), as a pure function of its
//! [`WorkloadSpec`]: name and labels, command, environment, the two host paths it may see,
//! hard limits, a network of its own, a read-only root with bounded scratch space, fewer
//! capabilities, and exactly its GPUs.

use super::super::WorkloadSpec;
use super::engine::EngineKind;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HostConfig, HostConfigLogConfig, Mount,
    MountTypeEnum, PortBinding, ResourcesUlimits,
};
use gpuspot_common::InstanceId;
use std::collections::HashMap;
use std::path::Path;

/// Label naming the instance a container runs.
pub const LABEL_INSTANCE: &str = "gpuspot.instance";
/// Label naming the agent (its state dir) that owns a container: several agents may share
/// one engine (`gpuspot dev`), and each adopts only its own.
pub const LABEL_AGENT: &str = "gpuspot.agent";
/// Label holding the host file the container's output is appended to, for re-adoption.
pub const LABEL_LOG: &str = "gpuspot.log";

/// Where the guest finds its data dir and its metadata socket (docs/contracts.md#guests).
pub const DATA_DIR: &str = "/data";
pub const SOCKET_DIR: &str = "/run/gpuspot";
pub const SOCKET: &str = "/run/gpuspot/metadata.sock";
/// The file name of a socket that sits alone in its own per-instance directory.
const SOCKET_FILE: &str = "metadata.sock";

/// Processes one container may have: enough for data loaders, not a fork bomb.
pub const PIDS_LIMIT: i64 = 4096;
/// Per-process limits. Engines' defaults (nofile 1048576) exceed the hard limits of some
/// hosts, and then no container starts at all.
const NOFILE: i64 = 1024;
const NPROC: i64 = 4096;
/// Capabilities the engine's defaults may grant that no guest needs: raw sockets (ARP and
/// ICMP spoofing on the bridge) and device nodes (docs/contracts.md#limits).
const CAP_DROP: [&str; 2] = ["NET_RAW", "MKNOD"];
/// Writable scratch paths over the read-only root (see [`scratch`]).
const SCRATCH: [&str; 4] = ["/tmp", "/var/tmp", "/run", "/root"];

/// The variables a guest cannot set itself.
const RESERVED_ENV: [&str; 6] = [
    "GPUSPOT_INSTANCE_ID",
    "GPUSPOT_DATA_DIR",
    "GPUSPOT_METADATA_SOCKET",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "PORT",
];

/// How the host's GPUs reach a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuAttach {
    /// Simulated GPUs (fake UUIDs): only the environment names them.
    None,
    /// CDI names `nvidia.com/gpu=<UUID>`; Podman takes them as devices, Docker as a
    /// device request of the "cdi" driver.
    Cdi(EngineKind),
    /// The NVIDIA container toolkit's device request (driver "nvidia", capability gpu).
    NvidiaRequest,
    /// Real GPUs that this engine cannot attach: Podman takes GPUs only as CDI devices (it
    /// ignores device requests), and the host has no CDI spec. Starts with GPUs fail.
    Unavailable,
}

impl GpuAttach {
    /// CDI where the host has a CDI spec, else the NVIDIA device request; none for
    /// simulated GPUs.
    pub fn detect(real_gpus: bool, kind: EngineKind) -> GpuAttach {
        match (real_gpus, cdi_spec_present(), kind) {
            (false, _, _) => GpuAttach::None,
            (true, true, _) => GpuAttach::Cdi(kind),
            (true, false, EngineKind::Docker) => GpuAttach::NvidiaRequest,
            (true, false, EngineKind::Podman) => GpuAttach::Unavailable,
        }
    }

    /// Why a container with GPUs cannot start here, if it cannot.
    pub fn refusal(self, uuids: &[String]) -> Option<String> {
        (self == GpuAttach::Unavailable && !uuids.is_empty()).then(|| {
            "cannot give the container its GPUs: Podman attaches GPUs only as CDI devices and \
             this host has no CDI spec in /etc/cdi or /var/run/cdi (make one with \
             `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`)"
                .to_owned()
        })
    }
}

/// Whether a CDI spec (`*.json` or `*.yaml`) lies where engines look for them.
fn cdi_spec_present() -> bool {
    ["/etc/cdi", "/var/run/cdi"].iter().any(|dir| {
        std::fs::read_dir(dir).into_iter().flatten().flatten().any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml")
        })
    })
}

/// `gpuspot-<instance id>`
pub fn container_name(id: &InstanceId) -> String {
    format!("gpuspot-{id}")
}

/// `gpuspot-<instance id>`, as its container.
pub fn network_name(id: &InstanceId) -> String {
    container_name(id)
}

/// The whole create request for `spec`'s container, owned by `agent`.
pub fn create_body(
    spec: &WorkloadSpec,
    image: &str,
    agent: &str,
    gpus: GpuAttach,
    log_max_bytes: u64,
) -> ContainerCreateBody {
    let labels = HashMap::from([
        (LABEL_INSTANCE.to_owned(), spec.instance_id.to_string()),
        (LABEL_AGENT.to_owned(), agent.to_owned()),
        (LABEL_LOG.to_owned(), spec.log_path.display().to_string()),
    ]);
    ContainerCreateBody {
        image: Some(image.to_owned()),
        // Empty: the image's CMD runs (docs/contracts.md#guests: `command`, when given, replaces
        // it).
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(env(spec)),
        labels: Some(labels),
        host_config: Some(host_config(spec, gpus, log_max_bytes)),
        exposed_ports: port_bindings(spec)
            .map(|ports| ports.into_keys().map(|port| (port, HashMap::new())).collect()),
        ..Default::default()
    }
}

/// The user's variables, then ours. A user variable with one of our names is dropped, not
/// just overridden (C's getenv takes the first of two), as is one whose name is empty or
/// holds `=` (it would smuggle in a variable of any name).
fn env(spec: &WorkloadSpec) -> Vec<String> {
    let gpus = spec.gpu_uuids.join(",");
    // A container's `PORT` is its own first declared port (published on a host port).
    let port = spec.ports.first().map(|p| p.guest.unwrap_or(p.host).to_string());
    let ours = [spec.instance_id.as_str(), DATA_DIR, SOCKET, gpus.as_str(), gpus.as_str()]
        .into_iter()
        .chain(port.as_deref());
    spec.env
        .iter()
        .filter(|(k, _)| !k.is_empty() && !k.contains('=') && !RESERVED_ENV.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .chain(RESERVED_ENV.iter().zip(ours).map(|(k, v)| format!("{k}={v}")))
        .collect()
}

/// `guest/tcp` → the host port it is published on, on every host address.
fn port_bindings(spec: &WorkloadSpec) -> Option<HashMap<String, Option<Vec<PortBinding>>>> {
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .map(|p| {
            let binding = PortBinding { host_ip: None, host_port: Some(p.host.to_string()) };
            (format!("{}/tcp", p.guest.unwrap_or(p.host)), Some(vec![binding]))
        })
        .collect();
    (!bindings.is_empty()).then_some(bindings)
}

fn host_config(spec: &WorkloadSpec, gpus: GpuAttach, log_max_bytes: u64) -> HostConfig {
    let memory = i64::try_from(spec.memory_gib.saturating_mul(1 << 30)).unwrap_or(i64::MAX);
    let ulimit = |name: &str, limit: i64| ResourcesUlimits {
        name: Some(name.to_owned()),
        soft: Some(limit),
        hard: Some(limit),
    };
    let (devices, device_requests) = gpu_devices(&spec.gpu_uuids, gpus);
    HostConfig {
        mounts: Some(mounts(spec)),
        nano_cpus: Some(i64::from(spec.cpu_cores) * 1_000_000_000),
        memory: Some(memory),
        // Equal to memory: no swap beyond the limit.
        memory_swap: Some(memory),
        pids_limit: Some(PIDS_LIMIT),
        ulimits: Some(vec![ulimit("nofile", NOFILE), ulimit("nproc", NPROC)]),
        // A network of its own (see `network`), reached only on its published ports.
        network_mode: Some(network_name(&spec.instance_id)),
        cap_drop: Some(CAP_DROP.map(str::to_owned).to_vec()),
        readonly_rootfs: Some(true),
        tmpfs: Some(scratch(spec)),
        port_bindings: port_bindings(spec),
        // A tiny init as PID 1 passes SIGTERM on to the command (PID 1 ignores signals it
        // has no handler for) and reaps what it leaves behind.
        init: Some(true),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        devices,
        device_requests,
        log_config: Some(HostConfigLogConfig {
            typ: None,
            config: Some(HashMap::from([("max-size".to_owned(), log_max_bytes.to_string())])),
        }),
        ..Default::default()
    }
}

/// The root filesystem is read-only and the writable paths are size-capped tmpfs, because
/// nothing else bounds what a container writes there on this kind of host: the engine's
/// `size` storage option needs overlay on xfs with project quotas (or btrfs, zfs), and on
/// ext4 the writable layer grows on the host's disk without limit. Each tmpfs holds at most
/// the data disk's size and all of them count against the container's memory limit (no
/// swap), so a guest filling them gets ENOSPC, or the OOM killer, never a full host disk;
/// writes anywhere else fail with EROFS. Large files belong in `/data`, the data disk.
/// `exec`: scripts written to /tmp must run; the image's own files at these paths are
/// copied in (Podman's tmpcopyup default).
fn scratch(spec: &WorkloadSpec) -> HashMap<String, String> {
    let size = spec.data_disk_gib.max(1);
    let options = format!("rw,exec,nosuid,nodev,size={size}g");
    SCRATCH.iter().map(|path| ((*path).to_owned(), options.clone())).collect()
}

/// The data dir at `/data`, and the metadata socket at `/run/gpuspot/metadata.sock`: its
/// directory when the socket sits alone in one (a restarted agent re-creates the socket,
/// and a bind-mounted file would keep the dead one), else the socket file itself (a shared
/// directory would show other guests' sockets). Nothing else from the host.
fn mounts(spec: &WorkloadSpec) -> Vec<Mount> {
    let bind = |source: &Path, target: &str, read_only: bool| Mount {
        source: Some(source.display().to_string()),
        target: Some(target.to_owned()),
        typ: Some(MountTypeEnum::BIND),
        read_only: Some(read_only),
        ..Default::default()
    };
    let socket = &spec.metadata_socket;
    let alone = socket.file_name().is_some_and(|name| name == SOCKET_FILE);
    let socket_mount = match socket.parent() {
        // Read-only: the guest connects to its socket but plants nothing beside it.
        Some(dir) if alone => bind(dir, SOCKET_DIR, true),
        _ => bind(socket, SOCKET, false),
    };
    vec![bind(&spec.data_dir, DATA_DIR, false), socket_mount]
}

fn gpu_devices(
    uuids: &[String],
    gpus: GpuAttach,
) -> (Option<Vec<DeviceMapping>>, Option<Vec<DeviceRequest>>) {
    if uuids.is_empty() {
        return (None, None);
    }
    let cdi_names = || uuids.iter().map(|uuid| format!("nvidia.com/gpu={uuid}"));
    match gpus {
        GpuAttach::None | GpuAttach::Unavailable => (None, None),
        GpuAttach::Cdi(EngineKind::Podman) => {
            let devices = cdi_names()
                .map(|name| DeviceMapping {
                    path_on_host: Some(name),
                    path_in_container: Some(String::new()),
                    cgroup_permissions: Some("rwm".to_owned()),
                })
                .collect();
            (Some(devices), None)
        }
        GpuAttach::Cdi(EngineKind::Docker) => {
            let request = DeviceRequest {
                driver: Some("cdi".to_owned()),
                device_ids: Some(cdi_names().collect()),
                ..Default::default()
            };
            (None, Some(vec![request]))
        }
        GpuAttach::NvidiaRequest => {
            let request = DeviceRequest {
                driver: Some("nvidia".to_owned()),
                device_ids: Some(uuids.to_vec()),
                capabilities: Some(vec![vec!["gpu".to_owned()]]),
                ..Default::default()
            };
            (None, Some(vec![request]))
        }
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
