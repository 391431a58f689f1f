#!/usr/bin/env python3
"""Start-storm benchmark (issue 26, docs/contracts.md#guests "Cost of a start"): one coordinator and
HOSTS real agents (`gpuspot-agent --simulate`, one GPU per guest, process runtime), then
GUESTS one-GPU `sleep` guests created at once; prints the time until all run, the agents'
CPU per start (their own threads and the helpers they waited for), their memory per guest,
whether every host stayed connected, and the per-step costs the agents log
(runtime::timing). Everything runs on 127.0.0.1 in a temp dir, removed at the end with the
guests, their mounts and the processes started here.

    scripts/bench_starts.sh [HOSTS] [GUESTS_PER_HOST]      (default 1 x 256)
    BIN=/path/to/target/debug scripts/bench_starts.sh       (other binaries: a baseline)
    ROUNDS=1 scripts/bench_starts.sh 8 256                   (only the round on an empty pool)
"""
import json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_util  # noqa: E402  (its Link-page reader)

HOSTS = int(sys.argv[1]) if len(sys.argv) > 1 else 1
PER_HOST = int(sys.argv[2]) if len(sys.argv) > 2 else 256
BIN = os.environ.get("BIN", os.path.join(os.path.dirname(__file__), "..", "target", "debug"))
TIMEOUT = float(os.environ.get("TIMEOUT", "600"))
TICK = os.sysconf("SC_CLK_TCK")
ADMIN = f"bench-admin-{os.getpid()}"
CONFIG = """[timers]
heartbeat = "500ms"
host_lost_after = "2s"
kill_timeout = "2s"

[[pools]]
model = "H100"
list_price = "2.58"
"""


def api(url, path, body=None, timeout=60):
    """POST `body`, or GET `path` (a list read to its end through its `Link` pages)."""
    data = json.dumps(body).encode() if body is not None else None
    answer = None
    while path:
        req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
        req.add_header("Authorization", f"Bearer {ADMIN}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            page, path = json.loads(r.read()), bench_util.next_page(r.headers.get("Link"))
        answer = page if answer is None or data else answer + page
    return answer


def items(answer):
    return answer["items"] if isinstance(answer, dict) and "items" in answer else answer


def cpu_s(pid):
    """utime + stime + cutime + cstime: the agent and the helpers it has waited for."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("Pss:"))


def helpers(work, agent_bin):
    """The agents' processes besides the guests: the agents, their watchers and inits
    (forks of the agent or a helper binary) and the guests' network helpers."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        # Helpers re-exec'd from the agent binary name no work dir: their binary tells.
        agent = exe.startswith(os.path.realpath(agent_bin))
        if agent or ("slirp4netns" in exe and work.encode() in cmd):
            found.append(int(pid))
    return found


BY_KIND = {}


def usage(pids):
    """CPU and PSS of `pids` in all; the PSS by process name goes to BY_KIND."""
    cpu = mem = 0
    BY_KIND.clear()
    for pid in pids:
        try:
            cpu += cpu_s(pid)
            pss = pss_kib(pid)
            kind = open(f"/proc/{pid}/comm").read().strip()
        except (OSError, StopIteration):
            continue
        mem += pss
        n, total = BY_KIND.get(kind, (0, 0))
        BY_KIND[kind] = (n + 1, total + pss)
    return cpu, mem


def cleanup(work, procs):
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
    marker = f"GPUSPOT_DATA_DIR={work}/".encode()
    for _ in range(3):
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if marker in open(f"/proc/{pid}/environ", "rb").read():
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.5)
    mounts = [l.split()[1] for l in open("/proc/self/mounts") if l.split()[1].startswith(work)]
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(work, ignore_errors=True)


def steps(logs):
    """Median wall/cpu microseconds of each start step the agents logged."""
    per = {}
    for text in logs:
        for line in text.splitlines():
            if "start steps" not in line:
                continue
            for name, wall, cpu in re.findall(r" ([a-z+]+)=(\d+)/(\d+)us", line):
                per.setdefault(name, []).append((int(wall), int(cpu)))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v), len(v))
            for k, v in per.items()}


def main():
    work = tempfile.mkdtemp(prefix="gpuspot-starts.")
    os.chmod(work, 0o711)
    procs = []
    try:
        run(work, procs)
    finally:
        cleanup(work, procs)


def start(procs, name, cmd, env, work):
    log = open(os.path.join(work, f"{name}.log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
                         start_new_session=True)
    procs.append(p)
    return p


def run(work, procs):
    coord = os.path.join(BIN, "gpuspot-coordinator")
    data = os.path.join(work, "coordinator")
    os.makedirs(data)
    open(os.path.join(work, "coordinator.toml"), "w").write(CONFIG)
    token = subprocess.check_output([coord, "--data-dir", data, "token", "create", "--uses", "1000"],
                                    text=True).strip()
    start(procs, "coordinator", [coord, "--config", os.path.join(work, "coordinator.toml"),
          "--data-dir", data, "--http", "127.0.0.1:0", "--quic", "127.0.0.1:0"],
          {"GPUSPOT_ADMIN_TOKEN": ADMIN, "RUST_LOG": "warn"}, work)
    endpoints = os.path.join(data, "endpoints.json")
    deadline = time.time() + 60
    while not (os.path.exists(endpoints) and os.path.getsize(endpoints)) and time.time() < deadline:
        time.sleep(0.2)
    ends = json.load(open(endpoints))
    url, quic = "http://" + ends["http"], ends["quic"]
    agents = []
    for h in range(HOSTS):
        profile = os.path.join(work, f"host-{h}.toml")
        open(profile, "w").write(f'name = "host-{h}"\nmodel = "H100"\ngpu_count = {PER_HOST}\n'
                                 f'gpu_memory_mib = 81920\ncpu_cores = {2 * PER_HOST}\n'
                                 f'memory_gib = {16 * PER_HOST}\n')
        first = 61000 + h * (PER_HOST + 8)
        agents.append(start(procs, f"agent-{h}", [os.path.join(BIN, "gpuspot-agent"),
                      "--coordinator", quic, "--simulate", profile, "--state-dir",
                      os.path.join(work, f"agent-{h}"), "--ports", f"{first}-{first + PER_HOST + 7}"],
                      {"GPUSPOT_JOIN_TOKEN": token,
                       "RUST_LOG": "warn,gpuspot_agent::runtime::timing=debug"}, work))
    deadline = time.time() + 120
    while time.time() < deadline:
        hosts = items(api(url, "/v1/hosts"))
        if sum(h["state"] == "connected" for h in hosts) == HOSTS:
            break
        time.sleep(0.5)
    time.sleep(2)
    failed = False
    labels = ("first round (empty disk pool)", "second round (disks reused)")
    for label in labels[: int(os.environ.get("ROUNDS", "2"))]:
        failed |= storm(url, work, agents, label)
        stop_all(url)
    if failed:
        sys.exit(1)


def stop_all(url):
    """Stops every instance and waits until they are over and their disks released."""
    for i in items(api(url, "/v1/instances")):
        if i["state"] not in ("terminated", "failed"):
            req = urllib.request.Request(url + f"/v1/instances/{i['id']}", method="DELETE")
            req.add_header("Authorization", f"Bearer {ADMIN}")
            urllib.request.urlopen(req, timeout=60).read()
    deadline = time.time() + 120
    while time.time() < deadline:
        states = [i["state"] for i in items(api(url, "/v1/instances"))]
        if all(s in ("terminated", "failed") for s in states):
            break
        time.sleep(0.5)
    time.sleep(5)


def storm(url, work, agents, label):
    before = [(cpu_s(a.pid), rss_kib(a.pid)) for a in agents]
    agent_bin = os.path.join(BIN, "gpuspot-agent")
    helpers_before = usage(helpers(work, agent_bin))
    logs_before = [len(open(os.path.join(work, f"agent-{h}.log")).read()) for h in range(HOSTS)]
    n = HOSTS * PER_HOST
    body = lambda i: {"name": f"s-{i}", "gpu": {"models": ["H100"], "count": 1},
                      "billing": {"mode": "regular"}, "command": ["sleep", "3600"],
                      "data_disk_gib": 1}
    began = time.time()
    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(lambda i: api(url, "/v1/instances", body(i))["id"], range(n)))
    created = time.time() - began
    lost, running = set(), 0
    while time.time() - began < TIMEOUT:
        hosts = items(api(url, "/v1/hosts"))
        lost |= {h["hostname"] for h in hosts if h["state"] != "connected"}
        states = [i["state"] for i in items(api(url, "/v1/instances")) if i["id"] in ids]
        running = states.count("running")
        if running >= n or any(s in ("terminated", "failed") for s in states):
            break
        time.sleep(0.25)
    took = time.time() - began
    after = [(cpu_s(a.pid), rss_kib(a.pid)) for a in agents]
    time.sleep(3)
    found = helpers(work, agent_bin)
    helpers_after = usage(found)
    cpu = sum(a[0] - b[0] for a, b in zip(after, before))
    rss = sum(a[1] - b[1] for a, b in zip(after, before))
    print(f"== {label}; binaries: {os.path.realpath(BIN)}; {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{HOSTS} hosts x {PER_HOST} guests: {running}/{n} running after {took:.1f}s "
          f"(creating took {created:.1f}s)")
    print(f"agent CPU per start: {cpu / n * 1000:.1f} ms ({cpu:.1f}s in all, helpers it waited for included)")
    print(f"agent RSS per guest: {rss / n:.0f} KiB")
    hcpu, hmem = (a - b for a, b in zip(helpers_after, helpers_before))
    print(f"agents with their helpers ({len(found)} processes: watchers, inits, network "
          f"helpers): CPU per start {hcpu / n * 1000:.1f} ms, memory (PSS) per guest {hmem / n:.0f} KiB")
    kinds = ", ".join(f"{k} x{n}: {t / n:.0f}" for k, (n, t) in sorted(BY_KIND.items()))
    print(f"  PSS KiB per process by kind: {kinds}")
    print(f"hosts ever not connected: {sorted(lost) or 'none'}")
    logs = [open(os.path.join(work, f"agent-{h}.log")).read()[logs_before[h]:] for h in range(HOSTS)]
    for name, (wall, cpu, k) in steps(logs).items():
        print(f"  step {name:12} median wall {wall / 1000:7.2f} ms, thread CPU {cpu / 1000:6.2f} ms ({k} starts)")
    return running < n or bool(lost)


if __name__ == "__main__":
    main()
