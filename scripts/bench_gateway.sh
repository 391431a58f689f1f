#!/usr/bin/env bash
# The gateway benchmark (docs/contracts.md#serving): builds the release harness, then starts a coordinator
# with its gateway and two simulated hosts on 127.0.0.1 and prints `metric | value` lines:
# latency at 200 req/s and most req/s, direct to a replica and through the gateway, and the
# failed requests of a steady 100 req/s load through 10 reclaims with notice (target: 0).
#
#   scripts/bench_gateway.sh                 # ~4 minutes on 2 cores
#   RECLAIMS=3 SECONDS_PER_RUN=5 scripts/bench_gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p gpuspot-e2e --bins
exec target/release/bench-gateway --reclaims "${RECLAIMS:-10}" --seconds "${SECONDS_PER_RUN:-10}"
