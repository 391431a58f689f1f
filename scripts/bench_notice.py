#!/usr/bin/env python3
"""Notice latency: from the coordinator's decision to reclaim a spot instance to the moment
the notice can be read on its guest's metadata socket.

Spot instances at a low bid are started as real processes (each prints its
GPUSPOT_METADATA_SOCKET and sleeps). One observer process long-polls every guest's socket
(`/vm/events?wait=`) and stamps the wall-clock time at which each first shows a
spot_termination_time. Then as many higher bids arrive; the next auction reclaims every low
bid at once (hold 1 s). The decision time is termination_time - notice_period (the
coordinator sets one from the other), so latency = seen - decided, on one machine's clock.

One observer stands in for the guests' own `curl` loops: a hundred guests forking curl and
date at the same instant would measure a 2-core machine's fork storm, not the notice path.

Standalone:  scripts/bench_notice.py [--hosts 16]         (a `gpuspot dev` cluster)
Attached:    scripts/bench_notice.py --attach URL --token T --model H100 --count 128
             --notice-s 20   (a running coordinator whose price tick is short and whose
             hold is 1 s; the hosts of --model must run the process runtime)
Prints one line: `notice_p50_ms=… notice_p99_ms=… notice_max_ms=… notices=…`."""
import argparse, asyncio, json, os, signal, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime

ADMIN = "bench-admin-token"
GUEST = 'echo "SOCK=$GPUSPOT_METADATA_SOCKET"; exec sleep 600'


class Api:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def __call__(self, path, method="GET", body=None, raw=False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, method=method, data=data)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as r:
            txt = r.read().decode()
        return txt if raw else json.loads(txt)


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


async def first_notice(path, seen, iid):
    """Long-polls one guest socket until it shows a termination time; stamps that moment."""
    while iid not in seen:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            while iid not in seen:
                writer.write(b"GET /vm/events?wait=60 HTTP/1.1\r\nHost: localhost\r\n\r\n")
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                lengths = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                           if l.lower().startswith(b"content-length:")]
                body = await reader.readexactly(lengths[0] if lengths else 0)
                if b'"spot_termination_time":"' in body:
                    seen[iid] = time.time()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            await asyncio.sleep(0.05)
        finally:
            writer.close()


def observe(sockets, seen, ready):
    async def main():
        tasks = [asyncio.create_task(first_notice(p, seen, i)) for i, p in sockets.items()]
        await asyncio.sleep(0.5)
        ready.set()
        await asyncio.gather(*tasks)
    asyncio.run(main())


def measure(api, model, count, notice_s):
    """Runs one reclamation round on `model`; returns the sorted latencies in ms."""
    import threading
    spot = lambda bid, cmd: {"gpu": {"models": [model], "count": 1},
                             "billing": {"mode": "spot", "max_price": bid}, "command": cmd}
    # Above a full pool's price (busy_ratio 0.2 of 2.58 = 0.516): otherwise docs/contracts.md#market reclaims
    # the low bids for price as soon as the pool fills, before the slowest of them runs.
    low = [api("/v1/instances", "POST", spot("0.60", ["sh", "-c", GUEST]))["id"] for _ in range(count)]
    ids = set(low)
    running = lambda: sum(i["state"] == "running" for i in api("/v1/instances") if i["id"] in ids)
    wait(lambda: running() == count, 120, "low bids running")
    sockets = {}
    def socks():
        for iid in low:
            if iid not in sockets:
                out = api(f"/v1/instances/{iid}/logs", raw=True)
                sockets.update({iid: l[5:] for l in out.splitlines() if l.startswith("SOCK=")})
        return len(sockets) == count
    wait(socks, 30, "every guest's socket path")
    seen, ready = {}, threading.Event()
    watcher = threading.Thread(target=observe, args=(sockets, seen, ready), daemon=True)
    watcher.start()
    ready.wait(10)
    time.sleep(1.5)  # hold (1 s) over, every long-poll armed
    for _ in range(count):
        api("/v1/instances", "POST", spot("0.90", ["sleep", "600"]))
    wait(lambda: len(seen) == count, notice_s, "every guest to see its notice")
    lat = []
    for iid in low:
        decided = ts(api(f"/v1/instances/{iid}")["termination_time"]) - notice_s
        lat.append((seen[iid] - decided) * 1000)
    return sorted(lat)


def report(lat):
    pct = lambda p: lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
    print(f"notice_p50_ms={pct(50):.1f} notice_p99_ms={pct(99):.1f} "
          f"notice_max_ms={lat[-1]:.1f} notices={len(lat)}")


def standalone(args):
    notice_s = 20
    work = tempfile.mkdtemp(prefix="gpuspot-bench-notice-")
    with open(f"{work}/hosts.toml", "w") as f:
        for i in range(args.hosts):
            f.write(f'[[hosts]]\nname = "bench-{i:03}"\nmodel = "NVIDIA H100 80GB HBM3"\ngpu_count = 8\n'
                    f'cpu_cores = 64\nmemory_gib = 512\n\n')
    with open(f"{work}/config.toml", "w") as f:
        f.write(f'[timers]\nhold_period = "1s"\nnotice_period = "{notice_s}s"\nprice_tick = "2s"\n'
                'heartbeat = "1s"\nhost_lost_after = "30s"\nkill_timeout = "2s"\n'
                '[[pools]]\nmodel = "H100"\nlist_price = "2.58"\n')
    port = 18680
    api = Api(f"http://127.0.0.1:{port}", ADMIN)
    dev = subprocess.Popen([args.bin, "dev", "--http", f"127.0.0.1:{port}", "--quic", f"127.0.0.1:{port+1}",
                            "--data-dir", f"{work}/data", "--config", f"{work}/config.toml", "--hosts", f"{work}/hosts.toml"],
                           stdout=open(f"{work}/dev.log", "w"), stderr=subprocess.STDOUT,
                           env=dict(os.environ, GPUSPOT_ADMIN_TOKEN=ADMIN, RUST_LOG="warn"), start_new_session=True)
    try:
        wait(lambda: len([h for h in api("/v1/hosts") if h["state"] == "connected"]) == args.hosts, 60, "hosts")
        report(measure(api, "H100", args.hosts * 8, notice_s))
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", work])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--bin", default="target/release/gpuspot")
    ap.add_argument("--attach", help="URL of a running coordinator")
    ap.add_argument("--token", default=ADMIN)
    ap.add_argument("--model", default="H100")
    ap.add_argument("--count", type=int, default=128)
    ap.add_argument("--notice-s", type=int, default=20)
    args = ap.parse_args()
    if args.attach:
        report(measure(Api(args.attach, args.token), args.model, args.count, args.notice_s))
    else:
        standalone(args)


if __name__ == "__main__":
    main()
