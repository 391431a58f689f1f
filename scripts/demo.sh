#!/usr/bin/env bash
# The seeds' story on a local `gpuspot dev` cluster, with timers compressed from hours and
# minutes to seconds (hold 6 s, notice 8 s, price tick 1 s):
#   1. spot instances fill host B's eight RTX 4090s at a low bid; one runs seed 003's
#      spot_watcher.sh (only the socket path changed) with a checkpoint command;
#   2. a higher bid arrives: the auction raises the price, and once the hold is over the
#      lowest bid loses; its guest sees spot_termination_time on its metadata socket and
#      checkpoints; it is stopped at the deadline, not before;
#   3. a regular (on-demand) request finds no free unit and reclaims the lowest remaining
#      bid, then starts after the notice period;
#   4. the pool's price history.
# Usage: scripts/demo.sh   (builds the release binaries first; cleans up after itself)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin gpuspot
G=$PWD/target/release/gpuspot
WORK=$(mktemp -d /tmp/gpuspot-demo.XXXXXX)
PORT=${DEMO_HTTP_PORT:-18580}
export GPUSPOT_API=http://127.0.0.1:$PORT GPUSPOT_TOKEN=demo-admin-token
DEV_PID=
cleanup() {
    [ -n "$DEV_PID" ] && kill -INT "$DEV_PID" 2>/dev/null && wait "$DEV_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
field() { "$G" --json instances show "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)$2)"; }
wait_state() { # wait_state ID STATE SECONDS
    local end=$(( $(date +%s) + $3 ))
    until [ "$(field "$1" '["state"]')" = "$2" ]; do
        [ "$(date +%s)" -lt "$end" ] || { echo "timed out waiting for $1 to be $2"; exit 1; }
        sleep 0.3
    done
}

cat > "$WORK/demo.toml" <<'TOML'
[timers]
hold_period = "6s"
notice_period = "8s"
price_tick = "1s"
heartbeat = "1s"
host_lost_after = "5s"
kill_timeout = "3s"
[[pools]]
model = "RTX 4090"
list_price = "0.60"
[[pools]]
model = "RTX 5090"
list_price = "0.90"
[[pools]]
model = "RTX PRO 6000"
list_price = "1.80"
TOML
GPUSPOT_ADMIN_TOKEN=$GPUSPOT_TOKEN RUST_LOG=warn "$G" dev --http "127.0.0.1:$PORT" \
    --quic "127.0.0.1:$((PORT + 1))" --data-dir "$WORK/data" --config "$WORK/demo.toml" > "$WORK/dev.log" 2>&1 &
DEV_PID=$!
for _ in $(seq 50); do curl -sf "$GPUSPOT_API/healthz" >/dev/null && break; sleep 0.2; done

say "A local cluster: seed 004's hosts, and the RTX 4090 pool's list and market price"
"$G" hosts
"$G" pools

say "Seven spot instances fill host B at a bid of 0.15/GPU-hour; an eighth bids 0.13 and runs seed 003's watcher"
for i in 1 2 3 4 5 6 7; do
    "$G" instances create --name "batch-$i" --gpu "RTX 4090" --spot --max-price 0.15 -- sleep 600 >/dev/null
done
# The guest: seed 003's spot_watcher.sh, verbatim but for the socket path (and a 1 s poll
# for the compressed notice), started in the background next to a "training" loop.
GUEST=$(cat <<'GUEST'
cat > spot_watcher.sh <<'WATCHER'
#!/bin/bash
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
sleep 1
done
WATCHER
printf '#!/bin/bash\necho "checkpoint saved at step $(cat step)"\n' > save_checkpoint.sh
chmod +x spot_watcher.sh save_checkpoint.sh
nohup ./spot_watcher.sh &
n=0; while true; do n=$((n+1)); echo $n > step; sleep 0.2; done
GUEST
)
TRAINER=$("$G" --json instances create --name trainer --gpu "RTX 4090" --spot --max-price 0.13 -- bash -c "$GUEST" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
wait_state "$TRAINER" running 10
"$G" instances list
"$G" pools

say "A higher bid (0.50) arrives for the full pool: the auction prices the loser's bid in"
HIGH=$("$G" --json instances create --name urgent --gpu "RTX 4090" --spot --max-price 0.50 -- sleep 600 \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sleep 2
echo "urgent: $(field "$HIGH" '["state"]') — $(field "$HIGH" '["reason"]')"
echo "trainer (in its 6 s hold until $(field "$TRAINER" '["hold_until"]')): $(field "$TRAINER" '["state"]')"

say "The hold ends: the lowest bid (trainer) gets its notice; its guest sees it on the socket"
wait_state "$TRAINER" termination_scheduled 15
echo "termination_time: $(field "$TRAINER" '["termination_time"]')  reason: $(field "$TRAINER" '["termination_reason"]')"
sleep 2
"$G" instances logs "$TRAINER"

say "At the deadline, not before, the agent stops it (SIGTERM, then SIGKILL) and urgent takes the GPU"
wait_state "$TRAINER" terminated 20
echo "trainer ended at $(field "$TRAINER" '["ended_at"]'): $(field "$TRAINER" '["reason"]')"
wait_state "$HIGH" running 10
"$G" instances list

say "A regular (on-demand) request finds the pool full: it reclaims the lowest bid and waits"
REGULAR=$("$G" --json instances create --name on-demand --gpu "RTX 4090" -- sleep 600 \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sleep 1
echo "on-demand: $(field "$REGULAR" '["state"]') — $(field "$REGULAR" '["reason"]')"
"$G" instances list | grep -E "termination_scheduled|NAME" || true
wait_state "$REGULAR" running 30
echo "on-demand is running at the list price $(field "$REGULAR" '["price"]')"

say "Events, and the RTX 4090 price history"
"$G" events | tail -n 12
"$G" pools history "RTX 4090" --hours 1 | tail -n 14
say "Done: stopping the cluster"
