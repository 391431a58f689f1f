//! Process guests isolated from each other (docs/contracts.md#guests): each runs under its own uid,
//! its data dir and socket its own; one cannot read another's files, socket or environment, nor
//! signal it; nothing a guest detaches outlives its instance; the data dir (a size- limited disk
//! where the host allows) is gone once the instance has ended.

use gpuspot_e2e::guests::{host_pid_of, is_mount_point, owner_and_mode, uid_of, value_of};
use gpuspot_e2e::{Cluster, SOON, cluster, is_alive, request, s, sh, wait_until};
use serde_json::json;
use std::path::PathBuf;

/// A guest that shows its socket, keeps a secret in its data dir and in its environment.
const VICTIM: &str = "echo secret-a > secret; echo $$ > pid; \
                      echo SOCKET=$GPUSPOT_METADATA_SOCKET; exec sleep 120";

/// What guest B tries against guest A (pid, data dir, socket); each line ends in its
/// command's exit status.
fn probe(pid: u32, data: &str, socket: &str) -> String {
    format!(
        "echo UID=$(id -u); \
         echo DATA=$(cat {data}/secret 2>&1; echo $?); \
         echo LIST=$(ls {data} 2>&1; echo $?); \
         echo ENVIRON=$(tr '\\0' ' ' < /proc/{pid}/environ 2>&1; echo $?); \
         echo KILL=$(kill -9 {pid} 2>&1; echo $?); \
         echo SOCK=$(curl -s --max-time 2 --unix-socket {socket} http://x/vm/metadata 2>&1; echo $?); \
         echo OWN=$(curl -s --max-time 2 --unix-socket $GPUSPOT_METADATA_SOCKET \
           'http://x/vm/metadata?key=instance_id'); \
         echo PROBED; exec sleep 120"
    )
}

/// The exit status at the end of a probe's line (`… 1`).
fn status_of(logs: &str, key: &str) -> i32 {
    let line = value_of(logs, key).unwrap_or_else(|| panic!("no {key}= in {logs}"));
    line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn two_process_guests_cannot_read_or_signal_each_other() {
    let c = cluster!();
    let a = c.agent(&Cluster::seed_profile("host-a"));
    let mut victim = request("victim", &["RTX 5090"], 1, &sh(VICTIM));
    victim["env"] = json!({ "API_KEY": "hunter2-secret" });
    let victim = s(&c.api.create(&victim), "id").to_owned();
    c.wait_state(&victim, "running");
    let victim_pid = a.workload_pid(&victim);
    let logs = c.wait_logs(&victim, "SOCKET=");
    let socket = PathBuf::from(value_of(&logs, "SOCKET").expect("socket line"));
    assert!(socket.ends_with(format!("{victim}/metadata.sock")), "{}", socket.display());
    let data = a.instance_data_dir(&victim);

    let script = probe(victim_pid, data.to_str().unwrap(), socket.to_str().unwrap());
    let prober =
        s(&c.api.create(&request("prober", &["RTX 5090"], 1, &sh(&script))), "id").to_owned();
    let out = c.wait_logs(&prober, "PROBED");
    eprintln!("{out}");

    let victim_uid = uid_of(victim_pid).expect("victim uid");
    let prober_uid: u32 = value_of(&out, "UID").and_then(|u| u.parse().ok()).expect("uid");
    assert!(victim_uid >= 200_000 && prober_uid >= 200_000, "{victim_uid} {prober_uid}");
    assert_ne!(victim_uid, prober_uid, "two guests share a uid");
    for key in ["DATA", "LIST", "ENVIRON", "KILL", "SOCK"] {
        assert_ne!(status_of(&out, key), 0, "{key} succeeded: {out}");
    }
    assert!(!out.contains("secret-a") && !out.contains("hunter2"), "{out}");
    assert_eq!(value_of(&out, "OWN"), Some(format!("\"{prober}\"").as_str()), "{out}");
    assert!(is_alive(victim_pid), "the prober killed the victim");
    assert_eq!(s(&c.api.instance(&victim), "state"), "running");
    assert_eq!(owner_and_mode(&data), (victim_uid, 0o700));
    assert_eq!(owner_and_mode(&socket), (victim_uid, 0o600));
    // Output and records stay the agent's.
    let instance_dir = data.parent().unwrap();
    assert_eq!(owner_and_mode(&instance_dir.join("output.log")), (0, 0o600));
    assert_eq!(owner_and_mode(&instance_dir.join("assignment.json")), (0, 0o600));
    assert_eq!(owner_and_mode(&a.state_dir.join("host.key")), (0, 0o600));
}

#[test]
fn a_setsid_child_dies_with_its_instance_whether_stopped_or_exited() {
    let c = cluster!();
    let a = c.agent(&Cluster::seed_profile("host-a"));
    // A detached grandchild in a session of its own, away from the instance's dir.
    let escape = "setsid sh -c 'cd /; exec env -i sleep 300' & echo ESCAPED=$!; sleep 0.5";
    let stopped = request("stopped", &["RTX 5090"], 1, &sh(&format!("{escape}; exec sleep 120")));
    // It exits once the test has found its child on the host.
    let exit = format!("{escape}; while [ ! -e go ]; do sleep 0.05; done; exit 0");
    let exited = request("exited", &["RTX 5090"], 1, &sh(&exit));
    let stopped = s(&c.api.create(&stopped), "id").to_owned();
    let exited = s(&c.api.create(&exited), "id").to_owned();
    // The pid the guest saw, on the host (the guest has its own PID namespace).
    let escaped = |id: &str| -> u32 {
        let logs = c.wait_logs(id, "ESCAPED=");
        let pid = value_of(&logs, "ESCAPED").and_then(|pid| pid.parse().ok()).expect("pid");
        let data = a.instance_data_dir(id);
        wait_until(SOON, &format!("{id}'s child {pid} on the host"), || {
            host_pid_of(&data, pid).ok_or_else(|| "not found".to_owned())
        })
    };
    let (stopped_child, exited_child) = (escaped(&stopped), escaped(&exited));
    std::fs::write(a.instance_data_dir(&exited).join("go"), "").expect("go");
    c.wait_state(&stopped, "running");
    assert!(is_alive(stopped_child), "the detached child never ran");

    let (status, body) = c.api.delete(&format!("/v1/instances/{stopped}"));
    assert_eq!(status, 200, "{body}");
    for (id, child) in [(&stopped, stopped_child), (&exited, exited_child)] {
        c.wait_state(id, "terminated");
        wait_until(SOON, &format!("the detached child of {id} to die"), || {
            if is_alive(child) { Err(format!("pid {child} alive")) } else { Ok(()) }
        });
    }
}

#[test]
fn the_data_dir_is_a_limited_disk_and_is_gone_after_the_end() {
    let c = cluster!();
    let a = c.agent(&Cluster::seed_profile("host-a"));
    let script = "echo $$ > pid; echo checkpoint > ckpt; \
                  echo BLOCKS=$(stat -f -c '%b %S' .); \
                  echo BIG=$(fallocate -l 2G big 2>&1; echo $?); rm -f big; \
                  while [ ! -e done ]; do sleep 0.1; done; echo finished";
    let mut body = request("disk", &["RTX 5090"], 1, &sh(script));
    body["data_disk_gib"] = json!(1);
    let id = s(&c.api.create(&body), "id").to_owned();
    c.wait_state(&id, "running");
    let data = a.instance_data_dir(&id);
    let logs = c.wait_logs(&id, "BIG=");
    if is_mount_point(&data) {
        let blocks = value_of(&logs, "BLOCKS").expect("BLOCKS line");
        let (count, size) = blocks.split_once(' ').expect("two numbers");
        let bytes = count.parse::<u64>().unwrap() * size.parse::<u64>().unwrap();
        assert!(bytes <= 1 << 30 && bytes > 900 << 20, "a 1 GiB disk is {bytes} bytes");
        assert_ne!(status_of(&logs, "BIG"), 0, "2 GiB fit on a 1 GiB disk: {logs}");
        assert!(logs.contains("No space left"), "{logs}");
    } else {
        eprintln!("data_disk_gib is not enforced on this machine (no loop mounts)");
    }
    std::fs::write(data.join("done"), "").unwrap();
    let ended = c.wait_state(&id, "terminated");
    assert_eq!(ended["exit_code"], 0, "{ended}");
    // The image goes right after the dir.
    let image = data.with_extension("img");
    wait_until(SOON, "the data dir and its disk image to be deleted", || {
        let left = (data.exists(), image.exists());
        if left == (false, false) { Ok(()) } else { Err(format!("(dir, image) left: {left:?}")) }
    });
    assert!(c.wait_logs(&id, "finished").contains("BLOCKS="), "the output is kept");
}
