#!/usr/bin/env bash
# Checks gpuspot on a real NVIDIA host, end to end:
#   1. a coordinator and a real NVML agent start and the agent joins over QUIC;
#   2. the GPUs the agent reports match `nvidia-smi -L` (UUIDs and names);
#   3. an instance asking for one GPU runs a real CUDA workload (PyTorch when present) that
#      proves it sees exactly its assigned GPU, and exits 0.
# Prints PASS/FAIL lines and exits non-zero if anything failed.
# Usage: scripts/gpu-check.sh   (BIN_DIR defaults to target/release; build with cargo build --release)
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
command -v nvidia-smi >/dev/null || { fail "nvidia-smi not found: not an NVIDIA host"; exit 1; }
nvidia-smi -L > "$WORK/smi.txt" || { fail "nvidia-smi -L failed"; exit 1; }
echo "nvidia-smi -L:"; sed 's/^/  /' "$WORK/smi.txt"

cat > "$WORK/coordinator.toml" <<TOML
[timers]
heartbeat = "1s"
host_lost_after = "10s"
kill_timeout = "5s"
TOML
GPUSPOT_ADMIN_TOKEN=$TOKEN "$BIN_DIR/gpuspot-coordinator" --config "$WORK/coordinator.toml" \
    --data-dir "$WORK/coord" --http "$HTTP" --quic "$QUIC" > "$WORK/coordinator.log" 2>&1 &
PIDS+=($!)
wait_for 20 curl -sf "http://$HTTP/healthz" -o /dev/null && pass "coordinator answers /healthz" \
    || { fail "coordinator did not start"; tail "$WORK/coordinator.log"; exit 1; }
JOIN=$("$BIN_DIR/gpuspot-coordinator" --data-dir "$WORK/coord" token create)
"$BIN_DIR/gpuspot-agent" --coordinator "$QUIC" --join-token "$JOIN" --state-dir "$WORK/agent" \
    > "$WORK/agent.log" 2>&1 &
PIDS+=($!)
host_up() { [ "$(api "http://$HTTP/v1/hosts" | json 'len([h for h in d if h["state"]=="connected"])')" = 1 ]; }
if wait_for 30 host_up; then pass "NVML agent joined over QUIC (mutual TLS)"; else
    fail "agent did not join"; tail -20 "$WORK/agent.log"; exit 1; fi

api "http://$HTTP/v1/hosts" > "$WORK/hosts.json"
python3 - "$WORK/hosts.json" "$WORK/smi.txt" <<'PY' && pass "discovered GPUs match nvidia-smi -L" || fail "discovered GPUs differ from nvidia-smi -L"
import json, re, sys
host = json.load(open(sys.argv[1]))[0]
smi = {m.group(2): m.group(1).strip() for m in re.finditer(r"GPU \d+: (.*?) \(UUID: (GPU-[^)]+)\)", open(sys.argv[2]).read())}
got = {g["uuid"]: g["model"] for g in host["gpus"]}
print("  agent reports:", ", ".join(f'{g["index"]}:{g["model"]} {g["uuid"]} {g["memory_mib"]}MiB healthy={g["healthy"]}' for g in host["gpus"]))
print(f'  unit: {host["unit"]}')
sys.exit(0 if got == smi and got else 1)
PY

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
[ $FAILED = 0 ] && echo "gpu-check: all checks pass" || echo "gpu-check: some checks FAILED"
exit $FAILED
