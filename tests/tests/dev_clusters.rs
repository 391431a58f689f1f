//! `gpuspot dev` on a shared machine (issue 25, item 4; docs/contracts.md#serving): two dev
//! clusters on one machine both serve, API and gateway, each on its own port block; and ports some
//! other program holds in a dev host's block fail no start (the agent refuses, the coordinator
//! draws another port).

use gpuspot_e2e::process::{Proc, kill_processes_under, log_tail};
use gpuspot_e2e::{Api, s, sh, wait_until};
use serde_json::{Value, json};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long a dev cluster may take to start and a guest to answer, on a loaded machine.
const START: Duration = Duration::from_secs(90);
/// Slots 0-9 of dev's port blocks (20000-29999) are taken by this test's own lock files, so
/// that its clusters use 30000-31999, away from any other dev cluster on this machine.
const TAKEN_SLOTS: u16 = 10;
const FIRST_FREE_SLOT_PORT: u16 = 30_000;
/// Ports of the first cluster's host-a that another program holds.
const SQUATTED: u16 = 100;
/// Each replica serves its data dir, where `id.txt` names the instance.
const SERVER: &str = "echo $GPUSPOT_INSTANCE_ID > id.txt; exec python3 -m http.server $PORT";

/// One `gpuspot dev` process; on drop it and everything it started are stopped.
struct Dev {
    api: Api,
    gateway: String,
    dir: PathBuf,
    proc: Proc,
}

impl Drop for Dev {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- {} -----\n{}", self.proc.log.display(), self.proc.log_tail(6000));
        }
        self.proc.kill();
        kill_processes_under(&self.dir);
        gpuspot_e2e::guests::kill_guests_under(&self.dir);
        gpuspot_e2e::mounts::unmount_under(&self.dir);
    }
}

/// The workspace's `gpuspot`, next to the test binary's `deps/` dir.
fn gpuspot() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("gpuspot");
    assert!(bin.is_file(), "{} is not built: cargo build -p gpuspot-cli", bin.display());
    bin
}

/// A loopback address with a port free right now.
fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// Starts `gpuspot dev` in `dir` with its own API and QUIC ports and the default gateway,
/// its port-slot locks in `tmp`; checks that its hosts are connected as soon as its API
/// answers, and waits for its banner.
fn dev(dir: &Path, tmp: &Path) -> Dev {
    std::fs::create_dir_all(dir).expect("dev dir");
    let (http, quic) = (free_addr(), free_addr());
    let mut command = Command::new(gpuspot());
    command
        .args(["dev", "--http", &http, "--quic", &quic, "--data-dir"])
        .arg(dir.join("data"))
        .env("TMPDIR", tmp)
        .env("GPUSPOT_ADMIN_TOKEN", "dev-admin-token-for-the-test")
        .env_remove("GPUSPOT_CONTAINER_ENGINE")
        .env("RUST_LOG", "warn");
    let proc = Proc::spawn("gpuspot dev", command, &dir.join("dev.log"));
    let api = Api::new(&format!("http://{http}"), Some("dev-admin-token-for-the-test"));
    // A new user's first two calls: once the API answers at all, dev's hosts are there.
    let client = reqwest::blocking::Client::builder().no_proxy().build().expect("client");
    let healthz = format!("http://{http}/healthz");
    wait_until(START, "gpuspot dev's /healthz", || {
        let status = client.get(&healthz).send().map_err(|e| e.to_string())?.status();
        if status.is_success() { Ok(()) } else { Err(status.to_string()) }
    });
    let hosts = api.hosts();
    let connected = hosts.iter().filter(|h| s(h, "state") == "connected").count();
    assert_eq!(connected, 3, "the API answered before dev's hosts connected: {hosts:?}");
    let log = proc.log.clone();
    let gateway = wait_until(START, "gpuspot dev's banner", || {
        let text = log_tail(&log, 20_000);
        let gateway = text.lines().find_map(|l| l.trim().strip_prefix("gateway:"));
        let gateway = gateway.and_then(|g| g.trim().strip_prefix("http://")?.split('/').next());
        gateway.map(str::to_owned).ok_or_else(|| text.clone())
    });
    Dev { api, gateway, dir: dir.to_owned(), proc }
}

/// Holds the lock files of dev's first port slots in `tmp`, as other clusters would.
fn take_slots(tmp: &Path) -> Vec<File> {
    (0..TAKEN_SLOTS)
        .map(|slot| {
            let path = tmp.join(format!("gpuspot-dev-ports-{}.lock", 20_000 + 1_000 * slot));
            let file = File::create(path).expect("lock file");
            file.try_lock().expect("lock a slot");
            file
        })
        .collect()
}

/// A one-replica set serving through the gateway: what its replica answers, and its port.
fn serve_one(dev: &Dev, name: &str) -> (String, u16) {
    let (status, created) = dev.api.post(
        "/v1/deployments",
        &json!({
            "name": name, "mode": "replicaset", "replicas": 1,
            "specs": [{ "gpu": { "models": ["RTX 5090"], "count": 1 }, "billing": { "mode": "regular" } }],
            "template": { "command": sh(SERVER), "readiness": { "http_path": "/id.txt", "interval": "200ms" } },
        }),
    );
    assert_eq!(status, 202, "{created}");
    let url = format!("http://{}/d/{name}/id.txt", dev.gateway);
    let client = reqwest::blocking::Client::builder().no_proxy().build().expect("client");
    let answer = wait_until(START, &format!("{url} to answer"), || {
        let response = client.get(&url).send().map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(text.trim().to_owned())
        } else {
            Err(format!("{status} {text}"))
        }
    });
    let instance = dev.api.instance(&answer);
    (answer, port_of(&instance))
}

fn port_of(instance: &Value) -> u16 {
    instance["host_ports"][0].as_u64().unwrap_or_else(|| panic!("no host port: {instance}")) as u16
}

#[test]
fn two_dev_clusters_on_one_machine_both_serve_and_a_squatted_port_fails_no_start() {
    let root = tempfile::Builder::new().prefix("e2e-dev").tempdir().expect("temp dir");
    std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711))
        .expect("chmod");
    let tmp = root.path().join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let _taken = take_slots(&tmp);
    // The first cluster's host-a gets the first third of its slot (333 ports): another
    // program holds its first 100.
    let first = FIRST_FREE_SLOT_PORT;
    let squatted: Vec<TcpListener> =
        (first..first + SQUATTED).filter_map(|p| TcpListener::bind(("0.0.0.0", p)).ok()).collect();
    assert!(squatted.len() > 90, "could hold only {} ports", squatted.len());

    let one = dev(&root.path().join("one"), &tmp);
    let two = dev(&root.path().join("two"), &tmp);
    assert_ne!(one.gateway, two.gateway, "each cluster its own gateway");

    // Both serve, through their own gateways.
    let (one_id, one_port) = serve_one(&one, "web");
    let (two_id, two_port) = serve_one(&two, "web");
    assert_ne!(one_id, two_id);
    assert!(
        (first + SQUATTED..first + 333).contains(&one_port),
        "a free port of host-a: {one_port}"
    );
    assert!(
        !(first..first + 1_000).contains(&two_port),
        "the second cluster uses another block than the first: {two_port}"
    );

    // More starts on the squatted host: each runs on one of the free ports, none fails.
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let body = gpuspot_e2e::request(&format!("sq-{n}"), &["RTX 5090"], 1, &sh(SERVER));
            s(&one.api.create(&body), "id").to_owned()
        })
        .collect();
    for id in &ids {
        let running = wait_until(START, &format!("{id} to run"), || {
            let instance = one.api.instance(id);
            match s(&instance, "state") {
                "running" => Ok(instance),
                "failed" | "terminated" => panic!("a start failed on a squatted port: {instance}"),
                _ => Err(instance.to_string()),
            }
        });
        let port = port_of(&running);
        assert!((first + SQUATTED..first + 333).contains(&port), "{port} is not a free port");
    }
    drop(squatted);
}
