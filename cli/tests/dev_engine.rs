//! `gpuspot dev --container-engine` on a socket nobody serves (issue 25.3): one clear error
//! that names the socket and how to start an engine there, exit 1, and no panic on the way
//! out (the coordinator's actors used to be dropped unstarted outside their runtime).

use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};

fn dev_with_engine(engine: &str, dir: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gpuspot"))
        .arg("dev")
        .arg("--data-dir")
        .arg(dir.join("dev"))
        .args(["--http", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--gateway", "127.0.0.1:0"])
        .args(["--container-engine", engine])
        .env_remove("GPUSPOT_CONTAINER_ENGINE")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run gpuspot dev");
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    (output.status.code(), text)
}

#[test]
fn a_dead_engine_socket_is_one_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A socket file whose listener is gone: what a stopped Podman service leaves behind.
    let socket = dir.path().join("podman.sock");
    drop(UnixListener::bind(&socket).expect("bind a socket"));
    for engine in [format!("unix://{}", socket.display()), "unix:///nonexistent/podman.sock".into()]
    {
        let (code, text) = dev_with_engine(&engine, dir.path());
        assert_eq!(code, Some(1), "dev exits 1: {text}");
        assert!(!text.contains("panicked"), "no panic: {text}");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "one error: {text}");
        assert!(
            errors[0].contains(&format!("cannot reach the container engine at {engine}")),
            "{text}"
        );
        let socket = engine.trim_start_matches("unix://");
        assert!(
            text.contains(&format!("hint: start Podman's Docker Engine API service on it, e.g. `scripts/container-engine.sh --socket {socket} --idle 0`")),
            "says how to start one: {text}"
        );
        assert!(!text.contains("API:"), "nothing was started: {text}");
    }
}

#[test]
fn a_start_that_fails_half_way_is_one_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = busy.local_addr().expect("its address").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_gpuspot"))
        .arg("dev")
        .arg("--data-dir")
        .arg(dir.path().join("dev"))
        .args(["--http", &addr, "--quic", "127.0.0.1:0", "--gateway", "127.0.0.1:0"])
        .env_remove("GPUSPOT_CONTAINER_ENGINE")
        .stdin(Stdio::null())
        .output()
        .expect("run gpuspot dev");
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "no panic: {text}");
    assert!(text.contains(&format!("error: binding the HTTP API on {addr}")), "{text}");
}
