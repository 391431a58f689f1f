//! `gpuspot dev` runs the coordinator's own start-up, data dir lock included
//! (docs/contracts.md#guests): a second `gpuspot dev` on the same data dir refuses to start, naming
//! the first one's pid.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOSTS: &str = "[[hosts]]\nname = \"solo\"\nmodel = \"NVIDIA H100\"\ngpu_count = 1\n\
                     gpu_memory_mib = 81920\ncpu_cores = 4\nmemory_gib = 16\n";

/// A `gpuspot dev` that is SIGKILLed when the test ends, however it ends.
struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dev(data_dir: &Path, hosts: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gpuspot"));
    command
        .arg("dev")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--hosts")
        .arg(hosts)
        .args(["--http", "127.0.0.1:0", "--quic", "127.0.0.1:0"])
        .env_remove("GPUSPOT_CONTAINER_ENGINE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Polls `check` every 50 ms until it is true; panics with `what` after `timeout`.
fn wait_for(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_dev_cluster_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts.toml");
    std::fs::write(&hosts, HOSTS).unwrap();
    let data_dir = dir.path().join("dev");
    // Its log is not read: a full pipe must not stall it.
    let mut first = dev(&data_dir, &hosts);
    let mut first = Dev(first.stderr(Stdio::null()).spawn().expect("spawn gpuspot dev"));
    let endpoints = data_dir.join("coordinator").join("endpoints.json");
    wait_for(Duration::from_secs(30), "the first dev cluster's endpoints.json", || {
        assert!(first.0.try_wait().unwrap().is_none(), "the first gpuspot dev exited");
        endpoints.exists()
    });

    let second = dev(&data_dir, &hosts).spawn().expect("spawn the second gpuspot dev");
    let mut second = Dev(second);
    wait_for(Duration::from_secs(30), "the second gpuspot dev to exit", || {
        second.0.try_wait().unwrap().is_some()
    });
    let status = second.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the second dev cluster started: {stderr}");
    let expected = format!("is in use by another coordinator (pid {})", first.0.id());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(first.0.try_wait().unwrap().is_none(), "the first one must keep running");
}
