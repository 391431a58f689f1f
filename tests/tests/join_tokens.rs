//! Join tokens and host deletion (docs/contracts.md#tokens): a token reaches the agent through a
//! private file, stdin or `GPUSPOT_JOIN_TOKEN`, never its command line (the flag is refused); a
//! token admits one host unless made for more; an expired, used-up or revoked token is refused with
//! its reason and `token list` shows why; every join is an event the operator sees and tenants do
//! not; a host the operator deletes has its work stopped and replaced, disappears from `/v1/hosts`
//! and its agent is refused from then on, across a coordinator restart too.

use gpuspot_e2e::billing::create_account;
use gpuspot_e2e::deploy::regular_spec;
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::join::{
    Created, JoinVia, create_token, listed, succeeded, table_row, token_command, write_token_file,
};
use gpuspot_e2e::process::Proc;
use gpuspot_e2e::{
    Agent, Cluster, SOON, assert_error, binaries, cluster, is_alive, s, sh, wait_until,
};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};

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
    let Created { token, id, .. } = create_token(&c, &["--ttl", "1s"]);
    let entry = wait_until(SOON, "token list to show the token expired", || {
        let entry = listed(&c, &id);
        if entry["state"] == "expired" { Ok(entry) } else { Err(entry.to_string()) }
    });
    assert!(entry["expires_at"].is_string(), "{entry}");
    assert!(table_row(&c, &id).ends_with("expired"));
    assert_join_refused(&c, &token, "late", &format!("join token {id} expired at "));
}

#[test]
fn a_default_token_admits_one_host_and_a_restarted_agent_needs_none() {
    let c = cluster!();
    let Created { token, id, stderr } = create_token(&c, &[]);
    assert!(stderr.contains("1 host may join with it"), "{stderr}");
    let row = table_row(&c, &id);
    assert!(row.contains("0/1") && row.ends_with("active"), "{row}");
    let mut first = join(&c, &token, "first");
    assert_join_refused(
        &c,
        &token,
        "second",
        &format!("join token {id} has been used 1 time (its limit)"),
    );
    let row = table_row(&c, &id);
    assert!(row.contains("1/1") && row.ends_with("used up"), "{row}");
    assert_eq!(listed(&c, &id)["uses"], 1);

    // A host that joined comes back with its certificate: the used-up token is not asked.
    c.restart_agent(&mut first, &profile(&c, "first"));
    wait_until(SOON, "the restarted agent to open a session", || {
        let log = first.log();
        if log.contains("session open") { Ok(()) } else { Err(log) }
    });
    let log = first.log();
    assert!(!log.contains("joined the cluster"), "the restarted agent joined again: {log}");
    assert_eq!(c.api.hosts().len(), 1, "{:?}", c.api.hosts());
    assert_eq!(listed(&c, &id)["uses"], 1);
}

#[test]
fn a_revoked_token_is_refused_and_hosts_that_joined_with_it_stay() {
    let c = cluster!();
    let Created { token, id, .. } = create_token(&c, &["--uses", "5"]);
    assert!(table_row(&c, &id).contains("0/5"));
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
    let token = c.join_token_for(2);
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

/// What an agent said when it exited by itself (within [`SOON`]) with `code`.
fn exit_output(agent: &mut Agent, code: i32) -> String {
    let status = agent.wait_exit(SOON);
    let log = agent.log();
    assert_eq!(status.code(), Some(code), "agent exited with {status}:\n{log}");
    log
}

/// Runs an agent `command` that must exit by itself within [`SOON`]: its status and output.
fn run_to_exit(c: &Cluster, name: &str, command: Command) -> (ExitStatus, String) {
    let log = c.dir().join(format!("{name}.log"));
    let mut proc = Proc::spawn(&format!("agent {name}"), command, &log);
    let status = wait_until(SOON, &format!("agent {name} to exit"), || {
        proc.try_wait().ok_or_else(|| proc.log_tail(1500))
    });
    (status, proc.log_tail(1 << 16))
}

#[test]
fn a_join_token_on_the_command_line_is_refused() {
    let c = cluster!();
    let Created { token, id, .. } = create_token(&c, &[]);
    let mut agent = c.spawn_agent_via(&profile(&c, "flagged"), Some(JoinVia::CommandLine(&token)));
    let said = exit_output(&mut agent, 2);
    assert!(
        said.contains("--join-token-file") && said.contains("GPUSPOT_JOIN_TOKEN"),
        "the refusal does not say what to use instead:\n{said}"
    );
    assert!(!said.contains(&token), "the refusal repeats the token:\n{said}");

    // `fleet` refuses it the same way.
    let mut fleet = std::process::Command::new(binaries!().agent);
    fleet.args(["fleet", "--hosts", "1", "--coordinator", &c.coordinator.quic.to_string()]);
    fleet.arg("--profile").arg(profile(&c, "fleeted"));
    fleet.arg("--state-dir").arg(c.dir().join("fleet"));
    fleet.arg(format!("--join-token={token}")).env_remove("GPUSPOT_JOIN_TOKEN");
    let (status, said) = run_to_exit(&c, "fleet", fleet);
    assert_eq!(status.code(), Some(2), "fleet exited with {status}:\n{said}");
    assert!(said.contains("--join-token-file"), "{said}");
    assert!(!said.contains(&token), "the refusal repeats the token:\n{said}");

    assert!(c.api.hosts().is_empty(), "{:?}", c.api.hosts());
    assert_eq!(listed(&c, &id)["uses"], 0, "a refused flag spent a use");
}

#[test]
fn a_token_joins_from_a_private_file_stdin_or_the_environment_never_the_command_line() {
    let c = cluster!();
    let Created { token, id, .. } = create_token(&c, &["--uses", "4"]);
    let ways = [
        ("filed", JoinVia::File(&token)),
        ("piped", JoinVia::Stdin(&token)),
        ("environed", JoinVia::Env(&token)),
    ];
    let agents: Vec<Agent> = ways
        .into_iter()
        .map(|(name, via)| c.spawn_agent_via(&profile(&c, name), Some(via)))
        .collect();
    for agent in &agents {
        c.wait_host(&agent.hostname, "connected");
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", agent.pid())).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(!cmdline.contains(&token), "{} has the token in its cmdline", agent.hostname);
    }
    assert_eq!(listed(&c, &id)["uses"], 3);

    // A token file other users may read is refused before anything is sent.
    let state_dir = c.dir().join("exposed");
    let file = write_token_file(&state_dir, &token);
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod the token file");
    let mut command =
        c.agent_command(&binaries!().agent, &profile(&c, "exposed"), &state_dir, None);
    command.arg("--join-token-file").arg(&file);
    let (status, said) = run_to_exit(&c, "exposed", command);
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("chmod 600 {}", file.display())), "{said}");
    assert!(c.host("exposed").is_none(), "{:?}", c.api.hosts());
    assert_eq!(listed(&c, &id)["uses"], 3);
}

#[test]
fn every_join_is_an_event_for_the_operator_and_not_for_tenants() {
    let c = cluster!();
    let account = create_account(&c.api, "tenant");
    let Created { token, id, .. } = create_token(&c, &[]);
    let _agent = join(&c, &token, "newcomer");
    let host = c.host("newcomer").expect("the new host");

    let mut admin = EventStream::open(&c.api, Some(0));
    let joined = admin.wait_for(SOON, "host_joined", |e| e.kind == "host_joined");
    assert_eq!(joined.body["host_id"], host["id"], "{}", joined.body);
    assert_eq!(joined.data()["hostname"], "newcomer", "{}", joined.body);
    assert_eq!(joined.data()["token_id"], id.as_str(), "{}", joined.body);
    assert!(joined.body["account_id"].is_null(), "{}", joined.body);
    // The join comes before the host's first hello.
    admin.wait_for(SOON, "host_connected after host_joined", |e| {
        e.kind == "host_connected" && e.body["host_id"] == host["id"]
    });

    // A tenant's stream, replayed from the start, ends at its own payment without it.
    account.pay(&c.api, "1");
    let mut tenant = EventStream::open(&account.api, Some(0));
    tenant.wait_for(SOON, "the tenant's payment", |e| e.kind == "payment");
    let leaked: Vec<_> = tenant.seen.iter().filter(|e| e.kind.starts_with("host_")).collect();
    assert!(leaked.is_empty(), "a tenant sees host events: {}", tenant.summary());
}
