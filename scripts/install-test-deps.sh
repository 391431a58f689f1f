#!/usr/bin/env bash
# Installs the system packages the test suite drives for real (docs/contracts.md#guests): Podman with runc
# for container guests (crun fails under hybrid cgroups), busybox-static for the locally
# built test image (no registry is reachable), OpenSSH's client and sshpass for the SSH front
# door, python3-aiosmtpd (its `aiosmtpd` command) as the real mail server of the mail tests,
# prometheus for `promtool check metrics` on both /metrics endpoints, systemd for
# `systemd-analyze verify` of the units in scripts/systemd, chromium with chromium-driver
# (its chromedriver) for the dashboard test in a real headless browser, and python3-venv for
# openapi-spec-validator (tests/tests/openapi.rs): Debian bookworm does not package it, so it
# comes from PyPI into its own venv at $OPENAPI_VENV (default /opt/gpuspot-test-venv).
# slirp4netns gives each process guest its own network (tests/tests/process_network.rs); jq
# reads JSON in the README walk-through that tests/tests/walkthrough.rs runs. postgresql is
# the real database of the standby-coordinator tests (tests/src/postgres.rs starts a private
# server per test from /usr/lib/postgresql/15/bin).
# Idempotent; needs root (or sudo) and Debian's apt.
set -euo pipefail
PACKAGES=(podman runc iptables slirp4netns busybox-static curl jq bash e2fsprogs util-linux openssh-client sshpass python3-aiosmtpd prometheus systemd chromium chromium-driver python3-venv postgresql)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
venv=${OPENAPI_VENV:-/opt/gpuspot-test-venv}
if ! "$venv/bin/openapi-spec-validator" --help >/dev/null 2>&1; then
    echo "installing openapi-spec-validator into $venv"
    $SUDO python3 -m venv "$venv"
    # 0.7 and later validate OpenAPI 3.1, which utoipa 5 writes.
    $SUDO "$venv/bin/pip" install --quiet 'openapi-spec-validator>=0.7,<1'
fi
