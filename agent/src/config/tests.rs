//! Agent settings: parsing, validation and the sample config.

use super::*;

#[test]
fn missing_coordinator_is_reported() {
    let err = RawAgentConfig::default().validate().unwrap_err();
    assert!(err.to_string().contains("--coordinator"), "{err}");
}

#[test]
fn long_state_dirs_get_a_short_socket_dir() {
    let long = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
    let dir = default_socket_dir(&long);
    assert!(dir.as_os_str().len() <= MAX_SOCKET_DIR);
    assert_eq!(default_socket_dir(Path::new("/srv/a")), PathBuf::from("/srv/a/sock"));
    // The longest socket path then still fits the kernel's 107 bytes.
    let instance = format!("i-{}", "f".repeat(16));
    let socket = dir.join(instance).join("metadata.sock");
    let limit = PathBuf::from("/").join("y".repeat(MAX_SOCKET_DIR - 1));
    assert!(socket.as_os_str().len() <= 107);
    assert_eq!(
        limit.join(format!("i-{}", "f".repeat(16))).join("metadata.sock").as_os_str().len(),
        107
    );
}

#[test]
fn a_too_long_socket_dir_is_refused_with_the_reason() {
    let raw = RawAgentConfig {
        coordinator: Some("c:1".into()),
        socket_dir: Some(PathBuf::from(format!("/{}", "s".repeat(MAX_SOCKET_DIR)))),
        ..Default::default()
    };
    let err = raw.validate().unwrap_err().to_string();
    assert!(err.contains("socket_dir") && err.contains("metadata.sock"), "{err}");
}

#[test]
fn file_keys_parse() {
    let raw: RawAgentConfig = toml::from_str(
        "coordinator = \"127.0.0.1:7443\"\nlink_timeout = \"3s\"\n[reserve]\ncpu_cores = 2\nmemory_gib = 8\n",
    )
    .unwrap();
    let settings = raw.validate().unwrap();
    assert_eq!(settings.reserve.cpu_cores, 2);
    assert_eq!(settings.link_timeout, Duration::from_secs(3));
    assert_eq!(settings.log_max_bytes, logcap::DEFAULT_MAX_BYTES);
}

#[test]
fn containers_and_uid_range_are_read_and_checked() {
    let parse = |text: &str| toml::from_str::<RawAgentConfig>(text).unwrap().validate();
    let settings = parse("coordinator = \"c:1\"\n").unwrap();
    assert_eq!(settings.uid_range, DEFAULT_UID_RANGE);
    assert_eq!(settings.container_engine, None);
    let settings = parse(
        "coordinator = \"c:1\"\n[containers]\nengine = \"unix:///run/p.sock\"\n[process]\nuid_range = \"5000-5009\"\n",
    )
    .unwrap();
    assert_eq!(settings.uid_range, (5000, 5009));
    assert_eq!(settings.container_engine.as_deref(), Some("unix:///run/p.sock"));
    for bad in ["0-10", "10-5", "abc"] {
        let err = parse(&format!("coordinator = \"c:1\"\n[process]\nuid_range = \"{bad}\"\n"))
            .unwrap_err();
        assert!(err.to_string().contains("process.uid_range"), "{err}");
    }
}

#[test]
fn process_limits_are_read_and_checked() {
    let parse = |text: &str| toml::from_str::<RawAgentConfig>(text).unwrap().validate();
    let settings = parse("coordinator = \"c:1\"\n").unwrap();
    assert_eq!((settings.pids_max, settings.unlimited_ok), (4096, false));
    let text = "coordinator = \"c:1\"\n[process]\npids_max = 64\nunlimited_ok = true\n";
    let settings = parse(text).unwrap();
    assert_eq!((settings.pids_max, settings.unlimited_ok), (64, true));
    for bad in [0, 15, 4_194_305] {
        let err =
            parse(&format!("coordinator = \"c:1\"\n[process]\npids_max = {bad}\n")).unwrap_err();
        assert!(err.to_string().contains("process.pids_max"), "{err}");
    }
}

#[test]
fn port_range_and_address_are_read_and_checked() {
    let parse = |text: &str| toml::from_str::<RawAgentConfig>(text).unwrap().validate();
    let settings = parse("coordinator = \"c:1\"\n").unwrap();
    assert_eq!(settings.network.ports, DEFAULT_PORT_RANGE);
    assert_eq!(settings.network.address, None);
    let settings =
        parse("coordinator = \"c:1\"\n[ports]\nrange = \"30000-30009\"\naddress = \"10.0.0.5\"\n")
            .unwrap();
    assert_eq!(settings.network.ports, (30000, 30009));
    assert_eq!(settings.network.address.as_deref(), Some("10.0.0.5"));
    for bad in ["range = \"80-90\"", "range = \"30000-70000\"", "address = \"1.2.3.4:80\""] {
        let err = parse(&format!("coordinator = \"c:1\"\n[ports]\n{bad}\n")).unwrap_err();
        assert!(err.to_string().contains("ports."), "{err}");
    }
}

#[test]
fn the_sample_config_is_valid() {
    let raw: RawAgentConfig = toml::from_str(include_str!("../../../config/agent.toml")).unwrap();
    let settings = raw.validate().unwrap();
    assert_eq!(settings.network.ports, DEFAULT_PORT_RANGE);
}

#[test]
fn logs_max_bytes_is_read_and_checked() {
    let parse = |text: &str| toml::from_str::<RawAgentConfig>(text).unwrap().validate();
    let settings = parse("coordinator = \"c:1\"\n[logs]\nmax_bytes = 1048576\n").unwrap();
    assert_eq!(settings.log_max_bytes, 1 << 20);
    let err = parse("coordinator = \"c:1\"\n[logs]\nmax_bytes = 10\n").unwrap_err();
    assert!(err.to_string().contains("logs.max_bytes"), "{err}");
}

#[test]
fn guest_reachable_dirs_are_traversable_only_when_root() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    create_guest_reachable_dir(&dir).unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    // SAFETY: geteuid has no preconditions.
    let expected = if unsafe { libc::geteuid() } == 0 { 0o711 } else { 0o700 };
    assert_eq!(mode, expected);
}

#[test]
fn private_dirs_are_0700_even_when_they_existed() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("a/b");
    create_private_dir(&fresh).unwrap();
    let existing = tmp.path().join("open");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    create_private_dir(&existing).unwrap();
    for dir in [tmp.path().join("a"), fresh, existing] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
}
