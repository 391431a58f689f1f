#!/usr/bin/env bash
# Container guests on a real Podman (docs/contracts.md#guests), measured end to end through the API:
#   - start latency: POST /v1/instances (image cached) → `running`, and → the guest's first
#     line in GET /v1/instances/{id}/logs; p50/p99 over N starts, one at a time;
#   - agent restart: K containers tick, the agent is SIGKILLed and started again on its
#     state dir; time from the new agent's start to its host `connected`, and to new output
#     from every container (all re-adopted, none restarted).
#
#   scripts/container-bench.sh [N] [K]      defaults: N=20 starts, K=4 containers
#
# Uses debug builds (cargo build), scripts/container-engine.sh for the engine and image;
# everything on 127.0.0.1; every process and container it starts is stopped on exit.
set -euo pipefail
N="${1:-20}"
K="${2:-4}"
cd "$(dirname "$0")/.."
ROOT="$PWD"
cargo build -q -p gpuspot-coordinator -p gpuspot-agent
BIN="$ROOT/target/debug"
ENGINE_OUT="$(scripts/container-engine.sh)"
ENGINE="$(sed -n 's/^engine=//p' <<<"$ENGINE_OUT")"
IMAGE="$(sed -n 's/^image=//p' <<<"$ENGINE_OUT")"
WORK="$(mktemp -d /tmp/gpuspot-ctrbench.XXXXXX)"
ADMIN="bench-admin-$RANDOM$RANDOM"
PIDS=()

cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  local ids
  ids="$(podman --remote --url "$ENGINE" ps -aq --filter "label=gpuspot.agent=$WORK/agent")"
  [ -z "$ids" ] || podman --remote --url "$ENGINE" rm -f $ids >/dev/null
  if [ -n "${KEEP:-}" ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: in its own session, output to $WORK/NAME.log; sets LAST_PID.
start() {
  local name="$1"
  shift
  setsid "$@" >>"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  disown "$LAST_PID"
  PIDS+=("$LAST_PID")
}

cat >"$WORK/coordinator.toml" <<'EOF'
[timers]
heartbeat = "500ms"
host_lost_after = "30s"
kill_timeout = "2s"
[[pools]]
model = "H100"
list_price = "2.58"
EOF
printf 'name = "bench"\nmodel = "NVIDIA H100 80GB HBM3"\ngpu_count = 8\ngpu_memory_mib = 81920\ncpu_cores = 16\nmemory_gib = 32\n' \
  >"$WORK/host.toml"

DATA="$WORK/coordinator"
mkdir -p "$DATA"
TOKEN="$("$BIN/gpuspot-coordinator" --config "$WORK/coordinator.toml" --data-dir "$DATA" token create 2>/dev/null)"
start coordinator env GPUSPOT_ADMIN_TOKEN="$ADMIN" RUST_LOG=warn "$BIN/gpuspot-coordinator" \
  --config "$WORK/coordinator.toml" --data-dir "$DATA" --http 127.0.0.1:0 --quic 127.0.0.1:0
for _ in $(seq 1 120); do [ -s "$DATA/endpoints.json" ] && break; sleep 0.25; done
URL="http://$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$DATA/endpoints.json")"
QUIC="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["quic"])' "$DATA/endpoints.json")"

agent() {
  start agent env RUST_LOG=info "$BIN/gpuspot-agent" --coordinator "$QUIC" --simulate "$WORK/host.toml" \
    --state-dir "$WORK/agent" --container-engine "$ENGINE"
  AGENT_PID=$LAST_PID
}
# The token only for the first start, through the environment (never on a command line).
GPUSPOT_JOIN_TOKEN="$TOKEN" agent
export URL ADMIN IMAGE N K WORK
python3 - "$@" <<'EOF'
import json, os, signal, statistics, subprocess, sys, time, urllib.request

URL, TOKEN, IMAGE = os.environ["URL"], os.environ["ADMIN"], os.environ["IMAGE"]
N, K = int(os.environ["N"]), int(os.environ["K"])

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    try:
        return json.loads(text)
    except ValueError:
        return text

def until(what, check, timeout=60, every=0.01):
    start = time.time()
    while time.time() - start < timeout:
        value = check()
        if value:
            return value
        time.sleep(every)
    sys.exit(f"timed out waiting for {what}")

def logs(i):
    return call("GET", f"/v1/instances/{i}/logs")

def create(name, script):
    body = {"name": name, "gpu": {"models": ["H100"], "count": 1}, "billing": {"mode": "regular"},
            "image": IMAGE, "command": ["sh", "-c", script]}
    return call("POST", "/v1/instances", body)["id"]

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

until("the host", lambda: any(h["state"] == "connected" for h in call("GET", "/v1/hosts")))
# One start first, so that the image and the engine are warm.
warm = create("warm", "echo up; exec sleep 300")
until("the warm-up", lambda: "up" in logs(warm))
call("DELETE", f"/v1/instances/{warm}")

running, output = [], []
for n in range(N):
    t0 = time.time()
    i = create(f"start-{n}", "echo up; exec sleep 300")
    until("running", lambda: call("GET", f"/v1/instances/{i}")["state"] == "running")
    running.append(time.time() - t0)
    until("output", lambda: "up" in logs(i))
    output.append(time.time() - t0)
    call("DELETE", f"/v1/instances/{i}")
    until("terminated", lambda: call("GET", f"/v1/instances/{i}")["state"] == "terminated", every=0.05)

print(f"container start, request -> running   (n={N}): p50 {pct(running, 50)*1000:.0f} ms, p99 {pct(running, 99)*1000:.0f} ms")
print(f"container start, request -> 1st output (n={N}): p50 {pct(output, 50)*1000:.0f} ms, p99 {pct(output, 99)*1000:.0f} ms")

ids = [create(f"tick-{n}", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done") for n in range(K)]
for i in ids:
    until("ticking", lambda: "tick 5" in logs(i))
with open(os.path.join(os.environ["WORK"], "tickers.json"), "w") as f:
    json.dump({"tickers": ids}, f)
EOF
# Agent restart: SIGKILL, then a fresh process on the same state dir.
kill -KILL "$AGENT_PID"
sleep 1
RESTART_AT="$(date +%s.%N)"
agent
python3 - "$RESTART_AT" <<'EOF'
import json, os, sys, time, urllib.request
URL, TOKEN = os.environ["URL"], os.environ["ADMIN"]
restart_at = float(sys.argv[1])

def call(path):
    req = urllib.request.Request(URL + path)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    try:
        return json.loads(text)
    except ValueError:
        return text

ids = json.load(open(os.path.join(os.environ["WORK"], "tickers.json")))["tickers"]
def last_tick(i):
    ticks = [int(l.split()[1]) for l in call(f"/v1/instances/{i}/logs").splitlines() if l.startswith("tick ")]
    return ticks[-1] if ticks else -1
before = {i: last_tick(i) for i in ids}
pending = set(ids)
while pending:
    pending = {i for i in pending if last_tick(i) <= before[i] + 1}
    time.sleep(0.01)
t_output = time.time() - restart_at
states = {call(f"/v1/instances/{i}")["state"] for i in ids}
print(f"agent restart with {len(ids)} containers: new output from all in the API "
      f"{t_output*1000:.0f} ms after the new agent started; states: {sorted(states)}")
EOF
# The agent's own account of the adoption, from its log.
sed 's/\x1b\[[0-9;]*m//g' "$WORK/agent.log" | grep -h "re-adopted" | tail -1 || true
