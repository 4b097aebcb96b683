"""What a key quota costs the router: requests/s and router CPU per request, without and
with a quota on the key, side by side.

    python bench/quotas.py [--seconds 10] [--rounds 3] [--no-readme]

One router (one serving process per core, as in production, key auth, metrics and the
access log on) serves two endpoints in front of the same fixed-response upstream (a
one-worker nginx answering 200 at once): ``plain``, whose key has no quota, and ``quota``,
whose key has a token bucket and a concurrency limit far above what wrk reaches (every
request takes a token and a concurrency place in shared memory and gives the place back;
none is refused). wrk (2 threads, 32 connections) loads one then the other, alternately,
``--rounds`` times; the table gives each round and the median, and the ratio. It feeds the
router from a Redis db of its own (9, or WEIR_BENCH_REDIS) and writes its table into
README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import loadgen
import redis

from contracts.routing import PRIMARY_KEY, ROUTES, EndpointRoute, QuotaRoute
from dataplane.agent.supervisor import free_port

ROOT = loadgen.ROOT
KEY = loadgen.BENCH_KEY
PLAIN, QUOTA = "plain.bench.localhost", "quota.bench.localhost"
# Far above what this machine reaches: the quota is checked on every request, never hit.
LIMIT = QuotaRoute(requests_per_second=1_000_000, burst=1_000_000, max_concurrent_requests=10_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true", help="only print the table")
    args = parser.parse_args()
    loadgen.ensure("wrk", "nginx")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes: list[subprocess.Popen] = []

    def start(command: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
        )
        processes.append(process)
        return process

    feed = redis.Redis.from_url(loadgen.FEED_URL)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            fixed, router = free_port(), free_port()
            upstream = (
                f"server {{ listen 127.0.0.1:{fixed}; default_type application/json;\n"
                "  location / { return 200 '{\"ok\": true}'; } }"
            )
            conf = tmp / "nginx.conf"
            conf.write_text(
                f"daemon off; worker_processes 1; pid {conf}.pid; error_log stderr;\n"
                "events { worker_connections 4096; }\n"
                f"http {{ access_log off;\n{upstream}\n}}\n"
            )
            start(["nginx", "-c", str(conf), "-p", str(tmp)])
            replicas = [f"127.0.0.1:{fixed}"]
            plain = EndpointRoute.from_json(loadgen.route("plain", replicas, 64))
            quota = EndpointRoute.from_json(loadgen.route("quota", replicas, 64))
            quota = dataclasses.replace(quota, quotas={PRIMARY_KEY: LIMIT})
            feed.hset(ROUTES, mapping={PLAIN: plain.to_json(), QUOTA: quota.to_json()})
            weir = start(
                [sys.executable, "-m", "dataplane.router", "--port", str(router)]
                + ["--metrics-port", str(free_port()), "--redis-url", loadgen.FEED_URL]
                + ["--access-log", str(tmp / "access.log")],
                env=env,
            )
            auth = {"Authorization": f"Bearer {KEY}"}
            url = f"http://127.0.0.1:{router}/score"
            for host in (PLAIN, QUOTA):
                loadgen.wait_up(url, {**auth, "Host": host})
            scripts = {
                host: loadgen.wrk_lua(tmp / f"{host}.lua", "{}", {**auth, "Host": host})
                for host in (PLAIN, QUOTA)
            }
            rows: dict[str, list[dict]] = {PLAIN: [], QUOTA: []}

            def run(host: str) -> dict:
                before = loadgen.cpu_seconds(weir.pid)
                result = loadgen.wrk(url, args.seconds, scripts[host], connections=32, threads=2)
                cpu = loadgen.cpu_seconds(weir.pid) - before
                result["cpu_us"] = 1e6 * cpu / result["requests"]
                return result

            run(PLAIN)  # warm up (discarded)
            for _ in range(args.rounds):
                for host in (PLAIN, QUOTA):
                    rows[host].append(run(host))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
            feed.hdel(ROUTES, PLAIN, QUOTA)
    table = render(rows, args.seconds)
    print(table)
    if not args.no_readme:
        loadgen.write_readme("quotas", table)


def render(rows: dict, seconds: int) -> str:
    lines = [
        f"Fixed-response upstream, wrk 2 threads × 32 connections, {seconds} s per run, "
        "runs alternating:",
        "",
        "| round | requests/s, no quota | requests/s, quota | ratio "
        "| router CPU/request, no quota | quota | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    plain, quota = rows[PLAIN], rows[QUOTA]
    for number, (a, b) in enumerate(zip(plain, quota, strict=True), 1):
        lines.append(
            f"| {number} | {a['rps']:,.0f} | {b['rps']:,.0f} | {b['rps'] / a['rps']:.2f}× "
            f"| {a['cpu_us']:.0f} µs | {b['cpu_us']:.0f} µs | {a['errors'] + b['errors']} |"
        )
    a_rps = statistics.median(r["rps"] for r in plain)
    b_rps = statistics.median(r["rps"] for r in quota)
    a_cpu = statistics.median(r["cpu_us"] for r in plain)
    b_cpu = statistics.median(r["cpu_us"] for r in quota)
    lines.append(
        f"| median | {a_rps:,.0f} | {b_rps:,.0f} | {b_rps / a_rps:.2f}× "
        f"| {a_cpu:.0f} µs | {b_cpu:.0f} µs | |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
