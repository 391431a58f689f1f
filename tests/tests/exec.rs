//! Getting into an instance (docs/contracts.md#guests "Getting in"): a command run through the API
//! comes back with its output and exit code, only for the owner (or the admin) and only while the
//! instance runs; the timeout kills; the WebSocket form is an interactive shell; the SSH door opens
//! one with the owner's token as password, using the real OpenSSH client.

use gpuspot_e2e::billing::{create_account, running_instance};
use gpuspot_e2e::exec::{SshLogin, WsSession, exec, ssh_config, ssh_port};
use gpuspot_e2e::{Cluster, SOON, assert_error, cluster, holds, s, wait_until};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn exec_answers_with_output_and_exit_code_for_the_owner_only() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let (owner, id) = running_instance(&c, "owner");
    assert!(owner.api.instance(&id)["ssh"].is_null(), "no [ssh]: no ssh command");

    let (status, body) = exec(&owner.api, &id, &["sh", "-c", "echo hi; echo oops >&2; exit 3"], 30);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exit_code"], 3, "{body}");
    assert_eq!(s(&body, "output"), "hi\noops\n", "{body}");
    assert_eq!(body["truncated"], false, "{body}");
    let (status, body) = exec(&c.api, &id, &["sh", "-c", "echo $GPUSPOT_INSTANCE_ID"], 30);
    assert_eq!((status, s(&body, "output").trim()), (200, id.as_str()), "admin: {body}");

    let answer = exec(&owner.api, &id, &["/no/such/program"], 30);
    assert_error(&answer, 409, Some("exec_failed"), "a program that does not exist");
    assert!(answer.1["error"]["message"].as_str().unwrap_or("").contains("/no/such/program"));

    let other = create_account(&c.api, "other");
    let answer = exec(&other.api, &id, &["true"], 30);
    assert_error(&answer, 404, Some("not_found"), "another account's instance");
    for (body, what) in [
        (json!({ "command": [] }), "an empty command"),
        (json!({ "command": ["true"], "timeout_seconds": 0 }), "a zero timeout"),
        (json!({ "command": ["true"], "timeout_seconds": 3601 }), "a timeout over an hour"),
    ] {
        let answer = owner.api.post(&format!("/v1/instances/{id}/exec"), &body);
        assert_error(&answer, 400, None, what);
    }

    let (status, _) = c.api.delete(&format!("/v1/instances/{id}"));
    assert_eq!(status, 200);
    c.wait_state(&id, "terminated");
    let answer = exec(&owner.api, &id, &["true"], 30);
    assert_error(&answer, 409, Some("not_running"), "a terminated instance");
    assert!(answer.1["error"]["message"].as_str().unwrap_or("").contains("terminated"));
}

#[test]
fn the_timeout_kills_the_command_and_says_so() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let (owner, id) = running_instance(&c, "patient");
    let started = Instant::now();
    let (status, body) = exec(&owner.api, &id, &["sh", "-c", "echo $$; exec sleep 60"], 1);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timed_out"], true, "{body}");
    assert!(body["exit_code"].is_null(), "{body}");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    let pid: u32 = s(&body, "output").trim().parse().expect("the command printed its pid");
    // The killed command is gone (looked for where it ran: the guest's PID namespace);
    // the instance itself still runs and answers.
    let probe = format!("kill -0 {pid} 2>/dev/null; echo $?");
    wait_until(SOON, &format!("the timed-out command {pid} to be gone"), || {
        let (_, body) = exec(&owner.api, &id, &["sh", "-c", &probe], 10);
        holds(s(&body, "output").trim() == "1", || format!("{pid} is still alive: {body}"))
    });
    let (status, body) = exec(&owner.api, &id, &["echo", "still here"], 10);
    assert_eq!((status, s(&body, "output")), (200, "still here\n"), "{body}");
    assert_eq!(s(&owner.api.instance(&id), "state"), "running");
}

#[test]
fn a_websocket_session_is_an_interactive_shell() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let (owner, id) = running_instance(&c, "typist");

    let mut shell = WsSession::open(&owner.api, &id, "tty=true&cols=100&rows=30").expect("upgrade");
    shell.type_in("echo $((6*7))\n");
    shell.read_until(Duration::from_secs(20), "the shell to print 42", |s| {
        // A terminal echoes the typed line, and the prompt may share a line with the answer.
        s.text().lines().any(|line| line.trim().ends_with("42"))
    });
    shell.control(json!({ "resize": { "cols": 120, "rows": 40 } }));
    shell.type_in("stty size\n");
    shell.read_until(Duration::from_secs(20), "the terminal's new size", |s| {
        s.text().lines().any(|line| line.trim().ends_with("40 120"))
    });
    shell.type_in("exit 5\n");
    let last = shell.wait_end(Duration::from_secs(20));
    assert_eq!(last["exit_code"], 5, "{last}");

    // Without a terminal, end of input ends `cat`.
    let mut cat = WsSession::open(&owner.api, &id, "command=cat").expect("upgrade");
    cat.type_in("piped through\n");
    cat.control(json!({ "eof": true }));
    let last = cat.wait_end(Duration::from_secs(20));
    assert_eq!((last["exit_code"].as_i64(), cat.text().as_str()), (Some(0), "piped through\n"));

    let other = create_account(&c.api, "nosy");
    let refused = WsSession::open(&other.api, &id, "").err().expect("another account is refused");
    assert_eq!(refused.0, 404, "{refused:?}");
}

#[test]
fn the_ssh_door_opens_a_shell_with_the_owners_token() {
    let c = cluster!(&ssh_config());
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let (owner, id) = running_instance(&c, "sshuser");
    let port = ssh_port(&c.coordinator);
    let shown = s(&owner.api.instance(&id), "ssh").to_owned();
    assert_eq!(shown, format!("ssh -p {port} {id}@127.0.0.1"));
    let token = owner.api.token.clone().expect("account token");
    let login = SshLogin { port, user: &id, password: &token };

    let out = login.command(c.dir(), "echo $GPUSPOT_INSTANCE_ID");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id, "{out:?}");
    // A shell on a terminal: what is typed runs, and its exit status comes back.
    let out = login.run(c.dir(), &["-tt"], &[], "echo $((6*7)) $(tty)\nexit 4\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(stdout.lines().any(|l| l.contains("42 /dev/pts/")), "no answer on a pty: {stdout:?}");
    let admin = SshLogin { password: &c.coordinator.admin_token, ..login };
    let out = admin.command(c.dir(), "exit 7");
    assert_eq!(
        out.status.code(),
        Some(7),
        "the admin gets in, the exit status comes back: {out:?}"
    );

    let other = create_account(&c.api, "stranger");
    let other_token = other.api.token.clone().expect("token");
    for (password, what) in
        [("wrong-password", "a wrong password"), (other_token.as_str(), "another account")]
    {
        let out = SshLogin { password, ..login }.command(c.dir(), "echo $GPUSPOT_INSTANCE_ID");
        assert!(!out.status.success(), "{what} got in: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(&id), "{what}: {out:?}");
    }
}
