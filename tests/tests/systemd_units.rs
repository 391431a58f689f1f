//! The units in `scripts/systemd/` (docs/contracts.md#operating-hosts) are valid systemd units:
//! `systemd-analyze verify` accepts them once their binaries exist (here, this package's builds of
//! them).

use std::path::Path;
use std::process::Command;

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/systemd");
    let dir = tempfile::tempdir().unwrap();
    let bins = [
        ("/usr/local/bin/gpuspot-coordinator", env!("CARGO_BIN_EXE_e2e-coordinator")),
        ("/usr/local/bin/gpuspot-agent", env!("CARGO_BIN_EXE_e2e-agent")),
    ];
    let mut paths = Vec::new();
    for name in ["gpuspot-coordinator.service", "gpuspot-agent.service"] {
        let mut text = std::fs::read_to_string(units.join(name)).expect("the unit file");
        for (installed, built) in bins {
            text = text.replace(installed, built);
        }
        assert!(text.contains("ExecStart="), "{name} starts something");
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let agent = std::fs::read_to_string(units.join("gpuspot-agent.service")).unwrap();
    assert!(agent.contains("KillMode=process"), "stopping the agent leaves the guests running");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/install-test-deps.sh)");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}
