#!/usr/bin/env python3
"""Ledger reconciliation: does every instance's charge equal the integral of its price?

Runs a `gpuspot dev` cluster with second-long price and meter ticks, creates an account and
at least 100 instances (spot at assorted bids and regular, short commands, competing bids so
the market price moves and some are reclaimed), waits until all have ended, then recomputes
each instance's cost independently from the API alone — its start and end, its GPU count, and
the pool's price history (spot pays min(market, bid), regular pays list) — and compares it
with the sum of its ledger charges. Prints the totals and exits 1 on any difference.
Usage: scripts/ledger_reconcile.py [--instances 120]   (builds the release binary first)"""
import argparse, json, os, random, signal, subprocess, sys, tempfile, time, urllib.request, urllib.parse

ADMIN = "reconcile-admin-token"
LIST = {"RTX 5090": 900_000, "RTX 4090": 600_000, "RTX PRO 6000": 1_800_000}

def call(url, method="GET", body=None, token=ADMIN):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read().decode())

def micros(text):
    """A decimal money string as signed integer micro-units."""
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text)
    whole, _, frac = digits.partition(".")
    return sign * (int(whole) * 1_000_000 + int((frac + "000000")[:6]))

def ms(rfc3339):
    """Whole milliseconds since the epoch, truncated as the meter does."""
    from datetime import datetime, timezone
    date, _, rest = rfc3339.rstrip("Z").partition(".")
    base = datetime.fromisoformat(date).replace(tzinfo=timezone.utc)
    return int(base.timestamp()) * 1000 + int((rest + "000")[:3])

def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"timed out waiting for {what}")

def expected(instance, history):
    """floor(sum over price segments of price x gpus x ms / 3.6e6), as the meter accrues."""
    start, end = ms(instance["started_at"]), ms(instance["ended_at"])
    gpus = len(instance["gpu_uuids"])
    bill = instance["billing"]
    pool = next(m for m in LIST if m.lower() in instance["gpu_model"].lower())
    if bill["mode"] == "regular":
        return LIST[pool] * gpus * (end - start) // 3_600_000
    bid = micros(bill["max_price"])
    points = [(ms(p["at"]), micros(p["price"])) for p in history[pool]]
    price_at = lambda t: min(bid, max((p for p in points if p[0] <= t), default=points[0])[1])
    cuts = [start] + [t for t, _ in points if start < t < end] + [end]
    total = sum(price_at(a) * gpus * (b - a) for a, b in zip(cuts, cuts[1:]))
    return total // 3_600_000

def run_load(url, token, n):
    rng = random.Random(7)
    ids = []
    for k in range(n):
        model = rng.choice(["RTX 5090", "RTX 4090", "RTX 4090", "RTX PRO 6000"])
        body = {"name": f"r{k}", "gpu": {"models": [model], "count": rng.choice([1, 1, 2])},
                "command": ["sleep", str(rng.uniform(0.5, 4.0))]}
        if rng.random() < 0.7:
            body["billing"] = {"mode": "spot", "max_price": f"{LIST[model] * rng.uniform(0.15, 0.6) / 1e6:.4f}"}
        ids.append(call(f"{url}/v1/instances", "POST", body, token)["id"])
        time.sleep(rng.uniform(0.0, 0.15))
    return ids

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=120)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "gpuspot"], check=True)
    work = tempfile.mkdtemp(prefix="gpuspot-reconcile-")
    with open(f"{work}/config.toml", "w") as f:
        f.write('[timers]\nhold_period = "2s"\nnotice_period = "2s"\nprice_tick = "1s"\nmeter_tick = "1s"\n'
                'heartbeat = "1s"\nhost_lost_after = "10s"\nkill_timeout = "1s"\n')
        for model, price in LIST.items():
            f.write(f'[[pools]]\nmodel = "{model}"\nlist_price = "{price / 1e6:.2f}"\n')
    port = 18780
    url = f"http://127.0.0.1:{port}"
    dev = subprocess.Popen(["target/release/gpuspot", "dev", "--http", f"127.0.0.1:{port}", "--quic",
                            f"127.0.0.1:{port + 1}", "--data-dir", f"{work}/data", "--config", f"{work}/config.toml"],
                           stdout=open(f"{work}/dev.log", "w"), stderr=subprocess.STDOUT,
                           env=dict(os.environ, GPUSPOT_ADMIN_TOKEN=ADMIN, RUST_LOG="warn"), start_new_session=True)
    try:
        wait(lambda: len(call(f"{url}/v1/hosts")) == 3, 60, "the cluster")
        account = call(f"{url}/v1/accounts", "POST", {"name": "reconcile"})
        call(f"{url}/v1/accounts/{account['id']}/payments", "POST", {"amount": "10000.00"})
        ids = run_load(url, account["token"], args.instances)
        done = lambda: all(i["state"] == "terminated" for i in call(f"{url}/v1/instances", token=account["token"]))
        wait(done, 600, "every instance to end")
        history = {m: call(f"{url}/v1/pools/{urllib.parse.quote(m)}/price-history?hours=1") for m in LIST}
        ledger = call(f"{url}/v1/accounts/{account['id']}/ledger")
        charged = {}
        for e in ledger:
            if e["kind"] == "charge":
                charged[e["instance_id"]] = charged.get(e["instance_id"], 0) - micros(e["amount"])
        instances = [call(f"{url}/v1/instances/{i}", token=account["token"]) for i in ids]
        ran = [i for i in instances if i["started_at"]]
        bad = [(i["id"], expected(i, history), charged.get(i["id"], 0)) for i in ran
               if expected(i, history) != charged.get(i["id"], 0)]
        total_expected = sum(expected(i, history) for i in ran)
        total_charged = sum(charged.values())
        balance = micros(call(f"{url}/v1/accounts/{account['id']}")["balance"])
        reasons = {}
        for i in instances:
            reasons[i["termination_reason"]] = reasons.get(i["termination_reason"], 0) + 1
        moves = sum(len({p["price"] for p in h}) - 1 for h in history.values())
        print(f"instances: {len(instances)} ({len(ran)} ran; ended: {reasons}); distinct price moves: {moves}")
        print(f"ledger entries: {len(ledger)}; expected {total_expected / 1e6:.6f}, charged {total_charged / 1e6:.6f}, "
              f"difference {(total_charged - total_expected) / 1e6:.6f}; instances off: {len(bad)}")
        for b in bad[:10]:
            print("  mismatch", b)
        ledger_sum = sum(micros(e["amount"]) for e in ledger)
        print(f"sum of the ledger {ledger_sum / 1e6:.6f} == balance {balance / 1e6:.6f}: {ledger_sum == balance}")
        sys.exit(1 if bad or total_charged != total_expected or ledger_sum != balance else 0)
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", work])

if __name__ == "__main__":
    main()
