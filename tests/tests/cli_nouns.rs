//! The CLI's nouns against a real cluster (issue 16): deployments, hosts and accounts go by
//! name, lists hide what ended, `instances update` changes a name and the environment,
//! `pools history` takes the NVML name, `-o wide` adds columns, tables fit `COLUMNS`, a
//! payment prints one line and events line up in columns.

use gpuspot_e2e::deploy::{cli, cli_text};
use gpuspot_e2e::wait::{holds, wait_until};
use gpuspot_e2e::{SOON, cluster, s};
use serde_json::Value;

#[test]
fn deployments_and_hosts_go_by_name_and_lists_hide_what_ended() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("box", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    c.wait_host("box", "connected");
    let Some(host) = cli(&c.api, &["hosts", "show", "box"]) else { return };
    assert_eq!(s(&host, "hostname"), "box", "{host}");
    let create = ["deployments", "create", "--name", "svc", "--replicas", "1"];
    let spec = ["--spec", "regular:RTX 4090:1", "--", "sleep", "600"];
    let created = cli(&c.api, &[&create[..], &spec[..]].concat()).expect("built");
    let shown = cli(&c.api, &["deployments", "show", "svc"]).expect("built");
    assert_eq!(s(&shown, "id"), s(&created, "id"), "the name finds it");
    cli(&c.api, &["deployments", "scale", "svc", "2"]).expect("built");
    let scaled = c.api.get_ok(&format!("/v1/deployments/{}", s(&created, "id")));
    assert_eq!(scaled["replicas"], 2, "{scaled}");
    cli(&c.api, &["deployments", "endpoints", "svc"]).expect("built");
    cli(&c.api, &["deployments", "delete", "svc"]).expect("built");
    let live = cli(&c.api, &["deployments", "list"]).expect("built");
    assert_eq!(live.as_array().map(Vec::len), Some(0), "deleted ones are hidden: {live}");
    let all = cli(&c.api, &["deployments", "list", "--all"]).expect("built");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    let cordoned = cli(&c.api, &["hosts", "cordon", "box"]).expect("built");
    assert_eq!(s(&cordoned, "state"), "cordoned", "{cordoned}");
}

#[test]
fn update_wide_tables_history_payments_and_events_read_well() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("box", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let create = ["instances", "create", "--name", "web", "--gpu", "RTX 4090", "--wait"];
    let Some(created) = cli(&c.api, &[&create[..], &["--", "sleep", "600"]].concat()) else {
        return;
    };
    let update = ["instances", "update", "web", "--rename", "api", "--env", "MODE=fast"];
    cli(&c.api, &update).expect("built");
    let changed = c.api.instance(s(&created, "id"));
    assert_eq!((s(&changed, "name"), &changed["env"]["MODE"]), ("api", &"fast".into()));

    let wide = cli_text(&c.api, &["instances", "list", "-o", "wide"], &[]).expect("built");
    let header = wide.lines().next().unwrap_or_default();
    assert!(header.contains("HOST ID") && header.contains("ACCOUNT"), "{wide}");
    assert!(wide.contains("box"), "the HOST column names the host: {wide}");
    let impossible = ["instances", "create", "--name", "big", "--gpu", "RTX 4090", "--count", "9"];
    cli(&c.api, &[&impossible[..], &["--", "true"]].concat()).expect("built");
    let narrow = cli_text(&c.api, &["instances", "list"], &[("COLUMNS", "120")]).expect("built");
    assert!(narrow.lines().all(|l| l.chars().count() <= 120), "fits 120 columns:\n{narrow}");
    assert!(narrow.contains("9 x RTX 4090"), "a queued instance shows its request: {narrow}");
    assert!(narrow.lines().count() > 3, "the long reason wrapped: {narrow}");

    let history = ["pools", "history", "NVIDIA GeForce RTX 4090", "--hours", "1"];
    let points = cli(&c.api, &history).expect("built");
    assert!(points.as_array().is_some_and(|p| !p.is_empty()), "{points}");
    let account = c.api.post("/v1/accounts", &serde_json::json!({ "name": "acme" })).1;
    let paid = cli_text(&c.api, &["accounts", "pay", "acme", "5"], &[]).expect("built");
    let expected = format!("paid 5.00 to acme ({}): balance 5.00", s(&account, "id"));
    assert_eq!(paid.trim(), expected);
    let accounts = cli(&c.api, &["accounts", "list"]).expect("built");
    let names: Vec<&str> =
        accounts.as_array().into_iter().flatten().map(|a| s(a, "name")).collect();
    assert!(names.contains(&"acme"), "{accounts}");
    assert_eq!(cli(&c.api, &["snapshots"]).expect("built"), Value::Array(vec![]));
    events_line_up(&c.api);
}

/// Every line of `gpuspot events` has its kind and subject in the same columns, and no event
/// shows its `data` as raw JSON.
fn events_line_up(api: &gpuspot_e2e::api::Api) {
    wait_until(SOON, "events in columns", || {
        let text = cli_text(api, &["events"], &[]).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let aligned =
            lines.iter().all(|l| l.get(24..26) == Some("  ") && l.get(50..52) == Some("  "));
        let kinds = ["payment", "instance_running", "price_changed"];
        let seen =
            kinds.iter().all(|k| lines.iter().any(|l| l.get(26..50).map(str::trim) == Some(*k)));
        holds(aligned && seen && !text.contains("data={"), || text.clone())
    });
}
