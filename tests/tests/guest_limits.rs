//! What one guest can never take from the others on its host (docs/contracts.md#limits): a guest
//! flooding its metadata socket with connections leaves its neighbour's socket answering within a
//! second and new instances starting; a guest printing without end leaves at most `[logs]
//! max_bytes` of output on the agent's disk.

use gpuspot_common::logcap;
use gpuspot_e2e::guest_limits::{ConfiguredAgent, flood, raise_own_fd_limit, start_guest};
use gpuspot_e2e::{Cluster, SOON, binaries, cluster, request, s, sh, unix_get, wait_until};
use serde_json::{Value, json};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const FLOOD: usize = 5_000;

/// `instance_id` from `socket`, asserted to be `id`; how long the answer took.
fn instance_id_latency(socket: &Path, id: &str) -> Duration {
    let began = Instant::now();
    let (status, body) = unix_get(socket, "/vm/metadata?key=instance_id").expect("socket");
    let took = began.elapsed();
    assert_eq!(status, 200, "instance_id: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).ok(), Some(json!(id)), "{body}");
    took
}

/// Keeps connecting to a socket (and hanging up) on a thread while it lives.
struct Pressure {
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicU64>,
    began: Instant,
}

impl Pressure {
    fn on(socket: &Path) -> Pressure {
        let (stop, attempts) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (socket, until, count) = (socket.to_owned(), stop.clone(), attempts.clone());
        std::thread::spawn(move || {
            while !until.load(Ordering::Relaxed) {
                drop(UnixStream::connect(&socket));
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Pressure { stop, attempts, began: Instant::now() }
    }

    fn attempts_per_second(&self) -> f64 {
        self.attempts.load(Ordering::Relaxed) as f64 / self.began.elapsed().as_secs_f64()
    }
}

impl Drop for Pressure {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// (median, worst) latency of `n` `instance_id` requests to `socket`.
fn latencies(socket: &Path, id: &str, n: usize) -> (Duration, Duration) {
    let mut all: Vec<Duration> = (0..n).map(|_| instance_id_latency(socket, id)).collect();
    all.sort();
    (all[n / 2], all[n - 1])
}

/// Descriptors the process `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count())
}

#[test]
fn a_guest_flooding_its_socket_does_not_stop_another_guests_socket() {
    let limit = raise_own_fd_limit();
    assert!(
        limit > FLOOD as u64 + 500,
        "this test needs {FLOOD}+ descriptors; the limit is {limit}"
    );
    let c = cluster!();
    let agent = c.agent(&Cluster::seed_profile("host-a"));
    let (a_id, a_socket) = start_guest(&c, "flooder", "RTX 5090");
    let (b_id, b_socket) = start_guest(&c, "neighbour", "RTX 5090");
    let host = |id: &str| s(&c.api.instance(id), "host_id").to_owned();
    assert_eq!(host(&a_id), host(&b_id), "both guests on one host");
    let baseline = instance_id_latency(&b_socket, &b_id);
    let fds_before = open_fds(agent.pid());

    let began = Instant::now();
    let held = flood(&a_socket, FLOOD, Duration::from_secs(60));
    eprintln!(
        "opened and held {} connections to guest A's socket in {:.2?}",
        held.len(),
        began.elapsed()
    );
    // The flooder only hurts itself: one more connection is told why and closed.
    let mut extra = UnixStream::connect(&a_socket).expect("connect");
    extra.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    // The agent holds the guest's cap of them, not thousands of descriptors.
    let fds_during = open_fds(agent.pid());
    eprintln!("agent descriptors: {fds_before} before the flood, {fds_during} during it");
    assert!(fds_during <= fds_before + 32 + 8, "{fds_before} -> {fds_during}");

    // Under continued pressure on A, B's socket answers every time within a second.
    let pressure = Pressure::on(&a_socket);
    let (median, worst) = latencies(&b_socket, &b_id, 20);
    eprintln!(
        "guest B's socket under the flood: median {median:.2?}, worst {worst:.2?} over 20 \
         requests (baseline {baseline:.2?}; {FLOOD} held on A, {:.0} connection attempts/s \
         on A meanwhile)",
        pressure.attempts_per_second()
    );
    assert!(worst < Duration::from_secs(1), "B answered in {worst:?}");

    // A new instance still starts and gets a working socket.
    let (c_id, c_socket) = start_guest(&c, "newcomer", "RTX 5090");
    let took = instance_id_latency(&c_socket, &c_id);
    assert!(took < Duration::from_secs(1), "the new socket answered in {took:?}");
    drop((pressure, held));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_guest_printing_a_lot_keeps_at_most_max_bytes_on_the_agent() {
    let max: u64 = 1 << 20;
    let c = cluster!();
    let profile = Cluster::seed_profile("host-a");
    let config = format!("[logs]\nmax_bytes = {max}\n");
    let agent = ConfiguredAgent::start(&c, &binaries!().agent, &profile, "host-a", &config);
    let printed: u64 = 50_000_000;
    let script =
        format!("head -c {printed} /dev/zero | tr '\\0' x; echo; echo printed-all; exec sleep 300");
    let created = c.api.create(&request("loud", &["RTX 5090"], 1, &sh(&script)));
    let id = s(&created, "id").to_owned();
    c.wait_state(&id, "running");

    let log = agent.output_log(&id);
    let end = printed + "\nprinted-all\n".len() as u64;
    let (len, allocated) = wait_until(SOON, "the agent's log to be written and capped", || {
        let file = std::fs::File::open(&log).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let allocated = logcap::allocated_bytes(&file).map_err(|e| e.to_string())?;
        // A partly dropped block stays whole.
        if len >= end && allocated <= max + 8192 {
            Ok((len, allocated))
        } else {
            Err(format!("length {len}, allocated {allocated}"))
        }
    });
    eprintln!("agent log: {len} bytes printed, {allocated} allocated on disk (max_bytes {max})");
    assert_eq!(len, end, "the log's length counts every byte printed");
    // What reaches the user is the real tail, not the zeros of the dropped head.
    let logs = c.wait_logs(&id, "printed-all");
    assert!(
        logs.trim_end().ends_with("x\nprinted-all"),
        "{:?}",
        &logs[logs.len().saturating_sub(80)..]
    );
    assert!(!logs.contains('\0'), "zeros from the dropped head were shipped");

    // Guests with their own uids (a root agent) traverse the state dir; nobody lists it.
    // SAFETY: geteuid has no preconditions.
    let state_mode = if unsafe { libc::geteuid() } == 0 { 0o711 } else { 0o700 };
    assert_eq!(mode(&agent.state_dir), state_mode, "state dir");
    assert_eq!(mode(&agent.state_dir.join("host.key")), 0o600, "host key");
    assert_eq!(mode(&agent.state_dir.join("instances").join(&id).join("data")), 0o700, "data dir");
    assert_eq!(mode(&log), 0o600, "log file");
}
