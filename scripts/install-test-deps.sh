#!/usr/bin/env bash
# Installs the system packages the test suite drives for real (DESIGN §14): Podman with runc
# for container guests (crun fails under hybrid cgroups), busybox-static for the locally
# built test image (no registry is reachable), OpenSSH's client and sshpass for the SSH front
# door, python3-aiosmtpd (its `aiosmtpd` command) as the real mail server of the mail tests,
# prometheus for `promtool check metrics` on both /metrics endpoints, systemd for
# `systemd-analyze verify` of the units in scripts/systemd, and chromium with chromium-driver
# (its chromedriver) for the dashboard test in a real headless browser.
# Idempotent; needs root (or sudo) and Debian's apt.
set -euo pipefail
PACKAGES=(podman runc busybox-static curl bash e2fsprogs util-linux openssh-client sshpass python3-aiosmtpd prometheus systemd chromium chromium-driver)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
