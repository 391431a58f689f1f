#!/usr/bin/env bash
# gpuspot benchmarks: builds the release binaries, then measures on this machine and prints
# one table (metric | value | target | met?). Everything runs on 127.0.0.1 with ports the
# kernel picks; every process started here is stopped on exit (trap), and its work dir removed.
#
#   scripts/bench.sh          full run: 1,000 and 10,000 hosts, 50,000 instances (~10 min)
#   scripts/bench.sh quick    smaller: 1,000 and 2,000 hosts, 10,000 instances (~3 min)
#   KEEP=1 scripts/bench.sh   keeps the work dir (logs, data dirs) for a look afterwards
#   STAGES="small big" scripts/bench.sh   runs only those stages (of: core small notice big)
#   PROFILE=debug scripts/bench.sh quick  debug binaries: checks that every stage passes
#                                         without a release build (figures not comparable)
#
# Stages (each bounded by timeouts):
#   core     scheduler core alone (cargo bench scheduler): placements/s with 10,000 hosts
#   small    coordinator + fleet of 1,000 fake-runtime hosts + one real `gpuspot-agent
#            --simulate host-a`: join time, coordinator CPU/RSS and heartbeats over a window,
#            agent RSS/CPU idle, API placements/s (POST /v1/instances, all must reach running)
#   notice   coordinator + 984 fake hosts (A100, half full) + 16 process-runtime hosts (H100):
#            notice latency over 128 real guests' metadata sockets (bench_notice.py --attach)
#   big      coordinator + fleets of 10,000 fake hosts: join, CPU/RSS/heartbeats, API at that
#            scale while creating 50,000 instances, then SIGKILL + restart on the same data dir
#            and ports until every host is connected and every instance still running
#
# A wait that times out, or an instance that fails, ends the run at once: non-zero exit,
# naming the stage and what it waited for.
set -Eeuo pipefail

MODE="${1:-full}"
case "$MODE" in
full) SMALL=1000 BIG=10000 BIG_INSTANCES=50000 NOTICE_FAKE=984 API_N=6000 ;;
quick) SMALL=1000 BIG=2000 BIG_INSTANCES=10000 NOTICE_FAKE=184 API_N=4000 ;;
*) echo "usage: scripts/bench.sh [quick]" >&2 && exit 2 ;;
esac
NOTICE_PROC=16 PER_FLEET=2000 WINDOW=20 CONCURRENCY=32

cd "$(dirname "$0")/.."
ROOT="$PWD"
PROFILE="${PROFILE:-release}"
case "$PROFILE" in
release) CARGO_PROFILE=(--release) ;;
debug) CARGO_PROFILE=() ;;
*) echo "PROFILE must be release or debug" >&2 && exit 2 ;;
esac
BIN="$ROOT/target/$PROFILE"
UTIL=(python3 "$ROOT/scripts/bench_util.py")
ADMIN="bench-admin-$RANDOM$RANDOM"
WORK="$(mktemp -d /tmp/gpuspot-bench.XXXXXX)"
PIDS=()
ROWS=()
AWAITED=
START_TIME=$SECONDS
STAGE=setup

log() { printf '[bench %4ds] %s\n' "$((SECONDS - START_TIME))" "$*" >&2; }
fail() { log "FAILED in stage $STAGE: $*" && exit 1; }
trap 'log "FAILED in stage $STAGE: line $LINENO: $BASH_COMMAND exited $?"' ERR

# await WHAT UTIL-COMMAND ARGS...: runs a bench_util wait in this shell (not in a command
# substitution, where its failure would be lost) and sets AWAITED to its output; ends the run
# naming the stage and WHAT when it timed out or an instance failed.
await() {
  local what="$1"
  shift
  AWAITED="$("${UTIL[@]}" "$@" 2>&1)" || fail "$what: $AWAITED"
}
kv() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }
met() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print (ok ? "yes" : "NO") }'; }
row() { ROWS+=("$1|$2|$3|$4"); }

print_table() {
  [ "${#ROWS[@]}" -gt 0 ] || return 0
  printf '\n%-66s | %-14s | %-12s | %s\n' metric value target met?
  printf '%s\n' "-------------------------------------------------------------------+----------------+--------------+-----"
  for r in "${ROWS[@]}"; do
    IFS='|' read -r m v t ok <<<"$r"
    printf '%-66s | %-14s | %-12s | %s\n' "$m" "$v" "$t" "$ok"
  done
  printf '(%s mode, %s binaries, %s cores, %s GiB; %ds)\n' "$MODE" "$PROFILE" "$(nproc)" \
    "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$((SECONDS - START_TIME))"
}

# start NAME CMD...: runs CMD in its own session, output to $WORK/NAME.log; sets LAST_PID.
start() {
  local name="$1"
  shift
  setsid "$@" >"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  disown "$LAST_PID"
  PIDS+=("$LAST_PID")
}

# stop PID...: SIGTERM to each session (agents stop their workloads), SIGKILL after 45 s.
stop() {
  local pid
  for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 1 90); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}

# Guest workloads run in sessions of their own: kill any left with a data dir under $WORK.
sweep_guests() {
  python3 - "$WORK" <<'EOF'
import os, signal, sys
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        env = open(f"/proc/{pid}/environ", "rb").read()
    except OSError:
        continue
    if f"GPUSPOT_DATA_DIR={sys.argv[1]}/".encode() in env:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
EOF
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local reversed=()
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do reversed+=("${PIDS[i]}"); done
  [ "${#reversed[@]}" -eq 0 ] || stop "${reversed[@]}"
  sweep_guests || true
  print_table
  [ "$status" -eq 0 ] || echo "bench: FAILED in stage $STAGE (exit $status)" >&2
  if [ -n "${KEEP:-}" ]; then echo "bench: work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_files() {
  cat >"$WORK/load.toml" <<'EOF'
[timers]
heartbeat = "5s"
host_lost_after = "30s"
[[pools]]
model = "H100"
list_price = "2.58"
[[pools]]
model = "A100"
list_price = "1.60"
[[pools]]
model = "RTX 5090"
list_price = "0.90"
EOF
  sed -e 's/^heartbeat = .*/heartbeat = "5s"\nhold_period = "1s"\nnotice_period = "20s"\nprice_tick = "2s"\nkill_timeout = "2s"/' \
    "$WORK/load.toml" >"$WORK/notice.toml"
  local m
  for m in h100:"NVIDIA H100 80GB HBM3" a100:"NVIDIA A100-SXM4-80GB"; do
    printf 'name = "%s"\nmodel = "%s"\ngpu_count = 8\ngpu_memory_mib = 81920\ncpu_cores = 128\nmemory_gib = 1024\n' \
      "${m%%:*}" "${m#*:}" >"$WORK/${m%%:*}.toml"
  done
}

# coordinator NAME CONFIG [HTTP QUIC]: starts one; sets C_PID C_URL C_QUIC C_TOKEN C_DATA.
coordinator() {
  C_DATA="$WORK/$1"
  mkdir -p "$C_DATA"
  rm -f "$C_DATA/endpoints.json"
  # One token for every fleet host and the real agent (tokens are single-use by default).
  C_TOKEN="$("$BIN/gpuspot-coordinator" --data-dir "$C_DATA" token create --uses 1000000)"
  start "$1" env GPUSPOT_ADMIN_TOKEN="$ADMIN" RUST_LOG=warn "$BIN/gpuspot-coordinator" \
    --config "$2" --data-dir "$C_DATA" --http "${3:-127.0.0.1:0}" --quic "${4:-127.0.0.1:0}"
  C_PID=$LAST_PID
  for _ in $(seq 1 120); do [ -s "$C_DATA/endpoints.json" ] && break; sleep 0.25; done
  [ -s "$C_DATA/endpoints.json" ] || fail "coordinator $1 did not start (see $WORK/$1.log)"
  C_URL="http://$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$C_DATA/endpoints.json")"
  C_QUIC="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["quic"])' "$C_DATA/endpoints.json")"
  for _ in $(seq 1 60); do curl -sf "$C_URL/healthz" >/dev/null && break; sleep 0.25; done
}

# fleets NAME PROFILE RUNTIME HOSTS: fleet processes of up to $PER_FLEET hosts; sets F_PIDS F_DIRS.
fleets() {
  F_PIDS=() F_DIRS=()
  local first=1 n
  while [ "$first" -le "$4" ]; do
    n=$(($4 - first + 1 < PER_FLEET ? $4 - first + 1 : PER_FLEET))
    # The token goes through the environment: a command line is readable by every user.
    GPUSPOT_JOIN_TOKEN="$C_TOKEN" start "$1-$first" env RUST_LOG=warn "$BIN/gpuspot-agent" fleet \
      --coordinator "$C_QUIC" --hosts "$n" --first "$first" --profile "$WORK/$2.toml" \
      --runtime "$3" --state-dir "$WORK/$1-$first"
    F_PIDS+=("$LAST_PID") F_DIRS+=("$WORK/$1-$first")
    first=$((first + n))
  done
}

loadgen() { # COUNT BODY IDS_FILE
  "$BIN/examples/loadgen" --url "$C_URL" --token "$ADMIN" --count "$1" \
    --concurrency "$CONCURRENCY" --body "$2" --ids "$3"
}

body() { echo "{\"gpu\":{\"models\":[\"$1\"],\"count\":1},\"billing\":{\"mode\":\"regular\"},\"command\":[\"sleep\",\"infinity\"]}"; }

build() {
  log "building $PROFILE binaries, the load generator and the scheduler bench"
  cargo build "${CARGO_PROFILE[@]}" --bins
  cargo build "${CARGO_PROFILE[@]}" -p gpuspot-coordinator --example loadgen
  [[ " ${STAGES:-core} " != *" core "* ]] || cargo bench -p gpuspot-coordinator --bench scheduler --no-run
}

stage_core() {
  STAGE=core
  log "core: scheduler alone, 10,000 hosts"
  local out
  out="$(timeout 300 cargo bench -q -p gpuspot-coordinator --bench scheduler -- --hosts 10000 | grep placements_per_s)"
  log "$out"
  local rate
  rate="$(kv "$out" placements_per_s)"
  row "scheduler core placements/s (10,000 hosts, 1-8 GPUs)" "$rate" ">= 20000" "$(met "$rate" '>=' 20000)"
}

stage_small() {
  STAGE=small
  log "small: $SMALL fleet hosts + one real agent"
  coordinator small "$WORK/load.toml"
  sleep 2
  local base
  base="$(kv "$("${UTIL[@]}" rss "$C_PID")" rss_kib)"
  fleets small h100 fake "$SMALL"
  local joined
  await "$SMALL hosts joined" wait-available "$C_URL" "$ADMIN" $((SMALL * 8)) 180
  joined="$(kv "$AWAITED" seconds)"
  row "$SMALL hosts joined and connected (s)" "$joined" "-" "-"
  GPUSPOT_JOIN_TOKEN="$C_TOKEN" start agent-a env RUST_LOG=warn "$BIN/gpuspot-agent" --coordinator "$C_QUIC" \
    --simulate "$ROOT/config/hosts/host-a.toml" --state-dir "$WORK/agent-a" --hostname bench-agent-a
  local agent=$LAST_PID
  await "the real agent joined" wait-available "$C_URL" "$ADMIN" $((SMALL * 8 + 8)) 60
  sleep 5
  log "small: measuring for ${WINDOW}s"
  local w
  w="$("${UTIL[@]}" window "$WINDOW" coord="$C_PID" agent="$agent" --fleet "${F_DIRS[@]}")"
  log "$w"
  report_window "$w" "$SMALL" "$base"
  local arss acores
  arss="$(awk -v k="$(kv "$w" agent_rss_kib)" 'BEGIN { printf "%.1f", k / 1024 }')"
  acores="$(kv "$w" agent_cores)"
  row "agent RSS, idle (MiB; gpuspot-agent --simulate host-a)" "$arss" "<= 30" "$(met "$arss" '<=' 30)"
  row "agent CPU, idle (cores)" "$acores" "-" "-"
  api_rate "$API_N" "$SMALL"
  stop "$agent" "${F_PIDS[@]}" "$C_PID"
}

# report_window OUTPUT HOSTS BASELINE_RSS_KIB
report_window() {
  local cores rss per_host hb
  cores="$(kv "$1" coord_cores)"
  rss="$(kv "$1" coord_rss_kib)"
  per_host="$(awk -v r="$rss" -v b="$3" -v n="$2" 'BEGIN { printf "%.1f", (r - b) / n }')"
  hb="$(kv "$1" heartbeats_per_s)"
  row "heartbeats/s ingested ($2 hosts, 5 s heartbeat)" "$hb" "-" "-"
  if [ "$2" -ge 10000 ]; then
    row "coordinator CPU, $2 hosts connected (cores)" "$cores" "< 0.5" "$(met "$cores" '<=' 0.5)"
  else
    row "coordinator CPU, $2 hosts connected (cores)" "$cores" "-" "-"
  fi
  row "coordinator memory per host, $2 hosts (KiB; RSS $((rss / 1024)) MiB)" "$per_host" "<= 20" "$(met "$per_host" '<=' 20)"
}

# api_rate COUNT HOSTS: POSTs COUNT instances; all must reach running.
api_rate() {
  log "API: $1 POST /v1/instances, $CONCURRENCY connections"
  local out rate
  out="$(loadgen "$1" "$(body H100)" "$WORK/ids-$2.txt")"
  log "$out"
  [ "$(kv "$out" failed)" = 0 ] || fail "API: some requests failed: $out"
  rate="$(kv "$out" per_s)"
  local ran
  await "API: all $1 instances running" wait-running "$C_URL" "$ADMIN" "$WORK/ids-$2.txt" 300
  ran="$(kv "$AWAITED" seconds)"
  log "API: all $1 running ${ran}s after the last 202"
  if [ "$2" = "$SMALL" ]; then
    row "API placements/s, end to end ($2 hosts; all reached running)" "$rate" ">= 2000" "$(met "$rate" '>=' 2000)"
  else
    row "API placements/s while creating $1 instances ($2 hosts)" "$rate" ">= 2000" "$(met "$rate" '>=' 2000)"
  fi
}

stage_notice() {
  STAGE=notice
  local hosts=$((NOTICE_FAKE + NOTICE_PROC))
  log "notice: $NOTICE_FAKE fake A100 hosts + $NOTICE_PROC process-runtime H100 hosts"
  coordinator notice "$WORK/notice.toml"
  fleets nfake a100 fake "$NOTICE_FAKE"
  local fake=("${F_PIDS[@]}")
  fleets nproc h100 process "$NOTICE_PROC"
  local proc=("${F_PIDS[@]}")
  await "$hosts hosts joined" wait-available "$C_URL" "$ADMIN" $((hosts * 8)) 180
  loadgen $((NOTICE_FAKE * 4)) "$(body A100)" "$WORK/ids-notice.txt" >/dev/null
  await "the fake hosts' instances running" wait-running "$C_URL" "$ADMIN" "$WORK/ids-notice.txt" 120
  local out p50 p99
  out="$(timeout 300 python3 "$ROOT/scripts/bench_notice.py" --attach "$C_URL" --token "$ADMIN" \
    --model H100 --count $((NOTICE_PROC * 8)) --notice-s 20)" || fail "bench_notice.py: $out"
  log "$out"
  p50="$(kv "$out" notice_p50_ms)"
  p99="$(kv "$out" notice_p99_ms)"
  row "notice latency p50 (ms; $hosts hosts, $((NOTICE_PROC * 8)) notices)" "$p50" "-" "-"
  row "notice latency p99 (ms; $hosts hosts, $((NOTICE_PROC * 8)) notices)" "$p99" "<= 50" "$(met "$p99" '<=' 50)"
  stop "${proc[@]}" "${fake[@]}" "$C_PID"
}

stage_big() {
  STAGE=big
  log "big: $BIG fleet hosts"
  coordinator big "$WORK/load.toml"
  sleep 2
  local base joined
  base="$(kv "$("${UTIL[@]}" rss "$C_PID")" rss_kib)"
  fleets big h100 fake "$BIG"
  await "$BIG hosts joined" wait-available "$C_URL" "$ADMIN" $((BIG * 8)) 420
  joined="$(kv "$AWAITED" seconds)"
  row "$BIG hosts joined and connected (s)" "$joined" "-" "-"
  sleep 5
  log "big: measuring for ${WINDOW}s"
  local w
  w="$("${UTIL[@]}" window "$WINDOW" coord="$C_PID" --fleet "${F_DIRS[@]}")"
  log "$w"
  report_window "$w" "$BIG" "$base"
  api_rate "$BIG_INSTANCES" "$BIG"
  restart
  stop "${F_PIDS[@]}" "$C_PID"
}

restart() {
  STAGE=restart
  log "restart: SIGKILL the coordinator, start it again on the same data dir and ports"
  local http="${C_URL#http://}" quic="$C_QUIC"
  kill -KILL -- "-$C_PID"
  sleep 0.2
  local t0=$SECONDS
  coordinator big "$WORK/load.toml" "$http" "$quic"
  # Free units first (cheap to poll), then every host connected (a lost host's full units
  # would look the same), then every instance still running.
  await "the instances' units taken again" wait-available "$C_URL" "$ADMIN" $((BIG * 8 - BIG_INSTANCES)) 300
  await "$BIG hosts connected again" wait-hosts "$C_URL" "$ADMIN" "$BIG" 120
  local total=$((SECONDS - t0))
  local hosts inst
  hosts="$("${UTIL[@]}" hosts "$C_URL" "$ADMIN")"
  inst="$("${UTIL[@]}" instances "$C_URL" "$ADMIN" "$WORK/ids-$BIG.txt")"
  log "restart: ${total}s; $hosts; $inst"
  local ok=yes
  [ "$(kv "$hosts" connected)" = "$BIG" ] && [ "$(kv "$inst" running)" = "$BIG_INSTANCES" ] || ok=NO
  row "restart: $BIG hosts back, $BIG_INSTANCES instances running (s)" "$total" "-" "$ok"
  [ "$ok" = yes ] || fail "after the restart: $hosts; $inst"
}

main() {
  write_files
  build
  local stage
  for stage in ${STAGES:-core small notice big}; do "stage_$stage"; done
}

main
