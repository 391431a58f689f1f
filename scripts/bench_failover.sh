#!/usr/bin/env bash
# Failover benchmark of standby coordinators on PostgreSQL (issue 28; see
# scripts/bench_failover.py):
#   scripts/bench_failover.sh [HOSTS] [INSTANCES]      default 1000 x 5000; needs root
#   LEASE=10s RATE=20 CONCURRENCY=16 SECONDS=10 BIN=DIR scripts/bench_failover.sh 100 500
# Prints the time until the standby acknowledges creates after kill -9 of the leader, until
# every host is reconnected, the creates that failed in between, and creates/s on
# PostgreSQL vs SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/bench_failover.py "$@"
