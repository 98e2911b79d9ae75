#!/usr/bin/env python3
"""Management API under load, measured in one run (issue 11, BENCHMARKS.md):

1. the broker carries a steady MQTT load (`junction bench pubsub --rate`) without API
   traffic: its throughput and CPU;
2. the same load while a client calls `GET /api/v5/clients?limit=100` back to back and
   kicks one of 400 idle clients every 10th call: the latency of each call (p50, p99,
   max) and the load's throughput and CPU;
3. 10,000 idle connections, listed page by page (`limit=100` and `limit=1000`): every
   client seen once, and the time per page;
4. Mosquitto carrying the same load in the same run, for the CPU ratio.

Run with the test venv (it has `requests`), after `cargo build --release`:

    .venv/bin/python scripts/bench-api.py [--rate 20000] [--duration 15]

Everything runs on loopback, on fixed ports 1890x, and stops itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
JUNCTION = ROOT / "target" / "release" / "junction"
HOST = "127.0.0.1"
MQTT_PORT, API_PORT, MOSQ_PORT = 18901, 18902, 18903
KEY = ("bench-key", "bench-secret")


def log(*a) -> None:
    print("bench-api:", *a, file=sys.stderr, flush=True)


def start_junction(work: Path) -> subprocess.Popen:
    keys = work / "keys.txt"
    keys.write_text(f"{KEY[0]}:{KEY[1]}\n")
    conf = work / "junction.conf"
    conf.write_text(
        f'node.data_dir = "{work / "data"}"\n'
        f'listeners.tcp.default {{ bind = "{HOST}:{MQTT_PORT}", max_connections = 100000 }}\n'
        "listeners.ws.default.enable = false\n"
        "gateway.stomp.enable = false\n"
        "gateway.mqttsn.enable = false\n"
        f'dashboard.listeners.http.bind = "{HOST}:{API_PORT}"\n'
        f'api_key.bootstrap_file = "{keys}"\n'
        'log.console.level = "error"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")}
    p = subprocess.Popen(
        [str(JUNCTION), "start", "--config", str(conf)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert p.stderr is not None
    for line in p.stderr:
        if line.strip() == "junction: started":
            break
    else:
        raise SystemExit("junction did not start")
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p


def start_mosquitto(work: Path) -> subprocess.Popen:
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {MOSQ_PORT} {HOST}\nallow_anonymous true\nmax_connections -1\n")
    p = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # mosquitto prints nothing when ready; its port answers within this
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def bench(*args: str, pid: int, port: int) -> subprocess.Popen:
    cmd = [str(JUNCTION), "bench", *args, "-p", str(port), "--broker-pid", str(pid),
           "--clk-tck", str(os.sysconf("SC_CLK_TCK"))]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def result(p: subprocess.Popen) -> dict:
    out, _ = p.communicate(timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def load(rate: float, duration: float, pid: int, port: int) -> subprocess.Popen:
    return bench("pubsub", "--pubs", "20", "--subs", "20", "-t", "bench/api/%i", "-s", "64",
                 "-q", "0", "--rate", str(rate), "--duration", str(duration), pid=pid, port=port)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def api(path: str, method: str = "GET") -> tuple[float, requests.Response]:
    t0 = time.perf_counter()
    r = requests.request(method, f"http://{HOST}:{API_PORT}/api/v5{path}", auth=KEY, timeout=30)
    return (time.perf_counter() - t0) * 1000, r


def wait_connections(n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, r = api("/stats?aggregate=true")
        if r.json()["connections.count"] >= n:
            return
        time.sleep(0.2)
    raise SystemExit(f"fewer than {n} connections after {timeout}s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=20000)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--idle", type=int, default=10000)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="junction-bench-api."))
    rows = []
    try:
        j = start_junction(work)
        try:
            # 1. The load alone.
            log(f"load alone: {a.rate:.0f} msgs/s for {a.duration}s")
            base = result(load(a.rate, a.duration, j.pid, MQTT_PORT))
            # 2. The load with API traffic: list and kick.
            log("load with API traffic")
            idle = bench("conn", "-c", "400", "--prefix", "kickme", "--duration", str(a.duration + 30),
                         pid=j.pid, port=MQTT_PORT)
            wait_connections(400)
            loaded = load(a.rate, a.duration, j.pid, MQTT_PORT)
            lists, kicks, n = [], [], 0
            time.sleep(1.0)  # let the load's clients connect and the rate settle
            end = time.monotonic() + a.duration - 2
            while time.monotonic() < end:
                ms, r = api("/clients?limit=100")
                assert r.status_code == 200, r.text
                lists.append(ms)
                n += 1
                if n % 10 == 0 and len(kicks) < 400:
                    ms, r = api(f"/clients/kickme_{len(kicks) + 1}", "DELETE")
                    assert r.status_code in (204, 404), r.text
                    kicks.append(ms)
            with_api = result(loaded)
            idle.kill()
            idle.wait()
            # 3. 10,000 idle connections, page by page.
            log(f"{a.idle} idle connections, listed page by page")
            hold = bench("conn", "-c", str(a.idle), "--prefix", "idle", "--duration", "120",
                         pid=j.pid, port=MQTT_PORT)
            wait_connections(a.idle)
            pages = {}
            for limit in (100, 1000):
                seen, times, page = [], [], 1
                while True:
                    ms, r = api(f"/clients?limit={limit}&page={page}&like_clientid=idle_")
                    body = r.json()
                    times.append(ms)
                    seen.extend(c["clientid"] for c in body["data"])
                    if not body["meta"]["hasnext"]:
                        break
                    page += 1
                assert len(seen) == len(set(seen)) == a.idle, (len(seen), len(set(seen)))
                pages[limit] = times
            hold.kill()
            hold.wait()
        finally:
            stop(j)
        # 4. Mosquitto, the same load.
        mosq_row = None
        if shutil.which("mosquitto"):
            m = start_mosquitto(work)
            try:
                log("mosquitto: the same load")
                mosq_row = result(load(a.rate, a.duration, m.pid, MOSQ_PORT))
            finally:
                stop(m)

        def cpu(r: dict) -> str:
            return f"{r.get('msgs_per_broker_cpu_s')}"

        print(f"| measure | value |\n|---|---|")
        print(f"| load alone: msgs/s delivered, msgs per broker CPU-second | {base['msgs_per_sec']:.0f}, {cpu(base)} |")
        print(f"| load with API traffic: msgs/s delivered, msgs per broker CPU-second | {with_api['msgs_per_sec']:.0f}, {cpu(with_api)} |")
        print(f"| `GET /clients?limit=100` under load ({len(lists)} calls): p50 / p99 / max ms | "
              f"{pct(lists, 50):.2f} / {pct(lists, 99):.2f} / {max(lists):.2f} |")
        print(f"| kick under load ({len(kicks)} calls): p50 / p99 / max ms | "
              f"{pct(kicks, 50):.2f} / {pct(kicks, 99):.2f} / {max(kicks):.2f} |")
        for limit, times in pages.items():
            print(f"| {a.idle} clients, `limit={limit}`: {len(times)} pages, each seen once; p50 / p99 / max ms per page | "
                  f"{pct(times, 50):.2f} / {pct(times, 99):.2f} / {max(times):.2f} |")
        if mosq_row:
            print(f"| Mosquitto, the same load: msgs/s delivered, msgs per broker CPU-second | {mosq_row['msgs_per_sec']:.0f}, {cpu(mosq_row)} |")
        print("\nraw:", json.dumps({"base": base, "with_api": with_api, "mosquitto": mosq_row}), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
