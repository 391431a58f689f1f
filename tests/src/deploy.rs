//! Helpers for the deployment and snapshot scenarios (docs/contracts.md#deployments, #snapshots):
//! request bodies for specs and spot instances, a client for `/v1/deployments` (PATCH included,
//! which [`crate::Api`] lacks), waits on a deployment's state, and restarting a fresh cluster's
//! coordinator on a custom config (other pools, other notice periods).

use crate::api::{Api, s};
use crate::cluster::Cluster;
use crate::wait::wait_until;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// [`crate::TEST_CONFIG`]'s timers and pools, with `notice_period` overridden for the
/// RTX 5090 pool only (so a test can watch the drain without slowing every other step).
pub fn config_with_5090_notice(notice: &str) -> String {
    let pool = "model = \"RTX 5090\"\nlist_price = \"0.90\"\n";
    assert!(crate::TEST_CONFIG.contains(pool), "TEST_CONFIG has no RTX 5090 pool at 0.90");
    crate::TEST_CONFIG.replacen(pool, &format!("{pool}notice_period = {notice:?}\n"), 1)
}

/// [`crate::TEST_CONFIG`] with a `[deployments]` crash-loop backoff of `base` doubling up
/// to `max` (humantime, e.g. "1s").
pub fn config_with_crash_backoff(base: &str, max: &str) -> String {
    format!(
        "{}\n[deployments]\ncrash_backoff = {base:?}\ncrash_backoff_max = {max:?}\n",
        crate::TEST_CONFIG
    )
}

/// The backoff before the run after the `crash`-th crash in a row (1 is the first): `base`
/// doubling up to `max` (docs/contracts.md#limits).
pub fn crash_delay(base: Duration, max: Duration, crash: u32) -> Duration {
    base.saturating_mul(1 << crash.saturating_sub(1).min(31)).min(max)
}

/// How many runs of a command that crashes at once can start within `window` of the
/// first: the first, then one after each backoff.
pub fn crash_loop_runs(base: Duration, max: Duration, window: Duration) -> usize {
    let (mut runs, mut at) = (1, Duration::ZERO);
    loop {
        at += crash_delay(base, max, runs as u32);
        if at > window {
            return runs;
        }
        runs += 1;
    }
}

/// Restarts the coordinator of a cluster that has no agents yet on `config` (same data dir
/// and ports).
pub fn use_config(c: &mut Cluster, config: &str) {
    std::fs::write(&c.coordinator.config, config).expect("write coordinator config");
    c.coordinator.restart();
}

/// A spot spec: `count` GPUs of any of `models`, bidding `max_price` per GPU-hour.
pub fn spot_spec(models: &[&str], count: u32, max_price: &str) -> Value {
    json!({
        "gpu": { "models": models, "count": count },
        "billing": { "mode": "spot", "max_price": max_price },
    })
}

/// A regular spec: `count` GPUs of any of `models` at list price.
pub fn regular_spec(models: &[&str], count: u32) -> Value {
    json!({ "gpu": { "models": models, "count": count }, "billing": { "mode": "regular" } })
}

/// A plain spot instance request.
pub fn spot_request(name: &str, models: &[&str], count: u32, bid: &str, command: &[&str]) -> Value {
    json!({
        "name": name,
        "gpu": { "models": models, "count": count },
        "billing": { "mode": "spot", "max_price": bid },
        "command": command,
    })
}

/// Seed 003's training loop, CPU stand-in (`bash -c`), 120 steps of 0.1 s: resumes from `$GPUSPOT_DATA_DIR/checkpoint`,
/// records every step in `steps`, checkpoints every 5 steps, and on SIGTERM checkpoints
/// and exits (the trap only sets a flag, so a step is never half counted).
pub const TRAIN_LOOP: &str = r#"D="$GPUSPOT_DATA_DIR"; TOTAL=120; n=0; stop=0
if [ -f "$D/checkpoint" ]; then n=$(cat "$D/checkpoint"); echo "resumed at step $n"; else echo "fresh start"; fi
save() { echo "$n" > "$D/checkpoint.tmp" && mv "$D/checkpoint.tmp" "$D/checkpoint"; }
trap 'stop=1' TERM
while [ "$n" -lt "$TOTAL" ]; do
  if [ "$stop" = 1 ]; then save; echo "SIGTERM: checkpoint at step $n"; exit 143; fi
  sleep 0.1
  n=$((n + 1)); echo "$n" >> "$D/steps"
  if [ $((n % 5)) -eq 0 ]; then save; fi
done
save; echo "steps: $(tr '\n' ' ' < "$D/steps")"; echo "checkpoint: $(cat "$D/checkpoint")"
echo "done $n""#;

/// `/v1/deployments` on top of an [`Api`].
pub struct Deployments {
    pub api: Api,
    client: Client,
}

impl Deployments {
    pub fn new(api: &Api) -> Deployments {
        let client = Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        Deployments { api: api.clone(), client }
    }

    /// POST /v1/deployments; must answer 202. The deployment.
    pub fn create(&self, body: &Value) -> Value {
        let (status, answer) = self.api.post("/v1/deployments", body);
        assert_eq!(status, 202, "POST /v1/deployments {body}: {answer}");
        assert!(answer["id"].is_string(), "no id: {answer}");
        answer
    }

    pub fn get(&self, id: &str) -> Value {
        self.api.get_ok(&format!("/v1/deployments/{id}"))
    }

    /// PATCH /v1/deployments/{id}: the status and the body.
    pub fn patch(&self, id: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}/v1/deployments/{id}", self.api.base);
        let mut request = self.client.patch(&url).json(body);
        if let Some(token) = &self.api.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap_or_else(|e| panic!("PATCH {url}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// POST /v1/deployments/{id}/rebuild; must answer 200. The deployment (with `moved`).
    pub fn rebuild(&self, id: &str) -> Value {
        let (status, answer) = self.api.post(&format!("/v1/deployments/{id}/rebuild"), &json!({}));
        assert_eq!(status, 200, "rebuild {id}: {answer}");
        answer
    }

    pub fn endpoints(&self, id: &str) -> Vec<Value> {
        let body = self.api.get_ok(&format!("/v1/deployments/{id}/endpoints"));
        body.as_array().cloned().unwrap_or_else(|| panic!("endpoints are not a list: {body}"))
    }

    /// Polls the deployment until `check` accepts it; panics after `timeout` with the
    /// last state seen.
    pub fn wait<T>(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Value) -> Result<T, String>,
    ) -> T {
        wait_until(timeout, &format!("deployment {id}: {what}"), || {
            let d = self.get(id);
            check(&d).map_err(|why| format!("{why}\n  deployment: {}", summary(&d)))
        })
    }
}

/// The deployment's instances that have not ended.
/// The replicas of an endpoints answer that take traffic: ready and not draining.
pub fn serving(endpoints: &[Value]) -> BTreeSet<String> {
    endpoints
        .iter()
        .filter(|e| e["ready"] == true && e["draining"] == false)
        .map(|e| s(e, "instance_id").to_owned())
        .collect()
}

pub fn live(d: &Value) -> Vec<Value> {
    instances(d).into_iter().filter(|i| !matches!(s(i, "state"), "terminated" | "failed")).collect()
}

/// All of the deployment's instances.
pub fn instances(d: &Value) -> Vec<Value> {
    d["instances"].as_array().cloned().unwrap_or_default()
}

/// The instances of `d` in `state`.
pub fn in_state(d: &Value, state: &str) -> Vec<Value> {
    instances(d).into_iter().filter(|i| s(i, "state") == state).collect()
}

/// One line per instance, for failure messages: name state spec host reason.
pub fn summary(d: &Value) -> String {
    let mut out = format!(
        "state={} reason={} succeeded={} failed={}",
        d["state"], d["reason"], d["succeeded"], d["failed"]
    );
    for i in instances(d) {
        out.push_str(&format!(
            "\n    {} {} {} spec={} host={} reason={} exit={}",
            s(&i, "name"),
            s(&i, "id"),
            s(&i, "state"),
            i["spec_index"],
            s(&i, "host_id"),
            i["reason"],
            i["exit_code"]
        ));
    }
    out
}

/// The id of the host named `hostname`.
pub fn host_id(c: &Cluster, hostname: &str) -> String {
    let host = c.host(hostname).unwrap_or_else(|| panic!("no host {hostname}"));
    s(&host, "id").to_owned()
}

/// The market price of the pool named `model` (e.g. "RTX 5090"), in micro-units.
pub fn market_price(api: &Api, model: &str) -> i64 {
    let pools = api.get_ok("/v1/pools");
    let pool = pools
        .as_array()
        .and_then(|list| list.iter().find(|p| s(p, "model") == model))
        .unwrap_or_else(|| panic!("no pool {model} in {pools}"))
        .clone();
    micros(&pool["market_price"])
}

/// A decimal money string ("0.50") as micro-units.
pub fn micros(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a money string: {value}"));
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<6}");
    whole.parse::<i64>().expect("whole part") * 1_000_000
        + frac[..6].parse::<i64>().expect("fractional part")
}

pub fn ids(list: &[Value]) -> BTreeSet<String> {
    list.iter().map(|i| s(i, "id").to_owned()).collect()
}

/// The endpoints that take traffic: those not draining.
pub fn endpoint_ids(list: &[Value]) -> BTreeSet<String> {
    list.iter().filter(|e| e["draining"] == false).map(|e| s(e, "instance_id").to_owned()).collect()
}

/// The number after `prefix` in `logs`.
pub fn step_after(logs: &str, prefix: &str) -> u32 {
    let rest = logs.split(prefix).nth(1).unwrap_or_else(|| panic!("no {prefix:?} in {logs:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|e| panic!("{prefix:?} then {rest:?}: {e}"))
}

/// Runs `gpuspot ARGS --api URL --token T --json` (the workspace's CLI, next to the test
/// binary's `deps/` dir) and parses its JSON output; None, with the reason printed, when
/// the binary has not been built. Panics when the command fails.
pub fn cli(api: &Api, args: &[&str]) -> Option<Value> {
    let stdout = cli_output(api, args, &["--json"], &[])?;
    Some(serde_json::from_str(&stdout).unwrap_or(Value::String(stdout)))
}

/// Like [`cli`], but what a person sees (tables, lines), with `env` set (e.g. `COLUMNS`).
pub fn cli_text(api: &Api, args: &[&str], env: &[(&str, &str)]) -> Option<String> {
    cli_output(api, args, &[], env)
}

fn cli_output(api: &Api, args: &[&str], flags: &[&str], env: &[(&str, &str)]) -> Option<String> {
    let output = cli_run(api, args, flags, env)?;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "gpuspot {args:?}: {}\n{stdout}\n{stderr}", output.status);
    Some(stdout.into_owned())
}

/// Runs `gpuspot ARGS` as [`cli_text`] does, but the command must fail: its stderr.
pub fn cli_error(api: &Api, args: &[&str]) -> Option<String> {
    let output = cli_run(api, args, &[], &[])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "gpuspot {args:?} succeeded: {stdout}");
    Some(String::from_utf8_lossy(&output.stderr).into_owned())
}

fn cli_run(
    api: &Api,
    args: &[&str],
    flags: &[&str],
    env: &[(&str, &str)],
) -> Option<std::process::Output> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("gpuspot");
    if !bin.is_file() {
        eprintln!(
            "skipping the CLI check: {} is not built (cargo build -p gpuspot-cli)",
            bin.display()
        );
        return None;
    }
    // Before a `--`, after which everything is the workload's command.
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let output = Command::new(&bin)
        .args(&args[..split])
        .args(["--api", &api.base, "--token", api.token.as_deref().unwrap_or_default()])
        .args(flags)
        .args(&args[split..])
        .env_remove("GPUSPOT_API")
        .env_remove("GPUSPOT_TOKEN")
        .env_remove("COLUMNS")
        .envs(env.iter().copied())
        .output()
        .expect("run gpuspot");
    Some(output)
}
