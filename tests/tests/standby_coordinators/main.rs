//! Two coordinators on one real PostgreSQL (issue 28): one leads, the other answers
//! `standby`, redirects to the leader and is what the CLI reaches through it; after
//! `kill -9` of the leader under a create load the standby leads, every create that got
//! 202 exists, none runs twice, workloads kept running and agents reconnected; a leader
//! paused past its lease steps down when it resumes; `migrate` copies a SQLite
//! installation whole; an agent that reaches the standby first is sent on to the leader;
//! while none can lead it refuses them with retry-later; snapshot files in a shared
//! `[snapshots] dir` outlive the leader that stored them.

use gpuspot_e2e::postgres::Postgres;
use gpuspot_e2e::{Api, Cluster, SOON, cluster, config_with_timers, request, s, sh, wait_until};
use serde_json::Value;
use std::time::Duration;

mod limits;
mod support;

use support::{config, health, standby, standby_with, wait_role};

#[test]
fn one_leads_the_other_redirects_and_the_cli_works_through_either() {
    let pg = Postgres::start();
    let mut c = cluster!(&config(&pg));
    let leader = health(&c.api);
    assert_eq!(
        (leader["role"].as_str(), leader["leader"].as_str()),
        (Some("leader"), Some(c.coordinator.url().as_str()))
    );
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let b = standby_with(&c, &pg, "b", &format!("[gateway]\nlisten = \"{gateway}\"\n"));
    let standby_health = health(&b.api());
    assert_eq!(standby_health["role"], "standby", "{standby_health}");
    assert_eq!(standby_health["leader"], c.coordinator.url());

    let raw = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = raw.get(format!("{}/v1/instances?limit=1", b.url())).send().unwrap();
    assert_eq!(answer.status(), 307);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("{}/v1/instances?limit=1", c.coordinator.url()));
    let served = raw.get(format!("http://{gateway}/d/web/")).send().unwrap();
    assert_eq!(served.status(), 503, "a standby's gateway serves nothing");
    assert!(served.text().unwrap().contains("not_leader"));

    let _agent = c.agent(&Cluster::seed_profile("host-a"));
    let id = s(&c.api.create(&request("via-leader", &["RTX 5090"], 1, &sh("sleep 600"))), "id")
        .to_owned();
    c.wait_state(&id, "running");
    let through = |api: &str| {
        let output =
            gpuspot_e2e::cli::run(&Api::new(api, Some(&b.admin_token)), &["instances", "list"]);
        let (out, err) = gpuspot_e2e::cli::texts(&output);
        assert!(output.status.success(), "gpuspot via {api}: {err}");
        out
    };
    let direct = through(&c.coordinator.url());
    assert!(direct.contains(&id), "{direct}");
    assert_eq!(through(&b.url()), direct, "the standby's 307 is followed with the token");
    let list = format!("http://127.0.0.1:1,{}", b.url());
    assert_eq!(through(&list), direct, "an unreachable first URL is skipped");

    // A clean stop hands the lease over: the standby leads and serves what was there.
    c.coordinator.terminate(SOON);
    wait_role(&b.api(), "leader");
    assert_eq!(through(&b.url()), direct);
    let served = raw.get(format!("http://{gateway}/d/web/")).send().unwrap();
    assert_ne!(served.status(), 503, "the new leader's gateway serves on the same address");
}

/// Well under the agent's 10 s backoff ceiling (a host connects in about 0.15 s here): the
/// agent goes where the standby sends it at once.
const SENT_ON: Duration = Duration::from_secs(5);

#[test]
fn an_agent_that_lists_the_standby_first_is_sent_on_to_the_leader_at_once() {
    let pg = Postgres::start();
    let c = cluster!(&config(&pg));
    let b = standby(&c, &pg, "b");
    // The standby first; and a host that knows only the standby still finds the leader.
    let mut agents = Vec::new();
    for (hostname, list) in
        [("host-a", format!("{},{}", b.quic, c.coordinator.quic)), ("host-b", b.quic.to_string())]
    {
        c.agents_use(&list);
        let started = std::time::Instant::now();
        let agent = c.spawn_agent(&Cluster::seed_profile(hostname), Some(&c.join_token()));
        wait_until(SENT_ON, &format!("{hostname} (--coordinator {list}) connected"), || {
            match c.host(hostname) {
                Some(host) if host["state"] == "connected" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        eprintln!("{hostname} connected {:.1?} after its start", started.elapsed());
        assert!(
            agent.log().contains("the coordinator is a standby; going on to the leader"),
            "{}",
            agent.log()
        );
        agents.push(agent);
    }
    assert!(b.log_tail().contains("agent sent on to the leader (not_leader)"), "{}", b.log_tail());
    assert_eq!(health(&b.api())["role"], "standby");
}

#[test]
fn while_no_coordinator_can_lead_a_standby_refuses_agents_with_retry_later() {
    let mut pg = Postgres::start();
    let c = cluster!(&config(&pg));
    let b = standby(&c, &pg, "b");
    c.agents_use(&b.quic.to_string());
    let profile = Cluster::seed_profile("host-a");
    let mut agent = c.agent(&profile);
    let sessions = |agent: &gpuspot_e2e::Agent| agent.log().matches("session open").count();
    assert_eq!(sessions(&agent), 1);
    pg.stop();
    // The standby cannot read the lease: it names no leader, and the agent keeps trying.
    wait_until(SOON, "the standby to name no leader", || match health(&b.api()) {
        h if h["leader"].is_null() => Ok(()),
        h => Err(h.to_string()),
    });
    c.restart_agent(&mut agent, &profile);
    wait_until(SOON, "the agent to be refused with no_leader, twice", || {
        let log = agent.log();
        let refusals = log.matches("no coordinator leads right now").count();
        if refusals >= 2 { Ok(()) } else { Err(log) }
    });
    assert!(gpuspot_e2e::is_alive(agent.pid()), "a retry-later refusal: {}", agent.log());
    pg.restart();
    wait_until(SOON, "the agent to open a session once a coordinator leads", || {
        if sessions(&agent) == 2 { Ok(()) } else { Err(agent.log()) }
    });
}

#[test]
fn kill_9_of_the_leader_under_load_the_standby_leads_and_nothing_is_lost_or_run_twice() {
    let pg = Postgres::start();
    let mut c = cluster!(&config(&pg));
    let b = standby(&c, &pg, "b");
    c.agents_use(&format!("{},{}", c.coordinator.quic, b.quic));
    let agent = c.agent(&Cluster::seed_profile("host-a"));
    let first = s(
        &c.api.create(&request("before", &["RTX 5090"], 1, &sh("echo $$ > pid; exec sleep 600"))),
        "id",
    )
    .to_owned();
    c.wait_state(&first, "running");
    let pid = agent.workload_pid(&first);

    // A client creating all along; it sends to whichever answers (both URLs, like the CLI).
    let (a_api, b_api) = (c.api.clone(), b.api());
    let by_leader = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = by_leader.clone();
    let load = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        for n in 0..60 {
            let body = request(
                &format!("load-{n}"),
                &["RTX 4090", "RTX 5090", "H100"],
                1,
                &sh("sleep 600"),
            );
            for (by, api) in [&a_api, &b_api].into_iter().enumerate() {
                if let Ok((202, answer)) = api.try_post("/v1/instances", &body) {
                    accepted.push((s(&answer, "id").to_owned(), by));
                    if by == 0 {
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        accepted
    });
    // The leader acknowledges some of the load before it dies.
    wait_until(SOON, "the leader to acknowledge creates", || {
        let n = by_leader.load(std::sync::atomic::Ordering::Relaxed);
        if n >= 3 { Ok(()) } else { Err(format!("{n} acknowledged")) }
    });
    c.coordinator.kill();
    let took_over = std::time::Instant::now();
    wait_role(&b.api(), "leader");
    eprintln!("the standby led {:.1?} after kill -9", took_over.elapsed());
    let accepted = load.join().unwrap();
    let by = |n| accepted.iter().filter(|(_, by)| *by == n).count();
    assert!(by(0) > 0 && by(1) > 0, "creates were acknowledged by both leaders: {accepted:?}");

    let api = b.api();
    wait_until(Duration::from_secs(40), "host-a to reconnect to the new leader", || {
        let (_, hosts) = api.get("/v1/hosts");
        let connected =
            hosts.as_array().is_some_and(|h| h.iter().any(|h| h["state"] == "connected"));
        if connected { Ok(()) } else { Err(hosts.to_string()) }
    });
    for (id, _) in &accepted {
        let (status, body) = api.get(&format!("/v1/instances/{id}"));
        assert_eq!(status, 200, "a create that got 202 is lost: {id}: {body}");
    }
    let (_, before) = api.get(&format!("/v1/instances/{first}"));
    assert_eq!(before["state"], "running", "{before}");
    assert_eq!(agent.workload_pid(&first), pid, "the workload kept running, not started again");
    // The ledger the new leader keeps equals the sum of its entries (read between two equal
    // balances: the meter keeps charging the running instances).
    let (ledger, balance) = wait_until(SOON, "a ledger between two equal balances", || {
        let balance = |api: &Api| {
            gpuspot_e2e::values::money(&api.get("/v1/accounts/a-operator").1, "balance")
        };
        let before = balance(&api);
        let (ledger, _) = api.all_pages("/v1/accounts/a-operator/ledger");
        if balance(&api) == before {
            Ok((ledger, before))
        } else {
            Err("charged meanwhile".to_owned())
        }
    });
    gpuspot_e2e::billing::assert_ledger_adds_up(&ledger, balance);
    let (_, metrics) = api.get("/metrics");
    let metrics = metrics.as_str().unwrap_or_default();
    for line in
        ["gpuspot_leader 1", "gpuspot_leader_changes_total 1", "gpuspot_store_commit_seconds_count"]
    {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(gpuspot_e2e::is_alive(pid));
}

#[test]
fn a_leader_paused_past_its_lease_steps_down_when_it_resumes() {
    let pg = Postgres::start();
    let mut c = cluster!(&config(&pg));
    let b = standby(&c, &pg, "b");
    c.coordinator.signal(libc::SIGSTOP);
    wait_role(&b.api(), "leader");
    let epoch_after_takeover = pg.query("SELECT epoch FROM leader_lease");
    let events = pg.query("SELECT COUNT(*) FROM events");
    c.coordinator.signal(libc::SIGCONT);
    let status = wait_until(SOON, "the old leader to step down", || {
        c.coordinator.exited().ok_or_else(|| "still running".to_owned())
    });
    assert!(!status.success(), "it ends as a failure for its supervisor to restart: {status}");
    assert!(c.coordinator.log_tail().contains("stepping down"), "{}", c.coordinator.log_tail());
    assert_eq!(pg.query("SELECT epoch FROM leader_lease"), epoch_after_takeover);
    assert_eq!(pg.query("SELECT COUNT(*) FROM events"), events, "the old leader committed nothing");
    assert_eq!(health(&b.api())["role"], "leader");
}

#[test]
fn migrate_keeps_every_account_balance_instance_and_event() {
    let pg = Postgres::start();
    let mut c = cluster!(&config_with_timers(&[("host_lost_after", "20s")]));
    let _agent = c.agent(&Cluster::seed_profile("host-a"));
    let (status, account) = c.api.post("/v1/accounts", &serde_json::json!({ "name": "alice" }));
    assert_eq!(status, 201, "{account}");
    let account_id = s(&account, "id").to_owned();
    let (status, paid) = c.api.post(
        &format!("/v1/accounts/{account_id}/payments"),
        &serde_json::json!({ "amount": "12.50" }),
    );
    assert!(status < 300, "{paid}");
    let id =
        s(&c.api.create(&request("kept", &["RTX 5090"], 1, &sh("sleep 600"))), "id").to_owned();
    c.wait_state(&id, "running");
    let (_, accounts) = c.api.get("/v1/accounts");
    let ledger_path = format!("/v1/accounts/{account_id}/ledger");
    let (_, ledger) = c.api.get(&ledger_path);
    c.coordinator.terminate(SOON);
    let sqlite = rusqlite::Connection::open(c.coordinator.data_dir.join("gpuspot.db")).unwrap();
    let count = |sql: &str| -> String {
        sqlite.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap().to_string()
    };
    let events = count("SELECT COUNT(*) FROM events");
    let last_event = count("SELECT MAX(id) FROM events");

    let output = std::process::Command::new(gpuspot_e2e::binaries!().coordinator)
        .args(["migrate", "--from"])
        .arg(&c.coordinator.data_dir)
        .args(["--to", &pg.url()])
        .output()
        .unwrap();
    let (_, err) = gpuspot_e2e::cli::texts(&output);
    assert!(output.status.success(), "migrate: {err}");
    assert!(err.contains("accounts: 2 rows") || err.contains("accounts: 1 rows"), "{err}");
    let again = std::process::Command::new(gpuspot_e2e::binaries!().coordinator)
        .args(["migrate", "--from"])
        .arg(&c.coordinator.data_dir)
        .args(["--to", &pg.url()])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a database with state is refused");

    let on_pg = standby(&c, &pg, "pg");
    let api = on_pg.api();
    wait_role(&api, "leader");
    let (_, moved) = api.get("/v1/accounts");
    let names = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| (a["id"].clone(), a["name"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&moved), names(&accounts), "every account");
    let alice = |v: &Value| {
        v.as_array().unwrap().iter().find(|a| a["id"] == account_id.as_str()).unwrap()["balance"]
            .clone()
    };
    assert_eq!(
        (alice(&moved), alice(&accounts)),
        (Value::from("12.50"), Value::from("12.50")),
        "its balance"
    );
    let (_, instance) = api.get(&format!("/v1/instances/{id}"));
    assert_eq!(instance["id"], id.as_str(), "{instance}");
    assert_eq!(api.get(&ledger_path).1, ledger, "the ledger, entry for entry");
    let moved = pg.query("SELECT COUNT(*) FROM events WHERE id <= (SELECT MAX(id) FROM events)");
    assert!(moved.trim().parse::<i64>().unwrap() >= events.parse::<i64>().unwrap(), "every event");
    let copied = pg.query(&format!("SELECT COUNT(*) FROM events WHERE id <= {last_event}"));
    assert_eq!(copied.trim(), events, "every event, by id");
}

#[test]
fn while_postgresql_is_down_nothing_is_acknowledged_and_the_leader_carries_on_after() {
    let mut pg = Postgres::start();
    let c = cluster!(&config(&pg));
    let agent = c.agent(&Cluster::seed_profile("host-a"));
    let body = |name: &str| request(name, &["RTX 5090"], 1, &sh("echo $$ > pid; exec sleep 600"));
    let before = s(&c.api.create(&body("before")), "id").to_owned();
    c.wait_state(&before, "running");
    let pid = agent.workload_pid(&before);

    pg.stop();
    let refused = wait_until(SOON, "a create to be refused while PostgreSQL is down", || {
        match c.api.try_post("/v1/instances", &body("during")) {
            Ok((503, answer)) => Ok(answer),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(refused["error"]["code"], "store_unavailable", "{refused}");
    let (status, _) = c.api.get("/v1/accounts/a-operator/ledger");
    assert_eq!(status, 503, "a read the database must answer is refused the same way");

    pg.restart();
    let after = wait_until(SOON, "creates to be acknowledged again", || {
        match c.api.try_post("/v1/instances", &body("after")) {
            Ok((202, answer)) => Ok(s(&answer, "id").to_owned()),
            other => Err(format!("{other:?}")),
        }
    });
    c.wait_state(&after, "running");
    assert_eq!(health(&c.api)["role"], "leader", "it kept the lead");
    let (_, kept) = c.api.get(&format!("/v1/instances/{before}"));
    assert_eq!(kept["state"], "running", "{kept}");
    assert_eq!(agent.workload_pid(&before), pid);
    let stored =
        pg.query(&format!("SELECT COUNT(*) FROM instances WHERE id IN ('{before}', '{after}')"));
    assert_eq!(stored.trim(), "2", "both acknowledged creates are stored");
}

#[test]
fn a_snapshot_stored_under_the_old_leader_is_listed_and_restored_by_the_new_one() {
    let pg = Postgres::start();
    let shared = tempfile::tempdir().unwrap();
    let snapshots = format!("[snapshots]\ndir = \"{}\"\n", shared.path().display());
    let mut c = cluster!(&format!("{}\n{snapshots}", config(&pg)));
    let b = standby_with(&c, &pg, "b", &snapshots);
    c.agents_use(&format!("{},{}", c.coordinator.quic, b.quic));
    let _agent = c.agent(&Cluster::seed_profile("host-a"));
    let mut saver = request("saver", &["RTX 5090"], 1, &sh("echo kept > note; exec sleep 600"));
    saver["snapshot"] = serde_json::json!({ "enabled": true });
    let saver = s(&c.api.create(&saver), "id").to_owned();
    c.wait_state(&saver, "running");
    let (status, body) = c.api.delete(&format!("/v1/instances/{saver}"));
    assert_eq!(status, 200, "DELETE {saver}: {body}");
    let stored = wait_until(SOON, "the saver's snapshot", || {
        let (_, list) = c.api.get("/v1/snapshots");
        let found = list.as_array().and_then(|l| l.first()).cloned();
        found.ok_or_else(|| list.to_string())
    });
    let id = s(&stored, "id").to_owned();
    assert!(shared.path().join(format!("{id}.tar.zst")).is_file(), "stored in [snapshots] dir");

    c.coordinator.terminate(SOON);
    wait_role(&b.api(), "leader");
    c.api = b.api();
    c.wait_host("host-a", "connected");
    let (status, listed) = c.api.get("/v1/snapshots");
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().unwrap().iter().find(|l| l["id"] == id.as_str()).cloned();
    assert_eq!(listed.map(|l| l["sha256"].clone()), Some(stored["sha256"].clone()), "listed");
    let mut reader = request("reader", &["RTX 5090"], 1, &sh("cat note; exec sleep 600"));
    reader["snapshot"] = serde_json::json!({ "restore_from": id });
    let reader = s(&c.api.create(&reader), "id").to_owned();
    c.wait_state(&reader, "running");
    c.wait_logs(&reader, "kept");
}
