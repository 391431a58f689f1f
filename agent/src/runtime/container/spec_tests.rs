use super::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn spec() -> WorkloadSpec {
    WorkloadSpec {
        instance_id: InstanceId::from("i-1"),
        command: vec!["python3".into(), "train.py".into()],
        env: BTreeMap::from([
            ("EPOCHS".to_owned(), "10".to_owned()),
            ("CUDA_VISIBLE_DEVICES".to_owned(), "all".to_owned()),
            ("GPUSPOT_DATA_DIR=/etc;X".to_owned(), "1".to_owned()),
            (String::new(), "empty".to_owned()),
        ]),
        gpu_uuids: vec!["GPU-a".into(), "GPU-b".into()],
        cpu_cores: 16,
        memory_gib: 2,
        data_dir: PathBuf::from("/state/instances/i-1/data"),
        metadata_socket: PathBuf::from("/state/sock/i-1/metadata.sock"),
        log_path: PathBuf::from("/state/instances/i-1/output.log"),
        image: Some("localhost/train:1".into()),
        data_disk_gib: 50,
        ports: Vec::new(),
    }
}

fn body(spec: &WorkloadSpec, gpus: GpuAttach) -> ContainerCreateBody {
    create_body(spec, "localhost/train:1", "/state", gpus, 1 << 20)
}

#[test]
fn guests_cannot_set_or_smuggle_our_variables() {
    let env = body(&spec(), GpuAttach::None).env.expect("env");
    assert_eq!(
        env,
        vec![
            "EPOCHS=10",
            "GPUSPOT_INSTANCE_ID=i-1",
            "GPUSPOT_DATA_DIR=/data",
            "GPUSPOT_METADATA_SOCKET=/run/gpuspot/metadata.sock",
            "CUDA_VISIBLE_DEVICES=GPU-a,GPU-b",
            "NVIDIA_VISIBLE_DEVICES=GPU-a,GPU-b",
        ]
    );
}

#[test]
fn limits_labels_and_command() {
    let body = body(&spec(), GpuAttach::None);
    assert_eq!(body.cmd, Some(vec!["python3".to_owned(), "train.py".to_owned()]));
    let labels = body.labels.expect("labels");
    assert_eq!(labels[LABEL_INSTANCE], "i-1");
    assert_eq!(labels[LABEL_AGENT], "/state");
    assert_eq!(labels[LABEL_LOG], "/state/instances/i-1/output.log");
    let host = body.host_config.expect("host config");
    assert_eq!(host.nano_cpus, Some(16_000_000_000));
    assert_eq!(host.memory, Some(2 << 30));
    assert_eq!(host.memory_swap, Some(2 << 30));
    assert_eq!(host.pids_limit, Some(PIDS_LIMIT));
    assert_eq!(host.network_mode.as_deref(), Some("gpuspot-i-1"), "a network of its own");
    assert_eq!(host.cap_drop, Some(vec!["NET_RAW".to_owned(), "MKNOD".to_owned()]));
    assert_eq!(host.privileged, None);
    assert!(host.binds.is_none());

    let mut image_cmd = spec();
    image_cmd.command.clear();
    assert_eq!(create_body(&image_cmd, "img", "/state", GpuAttach::None, 1).cmd, None);
}

#[test]
fn the_root_is_read_only_and_scratch_space_is_capped_at_the_data_disk() {
    let host = body(&spec(), GpuAttach::None).host_config.expect("host config");
    assert_eq!(host.readonly_rootfs, Some(true));
    let tmpfs = host.tmpfs.expect("tmpfs");
    let mut paths: Vec<&str> = tmpfs.keys().map(String::as_str).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/root", "/run", "/tmp", "/var/tmp"]);
    assert!(tmpfs.values().all(|o| o == "rw,exec,nosuid,nodev,size=50g"), "{tmpfs:?}");
}

#[test]
fn only_the_data_dir_and_the_socket_dir_are_mounted() {
    let mounts = body(&spec(), GpuAttach::None).host_config.and_then(|h| h.mounts).expect("mounts");
    let seen: Vec<(String, String, bool)> = mounts
        .iter()
        .map(|m| {
            let source = m.source.clone().unwrap_or_default();
            (source, m.target.clone().unwrap_or_default(), m.read_only == Some(true))
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/state/instances/i-1/data".into(), "/data".into(), false),
            ("/state/sock/i-1".into(), "/run/gpuspot".into(), true),
        ]
    );
    // A socket in a shared directory is mounted alone: the others stay out of sight.
    let mut shared = spec();
    shared.metadata_socket = PathBuf::from("/state/sock/i-1.sock");
    let mounts = body(&shared, GpuAttach::None).host_config.and_then(|h| h.mounts).expect("mounts");
    assert_eq!(mounts[1].source.as_deref(), Some("/state/sock/i-1.sock"));
    assert_eq!(mounts[1].target.as_deref(), Some("/run/gpuspot/metadata.sock"));
}

#[test]
fn gpus_by_cdi_name_or_nvidia_request_and_none_when_simulated() {
    let host = |gpus| body(&spec(), gpus).host_config.expect("host config");
    let simulated = host(GpuAttach::None);
    assert!(simulated.devices.is_none() && simulated.device_requests.is_none());

    let podman = host(GpuAttach::Cdi(EngineKind::Podman)).devices.expect("devices");
    let names: Vec<_> = podman.iter().filter_map(|d| d.path_on_host.clone()).collect();
    assert_eq!(names, vec!["nvidia.com/gpu=GPU-a", "nvidia.com/gpu=GPU-b"]);

    let docker = host(GpuAttach::Cdi(EngineKind::Docker)).device_requests.expect("requests");
    assert_eq!(docker[0].driver.as_deref(), Some("cdi"));
    assert_eq!(
        docker[0].device_ids,
        Some(vec!["nvidia.com/gpu=GPU-a".to_owned(), "nvidia.com/gpu=GPU-b".to_owned()])
    );

    let nvidia = host(GpuAttach::NvidiaRequest).device_requests.expect("requests");
    assert_eq!(nvidia[0].driver.as_deref(), Some("nvidia"));
    assert_eq!(nvidia[0].device_ids, Some(vec!["GPU-a".to_owned(), "GPU-b".to_owned()]));
    assert_eq!(nvidia[0].capabilities, Some(vec![vec!["gpu".to_owned()]]));
    assert_eq!(GpuAttach::detect(false, EngineKind::Podman), GpuAttach::None);
    // Podman ignores device requests: without CDI it cannot attach GPUs, and says so.
    let unavailable = host(GpuAttach::Unavailable);
    assert!(unavailable.devices.is_none() && unavailable.device_requests.is_none());
    let refusal = GpuAttach::Unavailable.refusal(&spec().gpu_uuids).expect("refused");
    assert!(refusal.contains("CDI"), "{refusal}");
    assert_eq!(GpuAttach::Unavailable.refusal(&[]), None);
    assert_eq!(GpuAttach::NvidiaRequest.refusal(&spec().gpu_uuids), None);
}
