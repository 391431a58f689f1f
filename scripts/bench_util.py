#!/usr/bin/env python3
"""Helpers for scripts/bench.sh: polling the API, and measuring processes from /proc.

  wait-available URL TOKEN UNITS TIMEOUT   seconds until GET /v1/pools shows UNITS free units
                                           in all (all hosts connected, nothing else changed)
  hosts URL TOKEN                          `connected=N total=M`
  wait-hosts URL TOKEN N TIMEOUT           seconds until GET /v1/hosts shows N connected
  instances URL TOKEN [IDS_FILE]           `total=N running=M other=K` (of IDS_FILE's ids)
  wait-running URL TOKEN IDS_FILE TIMEOUT  seconds until every id is running
  window SECONDS NAME=PID... [--fleet DIR...]
        CPU (cores, from utime+stime) and RSS (KiB, VmRSS at the end) of each process over
        the window, and heartbeats/s sent by the fleets whose state dirs are given
  rss PID                                  VmRSS in KiB
Every command prints `key=value` pairs on one line."""
import json, os, re, sys, time, urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def next_page(link):
    """The path of a `Link: <PATH>; rel="next"` header (lists come a page at a time), or None."""
    match = re.match(r'\s*<([^>]+)>;\s*rel="next"', link or "")
    return match.group(1) if match else None


def api(url, token, path, timeout=120):
    """GET `path`; a list is read to its end, following the `Link` pages."""
    answer = None
    while path:
        req = urllib.request.Request(url + path)
        req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            page, path = json.loads(r.read()), next_page(r.headers.get("Link"))
        answer = page if answer is None else answer + page
    return answer


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def heartbeats(dirs):
    total = 0
    for d in dirs:
        with open(os.path.join(d, "fleet-stats.json")) as f:
            total += json.load(f)["heartbeats"]
    return total


def available(url, token):
    return sum(p["available"] for p in api(url, token, "/v1/pools", timeout=10))


def wait_available(url, token, units, timeout):
    start = time.time()
    while time.time() - start < timeout:
        try:
            if available(url, token) == units:
                return print(f"seconds={time.time() - start:.1f}")
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"timed out after {timeout}s waiting for {units} free units")


def wait_hosts(url, token, n, timeout):
    start = time.time()
    while time.time() - start < timeout:
        try:
            if sum(h["state"] == "connected" for h in api(url, token, "/v1/hosts")) == n:
                return print(f"seconds={time.time() - start:.1f}")
        except OSError:
            pass
        time.sleep(2)
    sys.exit(f"timed out after {timeout}s waiting for {n} connected hosts")


def wait_running(url, token, ids_file, timeout):
    ids = set(open(ids_file).read().split())
    start = time.time()
    while time.time() - start < timeout:
        ours = [i for i in api(url, token, "/v1/instances") if i["id"] in ids]
        ended = [i for i in ours if i["state"] in ("failed", "terminated")]
        if ended:
            i = ended[0]
            sys.exit(f"{len(ended)} instances ended, e.g. {i['id']} {i['state']}: {i.get('reason')}")
        if len(ours) == len(ids) and all(i["state"] == "running" for i in ours):
            return print(f"seconds={time.time() - start:.1f}")
        time.sleep(2)
    sys.exit(f"timed out after {timeout}s waiting for {len(ids)} instances to run")


def window(seconds, procs, fleets):
    pids = dict(p.split("=") for p in procs)
    before = {n: cpu_s(p) for n, p in pids.items()}
    beats = heartbeats(fleets) if fleets else 0
    time.sleep(seconds)
    out = []
    for name, pid in pids.items():
        out.append(f"{name}_cores={(cpu_s(pid) - before[name]) / seconds:.3f}")
        out.append(f"{name}_rss_kib={rss_kib(pid)}")
    if fleets:
        out.append(f"heartbeats_per_s={(heartbeats(fleets) - beats) / seconds:.0f}")
    print(" ".join(out))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wait-available":
        wait_available(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "hosts":
        hosts = api(args[0], args[1], "/v1/hosts")
        print(f"connected={sum(h['state'] == 'connected' for h in hosts)} total={len(hosts)}")
    elif cmd == "wait-hosts":
        wait_hosts(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "instances":
        ids = set(open(args[2]).read().split()) if len(args) > 2 else None
        states = [i["state"] for i in api(args[0], args[1], "/v1/instances") if ids is None or i["id"] in ids]
        running = sum(s == "running" for s in states)
        print(f"total={len(states)} running={running} other={len(states) - running}")
    elif cmd == "wait-running":
        wait_running(args[0], args[1], args[2], float(args[3]))
    elif cmd == "window":
        fleets = args[args.index("--fleet") + 1:] if "--fleet" in args else []
        procs = args[1:args.index("--fleet")] if "--fleet" in args else args[1:]
        window(float(args[0]), procs, fleets)
    elif cmd == "rss":
        print(f"rss_kib={rss_kib(args[0])}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
