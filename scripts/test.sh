#!/usr/bin/env bash
# The test command: installs the system packages the tests drive for real (Podman, runc,
# OpenSSH's client…; see scripts/install-test-deps.sh), then runs every test of the workspace.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
exec cargo test --workspace --locked "$@"
