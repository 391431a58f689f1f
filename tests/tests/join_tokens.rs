//! Join tokens and host deletion (DESIGN §15): an expired, used-up or revoked join token is
//! refused with its reason and `token list` shows why; a host the operator deletes has its
//! work stopped and replaced, disappears from `/v1/hosts` and its agent is refused from then
//! on, across a coordinator restart too.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::regular_spec;
use gpuspot_e2e::{Agent, Cluster, SOON, assert_error, cluster, is_alive, s, sh, wait_until};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Output;

/// `e2e-coordinator --data-dir DIR token ARGS…` on the cluster's data dir, while it runs.
fn token_command(c: &Cluster, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_e2e-coordinator"))
        .arg("--config")
        .arg(&c.coordinator.config)
        .arg("--data-dir")
        .arg(&c.coordinator.data_dir)
        .arg("token")
        .args(args)
        .env_remove("GPUSPOT_CONFIG")
        .env_remove("GPUSPOT_DATA_DIR")
        .output()
        .expect("run the token command")
}

fn succeeded(output: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what} failed ({}): {stderr}", output.status);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `token create ARGS…`: the token (stdout's first line) and its id (from stderr).
fn create_token(c: &Cluster, args: &[&str]) -> (String, String) {
    let output = token_command(c, &[&["create"], args].concat());
    let stdout = succeeded(&output, "token create");
    let token = stdout.lines().next().unwrap_or_default().to_owned();
    assert!(token.starts_with("gpuspot1."), "stdout's first line is not a token: {stdout:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("jt-"))
        .unwrap_or_else(|| panic!("no token id on stderr: {stderr:?}"));
    (token, id.trim_end_matches(':').to_owned())
}

/// `token list --json`: the entry for `id`.
fn listed(c: &Cluster, id: &str) -> Value {
    let stdout = succeeded(&token_command(c, &["list", "--json"]), "token list --json");
    let list: Vec<Value> = serde_json::from_str(&stdout).expect("token list --json is JSON");
    list.into_iter().find(|t| t["id"] == id).unwrap_or_else(|| panic!("{id} not listed: {stdout}"))
}

/// The line of the `token list` table that names `id`.
fn table_row(c: &Cluster, id: &str) -> String {
    let stdout = succeeded(&token_command(c, &["list"]), "token list");
    assert!(stdout.starts_with("ID"), "no table header: {stdout}");
    let row = stdout.lines().find(|l| l.starts_with(id));
    row.unwrap_or_else(|| panic!("{id} not in the table:\n{stdout}")).to_owned()
}

fn profile(c: &Cluster, name: &str) -> PathBuf {
    c.write_profile(name, "NVIDIA H100 80GB HBM3", 1, 16, 64)
}

/// An agent joining with `token` must exit saying `expect`, and no host may appear for it.
fn assert_join_refused(c: &Cluster, token: &str, name: &str, expect: &str) {
    let hosts_before = c.api.hosts().len();
    let mut agent = c.spawn_agent(&profile(c, name), Some(token));
    let status = agent.wait_exit(SOON);
    assert!(!status.success(), "an agent with a refused token exited with {status}");
    let log = agent.log();
    assert!(
        log.contains(&format!("join refused: {expect}")),
        "agent output lacks {expect:?}:\n{log}"
    );
    assert!(c.host(name).is_none(), "a refused agent appears as a host: {:?}", c.api.hosts());
    assert_eq!(c.api.hosts().len(), hosts_before, "{:?}", c.api.hosts());
}

fn join(c: &Cluster, token: &str, name: &str) -> Agent {
    let agent = c.spawn_agent(&profile(c, name), Some(token));
    c.wait_host(name, "connected");
    agent
}

#[test]
fn an_expired_token_is_refused_with_its_reason() {
    let c = cluster!();
    let (token, id) = create_token(&c, &["--ttl", "1s"]);
    let entry = wait_until(SOON, "token list to show the token expired", || {
        let entry = listed(&c, &id);
        if entry["state"] == "expired" { Ok(entry) } else { Err(entry.to_string()) }
    });
    assert!(entry["expires_at"].is_string(), "{entry}");
    assert!(table_row(&c, &id).ends_with("expired"));
    assert_join_refused(&c, &token, "late", &format!("join token {id} expired at "));
}

#[test]
fn a_token_for_one_use_refuses_the_second_host() {
    let c = cluster!();
    let (token, id) = create_token(&c, &["--uses", "1"]);
    let row = table_row(&c, &id);
    assert!(row.contains("0/1") && row.ends_with("active"), "{row}");
    let _first = join(&c, &token, "first");
    assert_join_refused(
        &c,
        &token,
        "second",
        &format!("join token {id} has been used 1 time (its limit)"),
    );
    let row = table_row(&c, &id);
    assert!(row.contains("1/1") && row.ends_with("used up"), "{row}");
    assert_eq!(listed(&c, &id)["uses"], 1);
}

#[test]
fn a_revoked_token_is_refused_and_hosts_that_joined_with_it_stay() {
    let c = cluster!();
    let (token, id) = create_token(&c, &[]);
    assert!(table_row(&c, &id).contains("0/unlimited"));
    let _first = join(&c, &token, "first");
    let stdout = succeeded(&token_command(&c, &["revoke", &id]), "token revoke");
    assert!(stdout.contains(&format!("revoked join token {id}")), "{stdout}");
    assert!(table_row(&c, &id).ends_with("revoked"));
    assert!(listed(&c, &id)["revoked_at"].is_string());
    assert_join_refused(&c, &token, "second", &format!("join token {id} was revoked at "));
    assert_eq!(s(&c.host("first").expect("first host"), "state"), "connected");

    let unknown = token_command(&c, &["revoke", "jt-000000000000"]);
    assert!(!unknown.status.success(), "revoking an unknown id succeeded");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no join token jt-000000000000"));
}

/// How often the agent has been told its certificate is revoked.
fn refusals(agent: &Agent) -> usize {
    agent.log().matches("host certificate revoked").count()
}

#[test]
fn a_deleted_host_stops_its_work_and_its_agent_is_refused_from_then_on() {
    let mut c = cluster!();
    let token = c.join_token();
    let agents = [join(&c, &token, "doomed"), join(&c, &token, "spare")];
    let body = json!({
        "name": "svc", "mode": "replicaset", "replicas": 1,
        "specs": [regular_spec(&["H100"], 1)],
        "template": { "command": sh("echo $$ > pid; exec sleep 120") },
    });
    let deployment = gpuspot_e2e::deploy::Deployments::new(&c.api).create(&body);
    let path = format!("/v1/deployments/{}", s(&deployment, "id"));
    let first = wait_until(SOON, "the replica to run", || {
        let d = c.api.get_ok(&path);
        let running =
            d["instances"].as_array().into_iter().flatten().find(|i| i["state"] == "running");
        running.cloned().ok_or_else(|| d.to_string())
    });
    let host_id = s(&first, "host_id").to_owned();
    let doomed = if c.host("doomed").is_some_and(|h| s(&h, "id") == host_id) { 0 } else { 1 };
    let (agent, hostname) = (&agents[doomed], ["doomed", "spare"][doomed]);
    let pid = agent.workload_pid(s(&first, "id"));

    let account = create_account(&c.api, "tenant");
    let host_path = format!("/v1/hosts/{host_id}");
    assert_error(
        &account.api.delete(&host_path),
        403,
        Some("forbidden"),
        "an account deletes a host",
    );
    assert_error(&c.api.delete("/v1/hosts/h-0000000000000000"), 404, None, "an unknown host");
    let (status, answer) = c.api.delete(&host_path);
    assert_eq!(status, 200, "DELETE {host_path}: {answer}");
    assert_eq!(s(&answer, "id"), host_id, "{answer}");

    assert!(c.host(hostname).is_none(), "a deleted host is listed: {:?}", c.api.hosts());
    let ended = c.wait_state(s(&first, "id"), "terminated");
    assert_eq!(s(&ended, "termination_reason"), "host_lost", "{ended}");
    assert!(
        s(&ended, "reason").contains(&format!("the operator deleted host {host_id}")),
        "{ended}"
    );
    wait_until(SOON, "the deleted host's workload to be stopped", || {
        if is_alive(pid) { Err(format!("pid {pid} alive")) } else { Ok(()) }
    });
    wait_until(SOON, "the replica to be replaced on the other host", || {
        let d = c.api.get_ok(&path);
        let replaced = d["instances"].as_array().into_iter().flatten().any(|i| {
            i["state"] == "running" && i["host_id"].as_str().is_some_and(|h| h != host_id)
        });
        if replaced { Ok(()) } else { Err(d.to_string()) }
    });

    // It keeps knocking and keeps being refused, also by a restarted coordinator.
    wait_until(SOON, "the agent to be refused again at its next hello", || {
        if refusals(agent) >= 2 { Ok(()) } else { Err(agent.log()) }
    });
    let before = refusals(agent);
    c.coordinator.restart();
    wait_until(SOON, "a restarted coordinator to refuse the agent too", || {
        if refusals(agent) > before { Ok(()) } else { Err(agent.log()) }
    });
    assert!(c.host(hostname).is_none(), "a deleted host came back: {:?}", c.api.hosts());
    let first_run = std::fs::read_to_string(c.dir().join("coordinator-1.log")).unwrap_or_default();
    assert!(first_run.contains("host deleted by the operator"), "coordinator log:\n{first_run}");
}

#[test]
fn a_host_deleted_while_away_has_its_work_stopped_when_it_comes_back() {
    let c = cluster!();
    let token = c.join_token();
    let agent = join(&c, &token, "away");
    let request = gpuspot_e2e::request("job", &["H100"], 1, &sh("echo $$ > pid; exec sleep 120"));
    let id = s(&c.api.create(&request), "id").to_owned();
    let running = c.wait_state(&id, "running");
    let pid = agent.workload_pid(&id);

    // A frozen agent (as behind a network partition): the coordinator loses the host while
    // its workload runs on.
    signal(agent.pid(), libc::SIGSTOP);
    c.wait_host("away", "lost");
    let (status, answer) = c.api.delete(&format!("/v1/hosts/{}", s(&running, "host_id")));
    assert_eq!(status, 200, "{answer}");
    assert!(is_alive(pid), "nobody could tell the workload to stop yet");

    signal(agent.pid(), libc::SIGCONT);
    wait_until(SOON, "the returning agent to stop the deleted host's workload", || {
        if is_alive(pid) { Err(agent.log()) } else { Ok(()) }
    });
    let log = agent.log();
    assert!(log.contains("stopping workload"), "{log}");
    assert!(refusals(&agent) >= 1, "{log}");
    assert!(c.host("away").is_none(), "a deleted host came back: {:?}", c.api.hosts());
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a process this test started; no memory is involved.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
}
