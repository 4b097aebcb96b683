"""The scoring router's cost: the same replica called directly, through Weir's router (with
key auth, traffic split and metrics on), and through nginx, in one run.

One replica (dataplane.inference with a trivial score.py) pinned to one core; the proxy
under test pinned to the same core as wrk's peer... see CORES below; wrk sends the same
load (8 connections, keep-alive) for --seconds to each in turn. Reports requests/s, p50 and
p99 latency, and the ratios:

    python bench/router.py [--seconds 10]

It installs wrk and nginx (apt) when missing, and uses a Redis db of its own (15 by default,
WEIR_BENCH_REDIS) to feed the router one endpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import Request, urlopen

import loadgen
import redis

ROOT = Path(__file__).resolve().parents[1]
SCORE = "def init():\n    pass\n\ndef run(raw):\n    return {'ok': True}\n"
KEY = "bench-key"
HOST = "bench.ws.localhost"
# Two cores: the replica and the load generator each get one; proxies share the replica's.
REPLICA_CPU, LOAD_CPU = "1", "0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str, headers: dict | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urlopen(Request(url, data=b"{}", headers=headers or {}), timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    loadgen.ensure("wrk", "nginx")
    processes = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "score.py").write_text(SCORE)
        replica_port, router_port, nginx_port = free_port(), free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        processes.append(
            subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    REPLICA_CPU,
                    sys.executable,
                    "-m",
                    "dataplane.inference",
                    "--entry-script",
                    str(tmp / "score.py"),
                    "--port",
                    str(replica_port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        feed_url = os.environ.get("WEIR_BENCH_REDIS", "redis://127.0.0.1:6379/15")
        feed = redis.Redis.from_url(feed_url)
        entry = {
            "name": "bench",
            "workspace": "ws",
            "authMode": "Key",
            "keyDigests": [hashlib.sha256(KEY.encode()).hexdigest()],
            "tokenAudience": "",
            "traffic": {"blue": 100},
            "mirrorTraffic": {},
            "deployments": {
                "blue": {
                    "replicas": [f"127.0.0.1:{replica_port}"],
                    "maxConcurrentRequestsPerInstance": 8,
                    "requestTimeout": 5.0,
                    "maxQueueWait": 0.5,
                }
            },
        }
        feed.hset("weir:routes", HOST, json.dumps(entry))
        processes.append(
            subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    REPLICA_CPU,
                    sys.executable,
                    "-m",
                    "dataplane.router",
                    "--port",
                    str(router_port),
                    "--metrics-port",
                    str(free_port()),
                    "--redis-url",
                    feed_url,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        (tmp / "nginx.conf").write_text(
            f"daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log stderr;\n"
            "events { worker_connections 1024; }\n"
            "http { access_log off;\n"
            f"  upstream replica {{ server 127.0.0.1:{replica_port}; keepalive 32; }}\n"
            f"  server {{ listen 127.0.0.1:{nginx_port};\n"
            "    location / { proxy_pass http://replica; proxy_http_version 1.1;\n"
            '      proxy_set_header Connection ""; } } }\n'
        )
        processes.append(
            subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    REPLICA_CPU,
                    "nginx",
                    "-c",
                    str(tmp / "nginx.conf"),
                    "-p",
                    str(tmp),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        try:
            headers = {"Host": HOST, "Authorization": f"Bearer {KEY}"}
            wait_up(f"http://127.0.0.1:{replica_port}/score")
            wait_up(f"http://127.0.0.1:{router_port}/score", headers)
            wait_up(f"http://127.0.0.1:{nginx_port}/score")
            lua = tmp / "post.lua"
            lua.write_text(
                'wrk.method = "POST"\nwrk.body = "{}"\n'
                f'wrk.headers["Host"] = "{HOST}"\n'
                f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
            )
            rows = {}
            for name, port in (
                ("direct", replica_port),
                ("weir router", router_port),
                ("nginx", nginx_port),
            ):
                url = f"http://127.0.0.1:{port}/score"
                loadgen.wrk(url, 2, lua, LOAD_CPU)  # warm up
                rows[name] = loadgen.wrk(url, args.seconds, lua, LOAD_CPU)
        finally:
            for process in processes:
                process.terminate()
            feed.hdel("weir:routes", HOST)
    print(f"{'path':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, row in rows.items():
        print(
            f"{name:12} {row['rps']:>9.0f} {row['p50']:>8.3f} {row['p99']:>8.3f} {row['errors']:>7}"
        )
    direct, router, nginx = rows["direct"], rows["weir router"], rows["nginx"]
    print(
        f"router / direct: {router['rps'] / direct['rps']:.2f}x req/s; "
        f"router / nginx: {router['rps'] / nginx['rps']:.2f}x req/s; "
        f"added p50 vs direct: {router['p50'] - direct['p50']:.3f} ms"
    )


if __name__ == "__main__":
    main()
