//! `scripts/bench_gateway.sh`'s driver: a real coordinator with its gateway and two
//! simulated hosts on loopback (the release binaries beside this one), replicas of
//! `e2e-echo`; measures the gateway's overhead against going to the replica directly
//! (latency at a fixed rate, most requests per second), then counts failed requests under
//! steady load through consecutive reclaims of a replica with notice. Prints one
//! `metric | value` line each.

use gpuspot_e2e::deploy::{Deployments, host_id, in_state, regular_spec, spot_spec};
use gpuspot_e2e::load::{LoadReport, SteadyLoad, fixed_rate, max_rate};
use gpuspot_e2e::{Binaries, Cluster, TEST_CONFIG, holds, request, s, wait_until};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        let at = args.iter().position(|a| a == name);
        at.and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let (reclaims, seconds) = (arg("--reclaims", 10), arg("--seconds", 10));
    let dir = std::env::current_exe()?.parent().expect("a dir").to_owned();
    let bins = Binaries { coordinator: dir.join("e2e-coordinator"), agent: dir.join("e2e-agent") };
    let config = format!("{TEST_CONFIG}\n[gateway]\nlisten = \"127.0.0.1:0\"\n");
    let c = Cluster::start_with_config(bins, &config);
    let gateway = c.gateway().expect("the gateway's address");
    let _x = c.agent(&c.write_profile("spot-x", "NVIDIA GeForce RTX 5090", 3, 48, 192));
    let _y = c.agent(&c.write_profile("regular-y", "NVIDIA GeForce RTX 4090", 4, 64, 256));
    let deps = Deployments::new(&c.api);
    let echo = dir.join("e2e-echo").display().to_string();
    let created = deps.create(&json!({
        "name": "bench", "mode": "replicaset", "replicas": 1,
        "specs": [spot_spec(&["RTX 5090"], 1, "0.89"), regular_spec(&["RTX 4090"], 1)],
        "template": { "command": [echo], "readiness": { "http_path": "/", "interval": "200ms" } },
    }));
    let id = s(&created, "id").to_owned();
    let address = ready(&deps, &id, 1, None)[0].clone();
    let via_gateway = format!("http://{gateway}/d/bench/");
    let direct = format!("http://{address}/");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let time = Duration::from_secs(seconds);
    for (name, url) in [("direct", &direct), ("gateway", &via_gateway)] {
        let stop = Arc::new(AtomicBool::new(false));
        let steady = runtime.block_on(fixed_rate(url.clone(), 200, stop, Some(time)));
        row(&format!("{name}: latency at 200 req/s, p50 / p99 (ms)"), &latency(&steady));
        let most = runtime.block_on(max_rate(url.clone(), 32, time));
        row(
            &format!("{name}: most req/s, 32 clients (failed)"),
            &format!("{:.0} ({})", most.rps(), most.failures.len()),
        );
    }
    let failed = reclaim_rounds(&c, &deps, &id, &via_gateway, reclaims);
    row(&format!("failed requests at 100 req/s through {reclaims} reclaims"), &failed);
    Ok(())
}

fn row(metric: &str, value: &str) {
    println!("{metric} | {value}");
}

fn latency(report: &LoadReport) -> String {
    let ms = |p: f64| report.percentile(p).as_secs_f64() * 1000.0;
    format!("{:.2} / {:.2} (failed {})", ms(0.5), ms(0.99), report.failures.len())
}

/// Waits for `n` ready, non-draining replicas (`on` the host with that id, if given).
fn ready(deps: &Deployments, id: &str, n: usize, on: Option<&str>) -> Vec<String> {
    wait_until(WAIT, &format!("{n} ready replicas"), || {
        let endpoints = deps.endpoints(id);
        let serving: Vec<&Value> = endpoints
            .iter()
            .filter(|e| e["ready"] == true && e["draining"] == false)
            .filter(|e| on.is_none_or(|h| s(e, "host_id") == h))
            .collect();
        holds(serving.len() == n, || format!("{endpoints:?}"))
            .map(|()| serving.iter().map(|e| s(e, "address").to_owned()).collect())
    })
}

/// Three replicas on spot host X; each round a regular request takes a GPU of X (one
/// replica is noticed and replaced on Y), then leaves, and `rebuild` moves the replica back
/// to spot. The load runs throughout; returns its failed requests.
fn reclaim_rounds(c: &Cluster, deps: &Deployments, id: &str, url: &str, rounds: u64) -> String {
    let (status, body) = c.api.patch(&format!("/v1/deployments/{id}"), &json!({ "replicas": 3 }));
    assert_eq!(status, 200, "{body}");
    let x = host_id(c, "spot-x");
    ready(deps, id, 3, Some(&x));
    let load = SteadyLoad::start(url, 100);
    for round in 1..=rounds {
        past_hold(deps, id);
        let regular =
            c.api.create(&request(&format!("taker-{round}"), &["RTX 5090"], 1, &["sleep", "600"]));
        let taker = s(&regular, "id").to_owned();
        c.wait_state_within(&taker, "running", WAIT);
        ready(deps, id, 3, None);
        let (status, body) = c.api.delete(&format!("/v1/instances/{taker}"));
        assert_eq!(status, 200, "{body}");
        c.wait_state_within(&taker, "terminated", WAIT);
        let (status, body) = c.api.post(&format!("/v1/deployments/{id}/rebuild"), &json!({}));
        assert_eq!(status, 200, "{body}");
        ready(deps, id, 3, Some(&x));
        eprintln!("bench-gateway: reclaim {round} of {rounds} done");
    }
    let report = load.stop();
    let d = deps.get(id);
    let reclaimed = gpuspot_e2e::deploy::instances(&d)
        .iter()
        .filter(|i| i["termination_reason"].as_str().is_some_and(|r| r.starts_with("reclaimed")))
        .count();
    row("replicas reclaimed with notice during the load", &reclaimed.to_string());
    let first: Vec<&String> = report.failures.iter().take(3).collect();
    format!("{} of {} {first:?}", report.failures.len(), report.sent)
}

/// Until every running replica is past its hold (a reclaim for capacity may take it).
fn past_hold(deps: &Deployments, id: &str) {
    wait_until(WAIT, "the replicas' holds to pass", || {
        let d = deps.get(id);
        let now = chrono::Utc::now();
        let held = in_state(&d, "running").into_iter().any(|i| {
            i["hold_until"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .is_some_and(|t| t > now)
        });
        holds(!held, String::new)
    });
}
