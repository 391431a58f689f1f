#!/usr/bin/env bash
# Checks gpuspot on a real NVIDIA host, end to end:
#   1. a coordinator and a real NVML agent start and the agent joins over QUIC;
#   2. the GPUs the agent reports match `nvidia-smi -L` (UUIDs and names);
#   3. an instance asking for one GPU runs a real CUDA workload (PyTorch when present) that
#      proves it sees exactly its assigned GPU, and exits 0;
#   4. seed 003's checkpoint/resume loop with a real PyTorch training run: a spot job with
#      snapshots is reclaimed mid-run by a regular request, and its next run restores the
#      snapshot and resumes from the last checkpoint to the right total;
#   5. when the host has a container engine (Docker or Podman, found at /var/run/docker.sock or
#      /run/podman/podman.sock, or named by GPU_CHECK_ENGINE=unix:///PATH): an image instance
#      (a tiny image built here from the host's own shell, imported through the engine's API:
#      no registry needed) sees exactly its GPU, the metadata socket at
#      /run/gpuspot/metadata.sock and /data, and exits 0;
#   6. the GPU fault watch reads every GPU's critical Xid event support and health
#      (`gpuspot-agent gpu-check`, the agent's own code; no fault is injected).
# Prints PASS/FAIL lines and exits non-zero if anything failed.
# Usage: scripts/gpu-check.sh   (BIN_DIR defaults to target/release; build with cargo build --release)
# GPU_CHECK_SIMULATE=config/hosts/host-a.toml runs the same flow on a simulated host (no GPU
# checks), to test this script itself.
set -u
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/release}
WORK=$(mktemp -d /tmp/gpuspot-gpu-check.XXXXXX)
TOKEN=gpu-check-admin-token
HTTP=127.0.0.1:${HTTP_PORT:-18480}
QUIC=127.0.0.1:${QUIC_PORT:-18443}
FAILED=0
PIDS=()

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED=1; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    sleep 1
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
wait_for() { # wait_for SECONDS COMMAND...
    local end=$(( $(date +%s) + $1 )); shift
    until "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.5; done
}

for bin in gpuspot-coordinator gpuspot-agent; do
    [ -x "$BIN_DIR/$bin" ] || { fail "binary $BIN_DIR/$bin missing (cargo build --release)"; exit 1; }
done
SIMULATE=${GPU_CHECK_SIMULATE:-}
if [ -z "$SIMULATE" ]; then
    command -v nvidia-smi >/dev/null || { fail "nvidia-smi not found: not an NVIDIA host"; exit 1; }
    nvidia-smi -L > "$WORK/smi.txt" || { fail "nvidia-smi -L failed"; exit 1; }
    echo "nvidia-smi -L:"; sed 's/^/  /' "$WORK/smi.txt"
fi

# One pool for the host's GPU model, so spot requests have a market.
if [ -n "$SIMULATE" ]; then
    GPU_NAME=$(sed -n 's/^model = "\(.*\)"/\1/p' "$SIMULATE")
else
    GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
fi
cat > "$WORK/coordinator.toml" <<TOML
[timers]
heartbeat = "1s"
host_lost_after = "10s"
kill_timeout = "10s"
hold_period = "5s"
notice_period = "5s"
price_tick = "1s"
[[pools]]
model = "$GPU_NAME"
list_price = "2.00"
TOML
AGENT_ARGS=()
[ -n "$SIMULATE" ] && AGENT_ARGS=(--simulate "$SIMULATE")
ENGINE=${GPU_CHECK_ENGINE:-}
if [ -z "$ENGINE" ]; then
    for sock in /var/run/docker.sock /run/podman/podman.sock; do
        [ -S "$sock" ] && ENGINE="unix://$sock" && break
    done
fi
[ -n "$ENGINE" ] && AGENT_ARGS+=(--container-engine "$ENGINE")
GPUSPOT_ADMIN_TOKEN=$TOKEN "$BIN_DIR/gpuspot-coordinator" --config "$WORK/coordinator.toml" \
    --data-dir "$WORK/coord" --http "$HTTP" --quic "$QUIC" > "$WORK/coordinator.log" 2>&1 &
PIDS+=($!)
wait_for 20 curl -sf "http://$HTTP/healthz" -o /dev/null && pass "coordinator answers /healthz" \
    || { fail "coordinator did not start"; tail "$WORK/coordinator.log"; exit 1; }
( umask 077 && "$BIN_DIR/gpuspot-coordinator" --data-dir "$WORK/coord" token create > "$WORK/join-token" )
"$BIN_DIR/gpuspot-agent" --coordinator "$QUIC" --join-token-file "$WORK/join-token" --state-dir "$WORK/agent" \
    "${AGENT_ARGS[@]}" > "$WORK/agent.log" 2>&1 &
PIDS+=($!)
host_up() { [ "$(api "http://$HTTP/v1/hosts" | json 'len([h for h in d if h["state"]=="connected"])')" = 1 ]; }
if wait_for 30 host_up; then pass "NVML agent joined over QUIC (mutual TLS)"; else
    fail "agent did not join"; tail -20 "$WORK/agent.log"; exit 1; fi

api "http://$HTTP/v1/hosts" > "$WORK/hosts.json"
cat > "$WORK/compare.py" <<'PY'
import json, re, sys
host = json.load(open(sys.argv[1]))[0]
smi = {m.group(2): m.group(1).strip() for m in re.finditer(r"GPU \d+: (.*?) \(UUID: (GPU-[^)]+)\)", open(sys.argv[2]).read())}
got = {g["uuid"]: g["model"] for g in host["gpus"]}
print("  agent reports:", ", ".join(f'{g["index"]}:{g["model"]} {g["uuid"]} {g["memory_mib"]}MiB healthy={g["healthy"]}' for g in host["gpus"]))
print(f'  unit: {host["unit"]}')
sys.exit(0 if got == smi and got else 1)
PY
if [ -z "$SIMULATE" ]; then
    python3 "$WORK/compare.py" "$WORK/hosts.json" "$WORK/smi.txt" \
        && pass "discovered GPUs match nvidia-smi -L" || fail "discovered GPUs differ from nvidia-smi -L"
fi

MODEL=$(json 'd[0]["gpus"][0]["model"]' < "$WORK/hosts.json")
cat > "$WORK/workload.py" <<'PY'
import os, sys
assigned = os.environ["CUDA_VISIBLE_DEVICES"].split(",")
print("CUDA_VISIBLE_DEVICES=" + ",".join(assigned))
try:
    import torch
except ImportError:
    print("torch not installed; checked CUDA_VISIBLE_DEVICES only")
    sys.exit(0 if len(assigned) == 1 else 1)
n = torch.cuda.device_count()
uuid = "GPU-" + str(torch.cuda.get_device_properties(0).uuid)
a = torch.randn(2048, 2048, device="cuda"); s = float((a @ a).sum())
print(f"devices={n} uuid={uuid} name={torch.cuda.get_device_name(0)} matmul_sum={s:.1f}")
ok = n == 1 and uuid == assigned[0]
print("WORKLOAD " + ("OK" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
PY
BODY=$(python3 -c "import json,sys; print(json.dumps({'name':'gpu-check','gpu':{'models':[sys.argv[1]],'count':1},'command':['python3',sys.argv[2]]}))" "$MODEL" "$WORK/workload.py")
ID=$(api -X POST -H 'Content-Type: application/json' -d "$BODY" "http://$HTTP/v1/instances" | json 'd["id"]')
done_() { [ "$(api "http://$HTTP/v1/instances/$ID" | json 'd["state"]')" = terminated ]; }
if wait_for 180 done_; then
    api "http://$HTTP/v1/instances/$ID" > "$WORK/instance.json"
    echo "  instance: $(json '(d["gpu_uuids"], d["reason"], d["exit_code"])' < "$WORK/instance.json")"
    api "http://$HTTP/v1/instances/$ID/logs" | sed 's/^/  | /'
    [ "$(json 'd["exit_code"]' < "$WORK/instance.json")" = 0 ] \
        && pass "CUDA workload saw exactly its assigned GPU" || fail "CUDA workload failed"
else
    fail "CUDA workload did not finish"; api "http://$HTTP/v1/instances/$ID/logs"
fi

# 4. Seed 003's checkpoint/resume loop, for real: a PyTorch training job (spot, snapshots on)
#    is reclaimed mid-run by a regular request after its hold; its next run restores the
#    snapshot of GPUSPOT_DATA_DIR and resumes from the last checkpoint.
cat > "$WORK/train.py" <<'PY'
import os, signal, sys, time
data = os.environ["GPUSPOT_DATA_DIR"]; ckpt = os.path.join(data, "checkpoint.pt"); TOTAL = 300
stop = False
def on_term(*_): global stop; stop = True
signal.signal(signal.SIGTERM, on_term)
try:
    import torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = torch.nn.Linear(256, 256).to(dev); opt = torch.optim.SGD(model.parameters(), lr=0.01)
    def save(step): torch.save({"step": step, "model": model.state_dict(), "opt": opt.state_dict()}, ckpt)
    def load():
        if not os.path.exists(ckpt): return 0
        c = torch.load(ckpt, map_location=dev); model.load_state_dict(c["model"]); opt.load_state_dict(c["opt"]); return c["step"]
    def train_step():
        x = torch.randn(512, 256, device=dev); loss = ((model(x) - x) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step(); return float(loss)
except ImportError:
    dev = "cpu (no torch)"
    def save(step): open(ckpt, "w").write(str(step))
    def load(): return int(open(ckpt).read()) if os.path.exists(ckpt) else 0
    def train_step(): return 0.0
start = load()
print(f"device={dev} resumed at step {start}" if start else f"device={dev} starting", flush=True)
for step in range(start, TOTAL):
    loss = train_step(); time.sleep(0.05)
    with open(os.path.join(data, "steps.log"), "a") as f: f.write(f"{step}\n")
    if step % 20 == 0: save(step + 1)
    if stop:
        save(step + 1); print(f"SIGTERM: checkpoint saved at step {step + 1}", flush=True); sys.exit(143)
steps = [int(l) for l in open(os.path.join(data, "steps.log"))]
print(f"done {TOTAL} steps; distinct steps logged {len(set(steps))}; last loss {loss:.4f}", flush=True)
PY
JOB=$(python3 -c "import json,sys; print(json.dumps({'name':'resume','mode':'job','completions':1,'retry_limit':0,
  'specs':[{'gpu':{'models':[sys.argv[1]],'count':1},'billing':{'mode':'spot','max_price':'1000.00'}}],
  'template':{'command':['python3',sys.argv[2]],'snapshot':{'enabled':True}}}))" "$MODEL" "$WORK/train.py")
DEP=$(api -X POST -H 'Content-Type: application/json' -d "$JOB" "http://$HTTP/v1/deployments" | tee "$WORK/dep-created.json" | json 'd["id"]')
echo "  resume job $DEP: $(json '(d["state"], d["reason"])' < "$WORK/dep-created.json")"
first_run() { api "http://$HTTP/v1/deployments/$DEP" | json 'd["instances"][0]["id"] if d["instances"] else ""'; }
wait_for 60 bash -c "[ -n \"\$(curl -s -H 'Authorization: Bearer $TOKEN' http://$HTTP/v1/deployments/$DEP | python3 -c 'import json,sys; d=json.load(sys.stdin); print(\"x\" if any(i[\"state\"]==\"running\" for i in d[\"instances\"]) else \"\")')\" ]"
sleep 8   # past the 5 s hold, some checkpoints written
NGPU=$(json 'len(d[0]["gpus"])' < "$WORK/hosts.json")
REG=$(python3 -c "import json,sys; print(json.dumps({'name':'reclaimer','gpu':{'models':[sys.argv[1]],'count':int(sys.argv[2])},'command':['sleep','8']}))" "$MODEL" "$NGPU")
api -X POST -H 'Content-Type: application/json' -d "$REG" "http://$HTTP/v1/instances" >/dev/null
done_dep() { [ "$(api "http://$HTTP/v1/deployments/$DEP" | json 'd["state"]')" = completed ]; }
if wait_for 240 done_dep; then
    api "http://$HTTP/v1/deployments/$DEP" > "$WORK/dep.json"
    for i in $(json '" ".join(i["id"] for i in d["instances"])' < "$WORK/dep.json"); do
        echo "  run $i: $(api "http://$HTTP/v1/instances/$i" | json '(d["reason"], d["host_id"])')"
        api "http://$HTTP/v1/instances/$i/logs" | sed 's/^/  | /'
    done
    LOGS=$(for i in $(json '" ".join(i["id"] for i in d["instances"])' < "$WORK/dep.json"); do api "http://$HTTP/v1/instances/$i/logs"; done)
    echo "$LOGS" | grep -q "resumed at step [1-9]" && echo "$LOGS" | grep -q "done 300 steps; distinct steps logged 300" \
        && pass "training job reclaimed mid-run resumed from its snapshot and finished all 300 steps" \
        || fail "training job did not resume from its snapshot"
else
    fail "resume job did not complete"; api "http://$HTTP/v1/deployments/$DEP"
fi
# 5. A container guest (docs/contracts.md#guests), when the host has an engine.
engine_api() { curl -s --unix-socket "${ENGINE#unix://}" "$@"; }
build_image() { # a rootfs of the host's sh (and its libraries), imported as gpuspot-gpu-check:1
    local root="$WORK/rootfs"
    mkdir -p "$root"/{bin,tmp,data,run/gpuspot,dev,proc,sys,etc}
    for binary in /bin/sh /bin/ls /bin/cat; do
        cp -L "$binary" "$root/bin/"
        for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
        done
    done
    tar -C "$root" -c . | engine_api -X POST -H 'Content-Type: application/x-tar' --data-binary @- \
        "http://d/images/create?fromSrc=-&repo=localhost/gpuspot-gpu-check&tag=1" > "$WORK/import.log"
}
if [ -z "$ENGINE" ]; then
    echo "SKIP container guest: no container engine on this host"
elif ! engine_api -sf http://d/_ping >/dev/null; then
    fail "container engine at $ENGINE does not answer"
else
    build_image
    cat > "$WORK/in-container.sh" <<'SH'
echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES GPUSPOT_DATA_DIR=$GPUSPOT_DATA_DIR"
for d in /dev/nvidia[0-9]*; do [ -e "$d" ] && echo "device $d"; done
[ -S /run/gpuspot/metadata.sock ] && echo "SOCKET OK"
echo hello > /data/probe && cat /data/probe
command -v nvidia-smi >/dev/null && nvidia-smi -L
exit 0
SH
    CBODY=$(python3 -c "import json,sys; print(json.dumps({'name':'gpu-check-container','image':'localhost/gpuspot-gpu-check:1','gpu':{'models':[sys.argv[1]],'count':1},'command':['/bin/sh','-c',open(sys.argv[2]).read()]}))" "$MODEL" "$WORK/in-container.sh")
    CID=$(api -X POST -H 'Content-Type: application/json' -d "$CBODY" "http://$HTTP/v1/instances" | json 'd["id"]')
    cdone() { [ "$(api "http://$HTTP/v1/instances/$CID" | json 'd["state"] in ("terminated", "failed")')" = True ]; }
    if wait_for 180 cdone; then
        api "http://$HTTP/v1/instances/$CID" > "$WORK/container.json"
        api "http://$HTTP/v1/instances/$CID/logs" > "$WORK/container.log"
        echo "  container instance: $(json '(d["state"], d["reason"], d["exit_code"], d["gpu_uuids"])' < "$WORK/container.json")"
        sed 's/^/  | /' "$WORK/container.log"
        ASSIGNED=$(json 'd["gpu_uuids"][0]' < "$WORK/container.json")
        ok=1
        [ "$(json 'd["exit_code"]' < "$WORK/container.json")" = 0 ] || ok=0
        grep -q "SOCKET OK" "$WORK/container.log" && grep -qx hello "$WORK/container.log" || ok=0
        if [ -z "$SIMULATE" ]; then
            [ "$(grep -c '^device ' "$WORK/container.log")" = 1 ] || ok=0
            if grep -q '^GPU ' "$WORK/container.log"; then
                [ "$(grep -c '^GPU ' "$WORK/container.log")" = 1 ] && grep -q "$ASSIGNED" "$WORK/container.log" || ok=0
            fi
        fi
        [ $ok = 1 ] && pass "container guest saw exactly its GPU, /run/gpuspot/metadata.sock and /data" \
            || fail "container guest did not see what docs/contracts.md#guests promises"
    else
        fail "container instance did not finish"; api "http://$HTTP/v1/instances/$CID"
    fi
fi

# 6. The GPU fault watch (docs/architecture.md, "Faults and drills"): every GPU that
#    nvidia-smi lists is healthy to the watch's own health query, and NVML delivers its
#    critical Xid events (what takes a failed GPU off the market at once). Read-only: no
#    fault is injected on real hardware.
if [ -z "$SIMULATE" ]; then
    if "$BIN_DIR/gpuspot-agent" gpu-check > "$WORK/faults.txt" 2>&1; then
        sed 's/^/  /' "$WORK/faults.txt"
        ok=1
        while read -r uuid; do
            grep -q "$uuid events=[a-z_,]*critical_xid.* health=ok" "$WORK/faults.txt" || ok=0
        done < <(grep -o 'GPU-[0-9a-f-]*' "$WORK/smi.txt")
        [ $ok = 1 ] && pass "fault watch: every GPU healthy, critical Xid events registered" \
            || fail "fault watch: a GPU lacks Xid events or health (see above)"
    else
        sed 's/^/  /' "$WORK/faults.txt"; fail "gpuspot-agent gpu-check failed"
    fi
fi

[ $FAILED = 0 ] && echo "gpu-check: all checks pass" || echo "gpu-check: some checks FAILED"
exit $FAILED
