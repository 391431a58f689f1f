//! Every API field has its flag (issue 25.7): `--on-unavailable`, `--restore-from`,
//! `accounts quota`, `accounts set-webhook`, `deployments update` (specs, replicas,
//! autoscaling on a running replica set), and `gpuspot man --dir` writing one page per
//! command; the columns that misled (25.8): live instances, a job's completions, a replica
//! set's show, `gpuspot pools` in errors, the operator's creation time and the pool units
//! of a cordoned host.

mod run;
mod webhook;

use gpuspot_e2e::api::Api;
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::process::{Proc, log_tail};
use gpuspot_e2e::{SOON, cluster, holds, s, wait_until};
use run::{fails, gpuspot, gpuspot_bin, json_of, ok, text};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use webhook::Receiver;

fn box_profile(c: &gpuspot_e2e::Cluster, name: &str, units: u32) -> PathBuf {
    c.write_profile(name, "NVIDIA GeForce RTX 4090", units, 16, 64)
}

#[test]
fn on_unavailable_fail_fails_at_once_and_restore_from_brings_a_snapshot_back() {
    let c = cluster!();
    let _a = c.agent(&box_profile(&c, "box", 1));
    c.wait_host("box", "connected");
    let create = ["instances", "create", "--gpu", "RTX 4090"];
    let saver = [&create[..], &["--name", "saver", "--snapshot", "--wait"]].concat();
    let saver =
        json_of(&c.api, &[&saver[..], &["--", "sh", "-c", "echo kept > note; sleep 600"]].concat());
    c.wait_state(s(&saver, "id"), "running");

    let fail =
        [&create[..], &["--name", "eager", "--on-unavailable", "fail", "--", "true"]].concat();
    let eager = json_of(&c.api, &fail);
    assert_eq!(s(&eager, "on_unavailable"), "fail", "{eager}");
    let seen = c.api.instance(s(&eager, "id"));
    assert_eq!(s(&seen, "state"), "failed", "failed at once: {seen}");
    assert!(s(&seen, "reason").starts_with("out_of_stock"), "{seen}");
    let later = [&create[..], &["--on-unavailable", "later", "--", "true"]].concat();
    let refused = gpuspot(&c.api, &later);
    assert_eq!(refused.status.code(), Some(2), "a usage error: {}", text(&refused));
    assert!(text(&refused).contains("queue") && text(&refused).contains("fail"));

    ok(&c.api, &["instances", "delete", "saver", "--wait"]);
    let snapshot = wait_until(SOON, "the saver's snapshot", || {
        let (_, list) = c.api.get("/v1/snapshots");
        let found = list.as_array().and_then(|l| l.first()).cloned();
        found.ok_or_else(|| list.to_string())
    });
    let restore = ["--name", "reader", "--restore-from", s(&snapshot, "id"), "--wait"];
    let reader = [&create[..], &restore[..], &["--", "sh", "-c", "cat note; sleep 600"]].concat();
    let reader = json_of(&c.api, &reader);
    assert_eq!(reader["snapshot"]["restore_from"], snapshot["id"], "{reader}");
    c.wait_logs(s(&reader, "id"), "kept");
}

#[test]
fn the_quota_command_sets_limits_that_the_api_enforces_and_webhooks_change_by_patch() {
    let c = cluster!();
    let _a = c.agent(&box_profile(&c, "box", 2));
    let (first, receiver) = (Receiver::start(), Receiver::start());
    let create_acme = ["accounts", "create", "acme", "--webhook-url", &first.url()];
    let acme = json_of(&c.api, &create_acme);
    assert_eq!(s(&acme, "webhook_url"), first.url(), "{acme}");
    let quota = ["accounts", "quota", "acme", "--max-instances", "1", "--max-gpus", "none"];
    let limited = json_of(&c.api, &quota);
    assert_eq!(limited["quota"]["max_instances"], 1, "{limited}");
    assert!(limited["quota"]["max_gpus"].is_null(), "none is unlimited: {limited}");
    let shown = ok(&c.api, &["accounts", "show", "acme"]);
    assert!(shown.contains("max_instances=1"), "show names the quota: {shown}");
    ok(&c.api, &["accounts", "pay", "acme", "10"]);
    let paid = first.wait_for("\"payment\"", SOON, &c);
    assert!(paid.contains(s(&acme, "id")), "to the webhook_url it was created with: {paid}");
    let tenant = Api::new(&c.api.base, Some(s(&acme, "token")));
    let create = ["instances", "create", "--gpu", "RTX 4090", "--", "sleep", "600"];
    ok(&tenant, &create);
    let refused = fails(&tenant, &create);
    assert!(refused.contains("quota_exceeded") && refused.contains("HTTP 403"), "{refused}");
    let bad = gpuspot(&c.api, &["accounts", "quota", "acme", "--max-gpus", "lots"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error: {}", text(&bad));
    ok(&c.api, &["accounts", "quota", "acme", "--default"]);
    ok(&tenant, &create);

    let url = receiver.url();
    let hooked = json_of(&c.api, &["accounts", "set-webhook", "acme", "--url", &url]);
    assert_eq!(s(&hooked, "webhook_url"), url, "{hooked}");
    ok(&c.api, &["accounts", "pay", "acme", "1"]);
    let delivered = receiver.wait_for("\"payment\"", SOON, &c);
    assert!(delivered.contains(s(&acme, "id")), "to the new webhook_url: {delivered}");
    let path = format!("/v1/accounts/{}", s(&acme, "id"));
    let (status, body) = c.api.patch(&path, &json!({ "webhook_url": "ftp://x" }));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("webhook_url"), "the field is named: {body}");
    let (status, body) = tenant.patch(&path, &json!({ "webhook_url": url }));
    assert_eq!(status, 403, "the admin's to set, as at creation: {body}");
    let cleared = json_of(&c.api, &["accounts", "set-webhook", "acme", "--url", ""]);
    assert!(cleared["webhook_url"].is_null(), "{cleared}");
}

#[test]
fn deployments_update_changes_specs_replicas_and_turns_autoscaling_on() {
    let c = cluster!(&gpuspot_e2e::config_with_timers(&[("autoscale_interval", "300ms")]));
    let _a = c.agent(&box_profile(&c, "box", 8));
    let mut events = EventStream::open(&c.api, None);
    let create = ["deployments", "create", "--name", "svc", "--replicas", "1"];
    let spec = ["--spec", "regular:RTX 4090:1", "--cpu", "2-8", "--", "sleep", "600"];
    let created = json_of(&c.api, &[&create[..], &spec[..]].concat());
    let id = s(&created, "id").to_owned();

    let shown = ok(&c.api, &["deployments", "show", "svc"]);
    assert!(!shown.contains("completions"), "a replica set has no completions: {shown}");
    assert!(shown.contains("2-8") && !shown.contains("max="), "CPU as a range: {shown}");

    let updated = json_of(&c.api, &["deployments", "update", "svc", "--replicas", "2"]);
    assert_eq!(updated["replicas"], 2, "{updated}");
    let respec = ["deployments", "update", "svc", "--spec", "regular:RTX 4090:2"];
    let respecced = json_of(&c.api, &respec);
    assert_eq!(respecced["specs"][0]["gpu"]["count"], 2, "{respecced}");
    wait_until(SOON, "both replicas on 2 GPUs", || {
        let d = c.api.get_ok(&format!("/v1/deployments/{id}"));
        let on_two =
            live(&d).iter().filter(|i| i["gpu_uuids"].as_array().map(Vec::len) == Some(2)).count();
        holds(on_two == 2 && live(&d).len() == 2, || d.to_string())
    });
    let listed = ok(&c.api, &["deployments", "list"]);
    let row = listed.lines().find(|l| l.contains("svc")).unwrap_or_default().to_owned();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(5..7), Some(&["2", "2"][..]), "WANT 2, INSTANCES 2 live: {listed}");

    let scale = ["deployments", "update", "svc", "--autoscale", "3:4", "--target-rps", "100"];
    let scaled = json_of(&c.api, &scale);
    assert_eq!(scaled["autoscaling"]["min_replicas"], 3, "{scaled}");
    let event = events.wait_for(SOON, "svc scaled to 3", |e| {
        e.kind == "deployment_scaled"
            && e.data()["deployment_id"] == id.as_str()
            && e.data()["to"] == 3
    });
    assert!(s(event.data(), "reason").contains("minimum"), "{}", event.body);
    let path = format!("/v1/deployments/{id}");
    let (status, body) =
        c.api.patch(&path, &json!({ "autoscaling": { "min_replicas": 5, "max_replicas": 2 } }));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("autoscaling"), "{body}");
    let (status, body) =
        c.api.patch(&path, &json!({ "schedule": [{ "cron": "0 9 * * 1-5", "min_replicas": 9 }] }));
    assert_eq!(status, 400, "above autoscaling.max_replicas: {body}");
    let (status, body) =
        c.api.patch(&path, &json!({ "schedule": [{ "cron": "0 9 * * 1-5", "min_replicas": 4 }] }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["schedule"][0]["min_replicas"], 4, "{body}");
    let off =
        json_of(&c.api, &["deployments", "update", "svc", "--no-autoscale", "--clear-schedule"]);
    assert!(off["autoscaling"].is_null() && off["schedule"] == json!([]), "{off}");
}

#[test]
fn a_jobs_list_row_shows_its_completions_and_errors_name_the_cli_command() {
    let c = cluster!();
    let _a = c.agent(&box_profile(&c, "box", 2));
    let create =
        ["deployments", "create", "--name", "batch", "--mode", "job", "--completions", "3"];
    let spec = ["--parallelism", "1", "--spec", "regular:RTX 4090:1", "--", "sleep", "600"];
    ok(&c.api, &[&create[..], &spec[..]].concat());
    let listed = ok(&c.api, &["deployments", "list"]);
    let row = listed.lines().find(|l| l.contains("batch")).unwrap_or_default().to_owned();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(5), Some(&"3"), "WANT is the completions: {listed}");
    let shown = ok(&c.api, &["deployments", "show", "batch"]);
    assert!(!shown.contains("replicas:"), "a job has no replicas: {shown}");

    let unknown = fails(&c.api, &["instances", "create", "--gpu", "Z80", "--", "true"]);
    assert!(unknown.contains("gpuspot pools") && !unknown.contains("GET /v1"), "{unknown}");
}

#[test]
fn man_writes_one_page_per_command_and_see_also_names_only_those() {
    let dir = tempfile::tempdir().expect("temp dir");
    let api = Api::new("http://127.0.0.1:9", None);
    ok(&api, &["man", "--dir", dir.path().to_str().expect("utf-8")]);
    for page in [
        "gpuspot.1",
        "gpuspot-instances.1",
        "gpuspot-instances-create.1",
        "gpuspot-accounts-quota.1",
        "gpuspot-deployments-update.1",
        "gpuspot-dev.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is roff: {text}");
    }
    for page in ["gpuspot.1", "gpuspot-instances.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).expect("page");
        let see_also =
            text.split("SEE ALSO").nth(1).unwrap_or_else(|| panic!("{page}: no SEE ALSO"));
        let plain = text.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "");
        let named: Vec<&str> =
            plain.split([' ', ',', '\n']).filter_map(|w| w.strip_suffix("(1)")).collect();
        let expected = match page {
            "gpuspot.1" => ["gpuspot-instances", "gpuspot-deployments"],
            _ => ["gpuspot", "gpuspot-instances-create"],
        };
        assert!(expected.iter().all(|e| named.contains(e)), "{page}: {see_also}");
        for name in &named {
            assert!(
                dir.path().join(format!("{name}.1")).is_file(),
                "{page} names {name}(1), not written"
            );
        }
    }
    let printed = ok(&api, &["man"]);
    assert!(
        printed.contains(".TH gpuspot 1"),
        "`gpuspot man | man -l -` reads the top page: {printed}"
    );
    let help = ok(&api, &["accounts", "create", "--help"]);
    assert!(!help.contains("DESIGN"), "{help}");
}

#[test]
fn the_operator_has_a_creation_time_that_lasts_and_a_cordoned_host_has_no_used_units() {
    let mut c = cluster!();
    let _a = c.agent(&box_profile(&c, "box", 2));
    c.wait_host("box", "connected");
    let operator = c.api.get_ok("/v1/accounts/a-operator");
    let created = s(&operator, "created_at").to_owned();
    assert!(!created.starts_with("1970"), "{operator}");
    let host = c.host("box").expect("box");
    let (status, body) = c.api.post(&format!("/v1/hosts/{}/cordon", s(&host, "id")), &json!({}));
    assert_eq!(status, 200, "{body}");
    let metrics = wait_until(SOON, "the cordoned host's units counted", || {
        let (_, body) = c.api.get("/metrics");
        let body = body.as_str().unwrap_or_default().to_owned();
        let used = sample(&body, "gpuspot_pool_units{pool=\"RTX 4090\",state=\"used\"}");
        holds(used.is_some(), || body.clone()).map(|()| body)
    });
    let used = sample(&metrics, "gpuspot_pool_units{pool=\"RTX 4090\",state=\"used\"}");
    assert_eq!(used, Some(0.0), "nothing runs on the cordoned host: {metrics}");
    let unavailable =
        sample(&metrics, "gpuspot_pool_units{pool=\"RTX 4090\",state=\"unavailable\"}");
    assert_eq!(unavailable, Some(2.0), "its free units take no placements: {metrics}");

    c.coordinator.restart();
    let again = wait_until(SOON, "the coordinator back", || {
        let (status, body) = c.api.try_get("/v1/accounts/a-operator")?;
        holds(status == 200, || body.to_string()).map(|()| body)
    });
    assert_eq!(s(&again, "created_at"), created, "kept across a restart: {again}");
}

#[test]
fn dev_writes_json_log_lines_with_log_format_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("dev.log");
    let mut command = Command::new(gpuspot_bin());
    command
        .args(["dev", "--log-format", "json", "--http", "127.0.0.1:0", "--quic", "127.0.0.1:0"])
        .args(["--gateway", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("GPUSPOT_LOG_FORMAT")
        .env_remove("RUST_LOG");
    let mut dev = Proc::spawn("gpuspot dev", command, &log);
    let lines = wait_until(SOON, "gpuspot dev to log that the coordinator runs", || {
        let text = log_tail(&log, 256 * 1024);
        let json: Vec<String> =
            text.lines().filter(|l| l.starts_with('{')).map(str::to_owned).collect();
        holds(json.iter().any(|l| l.contains("coordinator running")), || text.clone())
            .map(|()| json)
    });
    dev.kill();
    for line in &lines {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(value["level"].is_string() && value["fields"].is_object(), "{line}");
    }
    let refused =
        Command::new(gpuspot_bin()).args(["dev", "--log-format", "xml"]).output().expect("run");
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
}

/// The value of the sample line that starts with `series` (name and labels).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

fn live(d: &Value) -> Vec<Value> {
    let all = d["instances"].as_array().cloned().unwrap_or_default();
    all.into_iter().filter(|i| !matches!(s(i, "state"), "terminated" | "failed")).collect()
}
