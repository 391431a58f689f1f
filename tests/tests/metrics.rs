//! `/metrics` (docs/contracts.md#operating-hosts): the coordinator's counters, histograms and
//! gauges and the agent's own (`--metrics ADDR`) pass `promtool check metrics` (Debian's prometheus
//! package), and count what happened: placements, a notice by reason and its latency up to the
//! agent's word that the guest's socket shows it.

use gpuspot_e2e::process::Proc;
use gpuspot_e2e::{SOON, cluster, holds, request, s, sh, wait_until};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

/// `promtool check metrics` on `body`: Ok, or what it says is wrong.
fn promtool(body: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/install-test-deps.sh)");
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() { Ok(()) } else { Err(said) }
}

fn scrape(url: &str) -> String {
    let client = reqwest::blocking::Client::builder().no_proxy().build().unwrap();
    client.get(url).send().and_then(|r| r.text()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The value of the sample line that starts with `series` (name and labels).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn both_metrics_endpoints_pass_promtool_and_count_placements_and_notices() {
    let c = cluster!();
    let profile = c.write_profile("metered", "NVIDIA GeForce RTX 4090", 2, 16, 64);
    let state_dir = c.dir().join("metered-agent");
    let mut command = c.agent_command(
        &gpuspot_e2e::binaries!().agent,
        &profile,
        &state_dir,
        Some(&c.join_token()),
    );
    command.args(["--metrics", "127.0.0.1:0"]);
    let log = c.dir().join("metered-agent.log");
    let _agent = Proc::spawn("agent metered", command, &log);
    let agent_url = wait_until(SOON, "the agent to print its metrics address", || {
        let text = gpuspot_e2e::process::log_tail(&log, 1 << 20);
        let line = text.lines().find(|l| l.contains("metrics on http://")).map(str::to_owned);
        line.and_then(|l| l.split_whitespace().last().map(str::to_owned)).ok_or(text)
    });
    c.wait_host("metered", "connected");
    let created = c.api.create(&request("metered", &["RTX 4090"], 1, &sh("exec sleep 120")));
    let id = s(&created, "id").to_owned();
    c.wait_state(&id, "running");
    let host = c.host("metered").expect("host");
    let (status, _) = c.api.post(&format!("/v1/hosts/{}/drain", s(&host, "id")), &json!({}));
    assert_eq!(status, 200);

    let url = format!("{}/metrics", c.coordinator.url());
    let body = wait_until(SOON, "the notice to be counted and its latency observed", || {
        let body = scrape(&url);
        let noticed = sample(&body, "gpuspot_notices_total{reason=\"host_maintenance\"}");
        let observed = sample(&body, "gpuspot_notice_latency_seconds_count");
        holds(noticed == Some(1.0) && observed >= Some(1.0), || body.clone()).map(|()| body.clone())
    });
    assert!(sample(&body, "gpuspot_placements_total") >= Some(1.0), "{body}");
    assert!(body.contains("gpuspot_api_requests_total{method=\"POST\",status=\"200\"}"), "{body}");
    assert!(body.contains("gpuspot_api_request_duration_seconds_bucket"), "{body}");
    assert_eq!(sample(&body, "gpuspot_hosts{state=\"draining\"}"), Some(1.0), "{body}");
    assert!(body.contains("gpuspot_pool_market_price{pool=\"RTX 4090\"}"), "{body}");
    assert!(body.contains("gpuspot_host_heartbeat_age_seconds{host="), "{body}");
    promtool(&body).unwrap_or_else(|e| panic!("coordinator /metrics: {e}\n{body}"));

    // Heartbeats go out on the link's own clock (the welcome restarts it): wait for one.
    let agent = wait_until(SOON, "the agent to count a heartbeat", || {
        let agent = scrape(&agent_url);
        let beats = sample(&agent, "gpuspot_agent_heartbeats_total");
        holds(beats >= Some(1.0), || agent.clone()).map(|()| agent.clone())
    });
    assert_eq!(sample(&agent, "gpuspot_agent_guests"), Some(1.0), "{agent}");
    assert!(agent.contains("gpuspot_agent_gpu_healthy{uuid="), "{agent}");
    assert!(agent.contains("gpuspot_agent_gpu_memory_total_bytes{"), "{agent}");
    promtool(&agent).unwrap_or_else(|e| panic!("agent /metrics: {e}\n{agent}"));
}
