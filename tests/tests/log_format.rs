//! Log lines (docs/contracts.md#operating-hosts): `--log-format json` writes one JSON object per
//! line with its level, target and fields; the default text format carries no terminal colours into
//! a file.

use gpuspot_e2e::process::{Proc, log_tail};
use gpuspot_e2e::{SOON, cluster, holds, wait_until};
use std::process::Command;

#[test]
fn json_log_lines_parse_and_text_logs_in_files_have_no_colours() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("coordinator.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_e2e-coordinator"));
    command
        .args(["--log-format", "json", "--http", "127.0.0.1:0", "--quic", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("GPUSPOT_CONFIG")
        .env_remove("RUST_LOG");
    let mut coordinator = Proc::spawn("coordinator", command, &log);
    let lines = wait_until(SOON, "the coordinator to log that it runs", || {
        let text = log_tail(&log, 64 * 1024);
        let json: Vec<String> =
            text.lines().filter(|l| l.starts_with('{')).map(str::to_owned).collect();
        holds(text.contains("coordinator running"), || text.clone()).map(|()| json)
    });
    coordinator.kill();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(value["timestamp"].is_string() && value["level"].is_string(), "{line}");
        assert!(value["fields"].is_object() && value["target"].is_string(), "{line}");
    }
    let running = lines.iter().find(|l| l.contains("coordinator running")).expect("running line");
    let running: serde_json::Value = serde_json::from_str(running).expect("json");
    assert!(running["fields"]["http_addr"].is_string(), "{running}");

    let c = cluster!();
    let text = c.coordinator.log_tail();
    assert!(text.contains("coordinator running"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a log file: {text:?}");
    let refused = Command::new(env!("CARGO_BIN_EXE_e2e-coordinator"))
        .args(["--log-format", "xml", "token", "list"])
        .output()
        .expect("run the coordinator");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("xml") && stderr.contains("json"), "{stderr}");
}
