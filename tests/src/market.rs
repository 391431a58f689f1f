//! Helpers for the spot-market and billing scenarios (docs/contracts.md#market, #billing,
//! #guest-socket): spot requests, PATCH (which [`crate::Api`] lacks), the guest's socket path, a
//! guest script that long-polls its socket and stamps the moment it first sees a termination, and
//! checks that must hold for a whole stretch of wall-clock time (not just eventually).

use crate::api::{Api, s};
use crate::cluster::{Cluster, SOON};
use crate::values::{now_nanos, signed};
use crate::wait::{POLL, wait_until};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// A spot request: `count` GPUs of any of `models`, bidding `bid` per GPU-hour.
pub fn spot(name: &str, models: &[&str], count: u32, bid: &str, command: &[&str]) -> Value {
    json!({
        "name": name,
        "gpu": { "models": models, "count": count },
        "billing": { "mode": "spot", "max_price": bid },
        "command": command,
    })
}

/// `PATCH path` with a JSON body: the status and the body.
pub fn patch(api: &Api, path: &str, body: &Value) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let mut request = client.patch(format!("{}{path}", api.base)).json(body);
    if let Some(token) = &api.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap_or_else(|e| panic!("PATCH {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The start of a guest script: prints its socket (`SOCKET=…`) and writes its pid.
pub const GUEST_PROLOGUE: &str = "echo SOCKET=$GPUSPOT_METADATA_SOCKET; echo $$ > pid; ";

/// A guest (a bash script) that long-polls `/vm/events` and prints
/// `SEEN_AT=<date +%s.%N>` the moment a `spot_termination_time` appears, then sleeps on.
/// All the polls are one curl process on one keep-alive connection (URL globbing), so no
/// change can slip in between two polls; `wait=1` bounds the wait even if one did. Each
/// answer is one flat JSON object, read up to its `}` as soon as curl (`-N`) writes it.
pub const WATCH_AND_STAMP: &str = "echo SOCKET=$GPUSPOT_METADATA_SOCKET; echo $$ > pid; \
    curl -sN --unix-socket \"$GPUSPOT_METADATA_SOCKET\" \
    'http://localhost/vm/events?wait=1&poll=[1-600]' | while IFS= read -r -d '}' answer; do \
    case \"$answer\" in *'\"spot_termination_time\":\"'*) \
    echo \"SEEN_AT=$(date +%s.%N)\"; break;; esac; done; exec sleep 120";

/// `bash -c SCRIPT` as a command.
pub fn bash(script: &str) -> Vec<&str> {
    vec!["bash", "-c", script]
}

/// The metadata socket a guest printed with [`GUEST_PROLOGUE`].
pub fn socket_of(c: &Cluster, id: &str) -> PathBuf {
    let logs = c.wait_logs(id, "SOCKET=/");
    logs.lines()
        .find_map(|line| line.trim().strip_prefix("SOCKET="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no SOCKET= line in {logs:?}"))
}

/// GET `/vm/metadata?key=KEY` on the guest socket: status and body.
pub fn guest_key(socket: &std::path::Path, key: &str) -> (u16, String) {
    crate::metadata::unix_get(socket, &format!("/vm/metadata?key={key}"))
        .unwrap_or_else(|e| panic!("metadata socket {}: {e}", socket.display()))
}

/// Polls `check` until the wall clock reaches `until` (ns since the epoch) and panics at
/// the first `Err`. A check should read the clock after what it observed, and judge only
/// observations made before `until`.
pub fn throughout(until: i128, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    loop {
        let now = now_nanos();
        if now >= until {
            return;
        }
        if let Err(state) = check() {
            panic!("{what} stopped holding {} before the end: {state}", signed(until - now));
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until the wall clock passes `at` (ns since the epoch): for a deadline the
/// product set, never as a guess at how long something takes.
pub fn wait_for_time(at: i128) {
    let left = crate::values::nanos(at - now_nanos());
    wait_until(left + SOON, "the wall clock", || {
        if now_nanos() > at { Ok(()) } else { Err(format!("{} to go", signed(at - now_nanos()))) }
    });
}

/// The market price of the pool `model` in micro-units.
pub fn market_price(api: &Api, model: &str) -> i64 {
    let pools = api.get_ok("/v1/pools");
    let pool = pools
        .as_array()
        .and_then(|p| p.iter().find(|p| s(p, "model") == model))
        .unwrap_or_else(|| panic!("no pool {model} in {pools}"));
    crate::values::money(pool, "market_price")
}

/// Seed 003's `spot_watcher.sh`, verbatim but for the socket path (the seed's placeholder
/// checkpoint path names the checkpoint script written next to it).
pub const SEED_WATCHER: &str = r#"#!/bin/bash
# spot_watcher.sh
while true; do
HTTP_CODE=$(curl -s -o /tmp/spot_response -w "%{http_code}" \
--unix-socket "$GPUSPOT_METADATA_SOCKET" \
http://localhost/vm/metadata?key=spot_termination_time)
if [ "$HTTP_CODE" -eq 200 ]; then
echo "[$(date)] Reclamation scheduled: $(cat /tmp/spot_response)"
./save_checkpoint.sh # call your checkpoint script
break
fi
sleep 5
done"#;
