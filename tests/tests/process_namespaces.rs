//! Process guests in their own PID, mount and IPC namespaces under memory and pids limits
//! (docs/contracts.md#limits; issue 24 holes 2, 7, 8): a guest sees only its own processes (not the
//! agent's command line, not another guest's); its `/tmp`, `/run/lock` and `/dev/shm` are its own and
//! count against its data disk; its SysV segments live in its own IPC namespace and go
//! with it; exec and the SSH door see what it sees; on this host's cgroups (v1 here) a
//! guest over its memory is OOM-killed and fails saying so, and its processes stay under
//! `[process] pids_max`.

use gpuspot_e2e::exec::{SshLogin, exec, ssh_config, ssh_port};
use gpuspot_e2e::guest_limits::ConfiguredAgent;
use gpuspot_e2e::guests::{uid_of, value_of};
use gpuspot_e2e::{Cluster, SOON, binaries, cluster, request, s, sh, wait_until};
use serde_json::Value;
use std::path::Path;

/// Processes on the host (in the host's PID namespace) that run as `uid`.
fn host_processes_of(uid: u32) -> usize {
    let pids = std::fs::read_dir("/proc").expect("/proc").flatten();
    pids.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| uid_of(*pid) == Some(uid))
        .count()
}

/// SysV shared-memory segments in the host's IPC namespace owned by `uid`.
fn host_segments_of(uid: u32) -> usize {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").expect("/proc/sysvipc/shm");
    // Columns: key shmid perms size cpid lpid nattch uid ...
    let uid = uid.to_string();
    table.lines().skip(1).filter(|l| l.split_whitespace().nth(7) == Some(uid.as_str())).count()
}

fn start(c: &Cluster, name: &str, script: &str, data_disk_gib: Option<u64>) -> String {
    let mut body = request(name, &["RTX 5090"], 1, &sh(script));
    if let Some(gib) = data_disk_gib {
        body["data_disk_gib"] = gib.into();
    }
    let id = s(&c.api.create(&body), "id").to_owned();
    c.wait_state(&id, "running");
    id
}

fn wait_ended(c: &Cluster, id: &str) -> Value {
    wait_until(SOON * 2, &format!("instance {id} to end"), || {
        let instance = c.api.instance(id);
        match s(&instance, "state") {
            "terminated" => Ok(instance),
            _ => Err(instance.to_string()),
        }
    })
}

#[test]
fn a_process_guest_sees_only_its_own_processes() {
    let c = cluster!();
    let a = c.agent(&Cluster::seed_profile("host-a"));
    let other = start(&c, "other", "echo $$ > pid; exec sleep 120", None);
    let other_pid = a.workload_pid(&other);
    let script = format!(
        "echo PROCS=$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '); \
         echo AGENT=$(cat /proc/{agent}/cmdline 2>&1 | tr '\\0' ' '); \
         echo OTHER=$(cat /proc/{other_pid}/cmdline 2>&1 | tr '\\0' ' '); \
         echo INIT=$(cat /proc/1/cmdline 2>&1 | tr '\\0' ' '); \
         echo LOOKED; exec sleep 120",
        agent = a.pid(),
    );
    let looker = start(&c, "looker", &script, None);
    let out = c.wait_logs(&looker, "LOOKED");
    eprintln!("{out}");
    let procs: Vec<u32> = value_of(&out, "PROCS")
        .expect("PROCS line")
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    // Its shell and the pipeline it runs; none of the host's hundreds.
    assert!(!procs.is_empty() && procs.len() <= 8, "{procs:?}");
    assert!(procs.iter().all(|p| *p < 10), "host pids are visible: {procs:?}");
    for key in ["AGENT", "OTHER", "INIT"] {
        let line = value_of(&out, key).unwrap_or_default();
        assert!(line.contains("No such file"), "{key} readable: {line}");
    }
    assert!(!out.contains("--coordinator") && !out.contains("gpuspot-agent"), "{out}");
}

#[test]
fn tmp_lock_and_sysv_ipc_are_the_guests_own_and_go_with_it() {
    let c = cluster!(&ssh_config());
    let a = c.agent(&Cluster::seed_profile("host-a"));
    // 1.1 GiB into /tmp on a 1 GiB data disk; then what exec and ssh must see.
    let script = "echo FULL=$(head -c 1100M /dev/zero 2>&1 > /tmp/big; echo $?); rm -f /tmp/big; \
                  echo private > /tmp/e2e-$GPUSPOT_INSTANCE_ID; \
                  touch /run/lock/e2e-$GPUSPOT_INSTANCE_ID /dev/shm/e2e-$GPUSPOT_INSTANCE_ID; \
                  echo IPC=$(ipcmk -M 4096 2>&1); echo UID=$(id -u); echo READY; exec sleep 300";
    let id = start(&c, "scratch", script, Some(1));
    let out = c.wait_logs(&id, "READY");
    eprintln!("{out}");
    let full = value_of(&out, "FULL").expect("FULL line");
    assert!(full.contains("No space left") && !full.ends_with(" 0"), "/tmp is unbounded: {full}");
    assert!(value_of(&out, "IPC").unwrap_or_default().contains("Shared memory id"), "{out}");
    let uid: u32 = value_of(&out, "UID").and_then(|u| u.parse().ok()).expect("UID line");
    let (tmp, lock) = (format!("/tmp/e2e-{id}"), format!("/run/lock/e2e-{id}"));
    assert!(!Path::new(&tmp).exists(), "the guest wrote the host's /tmp");
    assert!(!Path::new(&lock).exists(), "the guest wrote the host's /run/lock");
    let shm = format!("/dev/shm/e2e-{id}");
    assert!(!Path::new(&shm).exists(), "the guest wrote the host's /dev/shm");
    assert_eq!(host_segments_of(uid), 0, "the guest's segment is in the host's IPC namespace");

    let look = format!("cat {tmp}; ls /run/lock /dev/shm; ipcs -m | grep -c 0x");
    let (status, body) = exec(&c.api, &id, &["sh", "-c", &look], 30);
    assert_eq!(status, 200, "{body}");
    let listed = format!("private\n/dev/shm:\ne2e-{id}\n\n/run/lock:\ne2e-{id}\n1\n");
    assert_eq!(s(&body, "output"), listed, "{body}");
    let port = ssh_port(&c.coordinator);
    let login = SshLogin { port, user: &id, password: &c.coordinator.admin_token };
    let ssh = login.command(c.dir(), &format!("cat {tmp}"));
    assert_eq!(String::from_utf8_lossy(&ssh.stdout).trim(), "private", "{ssh:?}");

    let data = a.instance_data_dir(&id);
    let (status, body) = c.api.delete(&format!("/v1/instances/{id}"));
    assert!(status < 300, "{status} {body}");
    c.wait_state(&id, "terminated");
    wait_until(SOON, "the guest's processes and data disk to be gone", || {
        let left = (host_processes_of(uid), data.exists());
        if left == (0, false) { Ok(()) } else { Err(format!("{left:?}")) }
    });
    assert_eq!(host_segments_of(uid), 0);
}

#[test]
fn a_guest_over_its_memory_is_oom_killed_and_its_processes_stay_under_pids_max() {
    const PIDS: usize = 32;
    let c = cluster!();
    let profile = c.write_profile("host-small", "RTX 5090", 1, 2, 1);
    let config = format!("[process]\npids_max = {PIDS}\n");
    let _agent = ConfiguredAgent::start(&c, &binaries!().agent, &profile, "host-small", &config);

    // 1.5 GiB touched at once by a guest with 1 GiB.
    let hog =
        start(&c, "hog", "echo HOG; exec dd if=/dev/zero of=/dev/null bs=1536M count=1", None);
    let ended = wait_ended(&c, &hog);
    assert_eq!(ended["memory_gib"], 1, "{ended}");
    assert_eq!(s(&ended, "termination_reason"), "failed", "{ended}");
    assert!(s(&ended, "reason").contains("out of memory"), "{ended}");

    // awk goes on when a fork is refused (a shell would stop).
    let bomb = "echo UID=$(id -u); awk 'BEGIN { for (i = 0; i < 300; i++) \
                if (system(\"sleep 300 &\") == 0) n++; print \"STARTED=\" n }'; exec sleep 300";
    let id = start(&c, "bomb", bomb, None);
    let out = c.wait_logs(&id, "STARTED=");
    let started: usize = value_of(&out, "STARTED").and_then(|n| n.parse().ok()).expect("count");
    let uid: u32 = value_of(&out, "UID").and_then(|u| u.parse().ok()).expect("UID line");
    let running = host_processes_of(uid);
    eprintln!("pids_max {PIDS}: {started} of 300 background sleeps started, {running} processes");
    assert!(started < PIDS && running <= PIDS, "{started} started, {running} run");
    assert!(running > PIDS / 2, "only {running} processes run: the limit is not what caps them");
}
