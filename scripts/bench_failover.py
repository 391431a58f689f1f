#!/usr/bin/env python3
"""Failover benchmark (issue 28): two coordinators on a private PostgreSQL, a fleet of HOSTS
simulated hosts (`gpuspot-agent fleet --runtime fake`, one session per host, no processes)
that knows both, INSTANCES instances placed, and a steady create load; then `kill -9` of
the leader. Prints how long until the standby acknowledged a create, until every host was
connected to it, and how many creates failed in between. Then the creates/s a client gets
durable (202 after the commit) from one coordinator on PostgreSQL and on SQLite, side by
side with the same fleet size. Everything runs on 127.0.0.1 in a temp dir, removed at the
end with the processes started here. Needs root (initdb runs as the `postgres` user).

    scripts/bench_failover.sh [HOSTS] [INSTANCES]       (default 1000 x 5000)
    LEASE=10s RATE=20 CONCURRENCY=16 SECONDS=10 BIN=target/debug scripts/bench_failover.sh
"""
import json, os, pwd, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_util  # noqa: E402  (its Link-page reader)

HOSTS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
INSTANCES = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
BIN = os.path.abspath(os.environ.get("BIN", os.path.join(os.path.dirname(__file__), "..", "target", "debug")))
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
LEASE = os.environ.get("LEASE", "10s")
RATE = float(os.environ.get("RATE", "20"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
SECONDS = float(os.environ.get("SECONDS", "10"))
ADMIN = f"bench-admin-{os.getpid()}"
PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config", "hosts", "host-a.toml")
CONFIG = """[timers]
heartbeat = "5s"
host_lost_after = "60s"

[[pools]]
model = "RTX 5090"
list_price = "0.90"
"""
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, path, body=None, timeout=30):
    """(status, JSON answer); a connection failure is status 0."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
    req.add_header("Authorization", f"Bearer {ADMIN}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return 0, None


def wait(what, check, timeout=600):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def postgres(work):
    """initdb and start a server as `postgres`; its URL."""
    root = os.path.join(work, "pg")
    os.mkdir(root)
    user = pwd.getpwnam("postgres")
    os.chown(root, user.pw_uid, user.pw_gid)
    as_pg = dict(user=user.pw_uid, group=user.pw_gid, cwd=root)
    subprocess.run([f"{PG_BIN}/initdb", "-D", f"{root}/data", "-U", "gpuspot", "-A", "trust",
                    "--locale=C", "-E", "UTF8", "--no-sync"], check=True, capture_output=True, **as_pg)
    port = free_port()
    log = open(os.path.join(work, "postgres.log"), "w")
    PROCS.append(subprocess.Popen([f"{PG_BIN}/postgres", "-D", f"{root}/data", "-p", str(port), "-h",
                                   "127.0.0.1", "-c", f"unix_socket_directories={root}", "-c",
                                   "max_connections=200"], stdout=log, stderr=log, **as_pg))
    wait("PostgreSQL", lambda: subprocess.run([f"{PG_BIN}/pg_isready", "-q", "-h", "127.0.0.1", "-p",
                                               str(port)]).returncode == 0, 60)
    subprocess.run([f"{PG_BIN}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "gpuspot", "gpuspot"],
                   check=True, **as_pg)
    return f"postgres://gpuspot@127.0.0.1:{port}/gpuspot"


def coordinator(work, name, store):
    """Starts one on ephemeral ports; (process, API URL, QUIC address, its dir)."""
    d = os.path.join(work, name)
    os.mkdir(d)
    with open(os.path.join(d, "c.toml"), "w") as f:
        f.write(CONFIG + f'\n[store]\nurl = "{store}"\n\n[ha]\nlease = "{LEASE}"\n')
    args = [f"{BIN}/gpuspot-coordinator", "--config", f"{d}/c.toml", "--data-dir", f"{d}/data"]
    log = open(os.path.join(d, "log"), "w")
    env = dict(os.environ, GPUSPOT_ADMIN_TOKEN=ADMIN)
    proc = subprocess.Popen(args + ["--http", "127.0.0.1:0", "--quic", "127.0.0.1:0"], stdout=log,
                            stderr=log, env=env)
    PROCS.append(proc)
    endpoints = os.path.join(d, "data", "endpoints.json")
    wait(f"{name} to start", lambda: os.path.exists(endpoints) and os.path.getsize(endpoints) > 0, 120)
    ends = json.load(open(endpoints))
    url = f"http://{ends['http']}"
    wait(f"{name} to answer", lambda: call(url, "/healthz")[0] == 200, 120)
    return proc, url, ends["quic"], args


def fleet(work, coordinators, token_args):
    token = subprocess.run(token_args + ["token", "create", "--uses", str(HOSTS), "--ttl", "1h"],
                           check=True, capture_output=True, text=True).stdout.strip()
    log = open(os.path.join(work, "fleet.log"), "w")
    env = dict(os.environ, GPUSPOT_JOIN_TOKEN=token)
    PROCS.append(subprocess.Popen([f"{BIN}/gpuspot-agent", "fleet", "--coordinator", coordinators,
                                   "--hosts", str(HOSTS), "--profile", PROFILE, "--runtime", "fake",
                                   "--state-dir", os.path.join(work, "fleet")],
                                  stdout=log, stderr=log, env=env))


def connected(url):
    try:
        hosts = bench_util.api(url, ADMIN, "/v1/hosts", timeout=60)
    except OSError:
        return 0
    return sum(1 for h in hosts if h.get("state") == "connected")


def request(n):
    return {"name": f"b-{n}", "gpu": {"models": ["RTX 5090"], "count": 1},
            "billing": {"mode": "regular"}, "command": ["sleep", "1d"]}


def place(url, count):
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        codes = list(pool.map(lambda n: call(url, "/v1/instances", request(n))[0], range(count)))
    return sum(1 for c in codes if c == 202)


def failover(work):
    store = postgres(work)
    a, a_url, a_quic, a_args = coordinator(work, "a", store)
    b, b_url, b_quic, _ = coordinator(work, "b", store)
    fleet(work, f"{a_quic},{b_quic}", a_args)
    joined = wait(f"{HOSTS} hosts", lambda: connected(a_url) >= HOSTS)
    placed = place(a_url, INSTANCES)
    print(f"hosts={HOSTS} joined_s={joined:.1f} instances={placed}", flush=True)
    log, stop = [], threading.Event()

    def load():
        n = 0
        while not stop.is_set():
            for url in (a_url, b_url):
                status, _ = call(url, "/v1/instances", request(INSTANCES + n), timeout=10)
                if status == 202:
                    break
            log.append((time.monotonic(), url, status))
            n += 1
            time.sleep(1 / RATE)

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(3)
    a.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    wait("a create acknowledged by the standby",
         lambda: any(t > killed and u == b_url and s == 202 for t, u, s in list(log)))
    acked = next(t for t, u, s in log if t > killed and u == b_url and s == 202) - killed
    wait("every host on the new leader", lambda: connected(b_url) >= HOSTS)
    reconnected = time.monotonic() - killed
    stop.set()
    thread.join()
    failed = sum(1 for t, _, s in log if t > killed and s != 202)
    print(f"failover: lease={LEASE} acknowledged_after_s={acked:.1f} hosts_back_after_s={reconnected:.1f} "
          f"failed_creates={failed} of {sum(1 for t, _, _ in log if t > killed)}", flush=True)
    b.send_signal(signal.SIGKILL)
    PROCS[-1].send_signal(signal.SIGKILL)  # the fleet


def throughput(work, name, store):
    """Creates/s through one coordinator on `store`, after HOSTS hosts joined."""
    proc, url, quic, args = coordinator(work, name, store)
    fleet(os.path.join(work, name), quic, args)
    wait(f"{HOSTS} hosts on {name}", lambda: connected(url) >= HOSTS)
    start = time.monotonic()
    done, n = 0, 0
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        while time.monotonic() - start < SECONDS:
            batch = list(pool.map(lambda i: call(url, "/v1/instances", request(i))[0], range(n, n + CONCURRENCY)))
            done += sum(1 for c in batch if c == 202)
            n += CONCURRENCY
    rate = done / (time.monotonic() - start)
    proc.send_signal(signal.SIGKILL)
    PROCS[-1].send_signal(signal.SIGKILL)  # its fleet
    return rate


def main():
    if os.geteuid() != 0:
        sys.exit("run as root: initdb runs as the postgres user")
    work = tempfile.mkdtemp(prefix="bench-failover-")
    os.chmod(work, 0o755)
    try:
        failover(work)
        fresh = os.path.join(work, "fresh")
        os.mkdir(fresh)
        os.chmod(fresh, 0o755)
        pg_rate = throughput(fresh, "on-postgres", postgres(fresh))
        sqlite_rate = throughput(work, "on-sqlite", "sqlite")
        print(f"creates_per_s: postgres={pg_rate:.0f} sqlite={sqlite_rate:.0f} "
              f"ratio={pg_rate / sqlite_rate:.2f} (concurrency {CONCURRENCY}, {HOSTS} hosts)", flush=True)
    finally:
        for p in PROCS:
            if p.poll() is None:
                # PostgreSQL stops fast on SIGINT; everything else is killed.
                p.send_signal(signal.SIGINT if p.args[0].endswith("/postgres") else signal.SIGKILL)
        for p in PROCS:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
