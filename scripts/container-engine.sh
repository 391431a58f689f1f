#!/usr/bin/env bash
# Starts (idempotently) a Podman service that serves the Docker Engine API on a unix socket,
# and builds the local test image when it is missing (no registry is reachable from CI).
#
#   scripts/container-engine.sh [--socket PATH] [--idle SECONDS] [--image NAME]
#
# Prints two lines: `engine=unix:///PATH` and `image=NAME`. Defaults: socket
# /run/gpuspot-test/podman.sock, image localhost/gpuspot-test:2, idle 900 (the service exits
# by itself after that many seconds without a client; 0 keeps it up forever, for a dev host).
#
# Why this containers.conf (checked on Debian 12 / Podman 4.3.1): crun fails under hybrid
# cgroups (cgroup v1 + unified), so runc; the default ulimits ask for more than the hard
# nofile limit here (20000), so nofile 1024 / nproc 4096; cgroupfs because there is no
# systemd; events go to a file where journald is missing.
#
# The image: busybox-static plus bash and curl (with the libraries ldd names) copied from the
# host, so that guests can run the seed's watcher script (`curl --unix-socket`) unchanged.
# Bump the tag when its contents change. Needs root, podman, runc, busybox-static, curl, bash.
set -euo pipefail

socket=/run/gpuspot-test/podman.sock
idle=900
image=localhost/gpuspot-test:2
while [ $# -gt 0 ]; do
    case "$1" in
        --socket) socket=$2; shift 2 ;;
        --idle) idle=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        *) echo "usage: $0 [--socket PATH] [--idle SECONDS] [--image NAME]" >&2; exit 2 ;;
    esac
done

dir=$(dirname "$socket")
mkdir -p "$dir"
conf="$dir/containers.conf"
events=file
[ -S /run/systemd/journal/socket ] && events=journald
cat >"$conf.new" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "$events"
EOF
mv "$conf.new" "$conf"
export CONTAINERS_CONF="$conf"

# One caller at a time: parallel test binaries all run this script at once.
exec 9>"$dir/lock"
flock 9

alive() {
    curl -sf --max-time 5 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1
}

start_service() {
    rm -f "$socket"
    # setsid: the service is not in the caller's process group, so a test harness that kills
    # its own group leaves the shared service (and the containers other tests run) alone.
    # From /: conmon needs the service's working directory, and the caller's (a test's
    # temporary directory, a checkout) may be deleted while the service lives on.
    (cd / && exec setsid podman system service --time="$idle" "unix://$socket" \
        >>"$dir/service.log" 2>&1 </dev/null 9>&-) 9>&- &
    for _ in $(seq 1 200); do
        alive && return 0
        sleep 0.1
    done
    echo "podman system service did not answer on $socket; its log:" >&2
    tail -n 30 "$dir/service.log" >&2
    exit 1
}

build_image() {
    local root
    root=$(mktemp -d)
    trap 'rm -rf "$root"' RETURN
    mkdir -p "$root"/{bin,usr/bin,etc,tmp,root,data,run/gpuspot}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    for binary in /usr/bin/bash /usr/bin/curl; do
        rm -f "$root/bin/$(basename "$binary")"
        cp "$binary" "$root/bin/"
        # Each library at the path the loader looks for, symlinks resolved.
        for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar -C "$root" -c . | podman import --quiet \
        --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin:/usr/bin' - "$image" >/dev/null
}

alive || start_service
podman image exists "$image" || build_image
echo "engine=unix://$socket"
echo "image=$image"
