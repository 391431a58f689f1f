#!/usr/bin/env bash
# Start-storm benchmark of real process guests (issue 26; see scripts/bench_starts.py):
#   scripts/bench_starts.sh [HOSTS] [GUESTS_PER_HOST]   default 1 x 256; needs root
#   BIN=DIR scripts/bench_starts.sh 8 256               binaries from DIR (default target/debug)
# Exits non-zero when not every guest ran or a host was ever not `connected`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/bench_starts.py "$@"
