#!/usr/bin/env python3
"""Notice latency: from the coordinator's decision to reclaim a spot instance to the moment
its guest sees spot_termination_time on its metadata socket.

A `gpuspot dev` cluster of N simulated hosts (8 GPUs each) is filled with spot instances at a
low bid; each guest long-polls its socket (`/vm/events?wait=`) and logs the wall-clock time it
first sees a termination time. Then as many higher bids arrive; the next auction reclaims every
low bid at once (hold 1 s). The decision time is termination_time - notice_period (the
coordinator sets one from the other), so latency = seen - decided, on one machine's clock.
Usage: scripts/bench_notice.py [--hosts 16] [--rounds 1]   (needs a release build)"""
import argparse, json, os, signal, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime

ADMIN = "bench-admin-token"
NOTICE_S = 20
GUEST = r'''
while true; do
  body=$(curl -s --max-time 70 --unix-socket "$GPUSPOT_METADATA_SOCKET" "http://localhost/vm/events?wait=60")
  case "$body" in *'"spot_termination_time":"'*) echo "SEEN $(date +%s.%N)"; exec sleep 600;; esac
done
'''

def api(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    req.add_header("Authorization", f"Bearer {ADMIN}")
    if body:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        txt = r.read().decode()
        return json.loads(txt) if txt.startswith(("{", "[")) else txt

def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except OSError:
            pass  # not up yet
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")

def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--bin", default="target/release/gpuspot")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gpuspot-bench-notice-")
    with open(f"{work}/hosts.toml", "w") as f:
        for i in range(args.hosts):
            f.write(f'[[hosts]]\nname = "bench-{i:03}"\nmodel = "NVIDIA H100 80GB HBM3"\ngpu_count = 8\n'
                    f'cpu_cores = 64\nmemory_gib = 512\n\n')
    with open(f"{work}/config.toml", "w") as f:
        f.write(f'[timers]\nhold_period = "1s"\nnotice_period = "{NOTICE_S}s"\nprice_tick = "2s"\n'
                'heartbeat = "1s"\nhost_lost_after = "30s"\nkill_timeout = "2s"\n'
                '[[pools]]\nmodel = "H100"\nlist_price = "2.58"\n')
    port = 18680
    url = f"http://127.0.0.1:{port}"
    dev = subprocess.Popen([args.bin, "dev", "--http", f"127.0.0.1:{port}", "--quic", f"127.0.0.1:{port+1}",
                            "--data-dir", f"{work}/data", "--config", f"{work}/config.toml", "--hosts", f"{work}/hosts.toml"],
                           stdout=open(f"{work}/dev.log", "w"), stderr=subprocess.STDOUT,
                           env=dict(os.environ, GPUSPOT_ADMIN_TOKEN=ADMIN, RUST_LOG="warn"), start_new_session=True)
    try:
        wait(lambda: len([h for h in api(f"{url}/v1/hosts") if h["state"] == "connected"]) == args.hosts, 60, "hosts")
        n = args.hosts * 8
        low = [api(f"{url}/v1/instances", "POST", {"gpu": {"models": ["H100"], "count": 1},
               "billing": {"mode": "spot", "max_price": "0.30"}, "command": ["bash", "-c", GUEST]})["id"] for _ in range(n)]
        wait(lambda: sum(i["state"] == "running" for i in api(f"{url}/v1/instances")) == n, 120, "low bids running")
        time.sleep(2)  # hold (1 s) over, and every guest's long-poll armed
        for _ in range(n):
            api(f"{url}/v1/instances", "POST", {"gpu": {"models": ["H100"], "count": 1},
                "billing": {"mode": "spot", "max_price": "0.90"}, "command": ["sleep", "600"]})
        wait(lambda: sum(i["state"] == "termination_scheduled" for i in api(f"{url}/v1/instances")) == n, 60, "notices")
        lat = []
        def seen_all():
            lat.clear()
            for iid in low:
                inst = api(f"{url}/v1/instances/{iid}")
                logs = api(f"{url}/v1/instances/{iid}/logs")
                seen = [l for l in str(logs).splitlines() if l.startswith("SEEN ")]
                if not seen:
                    return False
                decided = ts(inst["termination_time"]) - NOTICE_S
                lat.append((float(seen[0].split()[1]) - decided) * 1000)
            return True
        wait(seen_all, NOTICE_S, "every guest to see its notice")
        lat.sort()
        pct = lambda p: lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
        print(f"notice latency over {len(lat)} notices ({args.hosts} hosts, one auction): "
              f"p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms, max {lat[-1]:.1f} ms")
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", work])

if __name__ == "__main__":
    main()
