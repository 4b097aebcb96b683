"""The scoring router against nginx and against calling replicas directly, in one run.

    python bench/router.py [--seconds 10] [--no-readme]

Everything runs on this machine's cores at once (no pinning: the router, nginx and wrk each
get what the scheduler gives them). Weir's router runs as started in production: one
serving process per core, key auth, traffic split, metrics and the access log on. nginx
(Debian's nginx-light) runs one worker per core with keep-alive upstreams.

(a) ceiling: both proxies in front of the same fixed-response upstream (a one-worker nginx
    answering 200 at once), wrk with 2 threads and 32 connections; requests/s and the
    proxy's CPU time per request.
(b) end to end: two replicas of Weir's inference server with Azure's sample score.py and the
    scikit-learn model, called directly (one wrk per replica) and through each proxy.
(c) added latency: a fixed 1,000 requests/s (hey) to one replica directly, and through each
    proxy to the two replicas; p50 and p99.

It installs wrk, hey and nginx (apt) when missing, feeds the router from a Redis db of its
own (9, or WEIR_BENCH_REDIS), and writes its tables into README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import loadgen
import redis

from contracts.routing import ROUTES
from dataplane.agent.supervisor import free_port

ROOT = loadgen.ROOT
EXAMPLES = ROOT / "examples" / "online"
KEY = loadgen.BENCH_KEY
FIXED, MODEL = "fixed.bench.localhost", "model.bench.localhost"
RATE = 1000


def nginx_conf(tmp: Path, workers: str, servers: str) -> Path:
    conf = tmp / f"nginx-{workers}.conf"
    conf.write_text(
        f"daemon off; worker_processes {workers}; pid {conf}.pid; error_log stderr;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off;\n{servers}\n}}\n"
    )
    return conf


def proxy_server(port: int, name: str, upstreams: list[str]) -> str:
    members = " ".join(f"server {address};" for address in upstreams)
    return (
        f"upstream {name} {{ {members} keepalive 64; }}\n"
        f"server {{ listen 127.0.0.1:{port};\n"
        f"  location / {{ proxy_pass http://{name}; proxy_http_version 1.1;\n"
        '    proxy_set_header Connection ""; } }\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--no-readme", action="store_true", help="only print the tables")
    args = parser.parse_args()
    loadgen.ensure("wrk", "nginx", "hey")
    sys.path.insert(0, str(ROOT / "examples"))
    import make_models

    model_dir = make_models.make()["model-1"].parent
    sample = (EXAMPLES / "model-1" / "sample-request.json").read_text().replace("\n", " ")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes: list[subprocess.Popen] = []

    def start(command: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
        )
        processes.append(process)
        return process

    feed_url = loadgen.FEED_URL
    feed = redis.Redis.from_url(feed_url)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            fixed, replicas = free_port(), [free_port() for _ in range(2)]
            router, nginx_fixed, nginx_model = (free_port() for _ in range(3))
            upstream = (
                f"server {{ listen 127.0.0.1:{fixed}; default_type application/json;\n"
                "  location / { return 200 '{\"ok\": true}'; } }"
            )
            start(["nginx", "-c", str(nginx_conf(tmp, "1", upstream)), "-p", str(tmp)])
            for port in replicas:
                start(loadgen.replica_command(model_dir, port), env=env)
            servers = proxy_server(nginx_fixed, "fixed", [f"127.0.0.1:{fixed}"])
            servers += proxy_server(nginx_model, "model", [f"127.0.0.1:{p}" for p in replicas])
            nginx = start(["nginx", "-c", str(nginx_conf(tmp, "auto", servers)), "-p", str(tmp)])
            feed.hset(ROUTES, FIXED, loadgen.route("fixed", [f"127.0.0.1:{fixed}"], 64))
            model_replicas = [f"127.0.0.1:{p}" for p in replicas]
            feed.hset(ROUTES, MODEL, loadgen.route("model", model_replicas, 16))
            weir = start(
                [
                    sys.executable,
                    "-m",
                    "dataplane.router",
                    "--port",
                    str(router),
                    "--metrics-port",
                    str(free_port()),
                    "--redis-url",
                    feed_url,
                    "--access-log",
                    str(tmp / "access.log"),
                ],
                env=env,
            )
            auth = {"Authorization": f"Bearer {KEY}"}
            for port in replicas:
                loadgen.wait_up(f"http://127.0.0.1:{port}/score", body=sample.encode())
            loadgen.wait_up(f"http://127.0.0.1:{nginx_fixed}/score")
            loadgen.wait_up(f"http://127.0.0.1:{router}/score", {**auth, "Host": FIXED})
            ports = {
                "fixed": fixed,
                "replicas": replicas,
                "router": router,
                "nginx_fixed": nginx_fixed,
                "nginx_model": nginx_model,
            }
            pids = {"router": weir.pid, "nginx": nginx.pid}
            rows = measure(args.seconds, tmp, sample, auth, ports, pids)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
            feed.hdel(ROUTES, FIXED, MODEL)
    table = render(rows)
    print(table)
    if not args.no_readme:
        loadgen.write_readme("router", table)


def measure(seconds: int, tmp: Path, sample: str, auth: dict, ports: dict, pids: dict) -> dict:
    fixed, replicas, router = ports["fixed"], ports["replicas"], ports["router"]
    nginx_fixed, nginx_model = ports["nginx_fixed"], ports["nginx_model"]
    weir, nginx = pids["router"], pids["nginx"]
    tiny = loadgen.wrk_lua(tmp / "fixed-direct.lua", "{}", {})
    tiny_routed = loadgen.wrk_lua(tmp / "fixed-router.lua", "{}", {**auth, "Host": FIXED})
    json_type = {"Content-Type": "application/json"}
    model = loadgen.wrk_lua(tmp / "model.lua", sample, json_type)
    model_routed = loadgen.wrk_lua(
        tmp / "model-router.lua", sample, {**json_type, **auth, "Host": MODEL}
    )
    rows: dict = {"ceiling": {}, "end to end": {}, "latency": {}}

    def timed(pid: int | None, run) -> dict:
        run()  # warm up (the same call, discarded)
        before = loadgen.cpu_seconds(pid) if pid else 0.0
        result = run()
        if pid:
            result["cpu_us"] = 1e6 * (loadgen.cpu_seconds(pid) - before) / result["requests"]
        return result

    def url(port: int) -> str:
        return f"http://127.0.0.1:{port}/score"

    ceiling = rows["ceiling"]
    ceiling["direct"] = timed(
        None, lambda: loadgen.wrk(url(fixed), seconds, tiny, connections=32, threads=2)
    )
    ceiling["Weir router"] = timed(
        weir, lambda: loadgen.wrk(url(router), seconds, tiny_routed, connections=32, threads=2)
    )
    ceiling["nginx"] = timed(
        nginx, lambda: loadgen.wrk(url(nginx_fixed), seconds, tiny, connections=32, threads=2)
    )
    e2e = rows["end to end"]
    e2e["direct"] = timed(
        None, lambda: loadgen.wrk_together([url(p) for p in replicas], seconds, model)
    )
    e2e["Weir router"] = timed(
        weir, lambda: loadgen.wrk(url(router), seconds, model_routed, connections=16, threads=2)
    )
    e2e["nginx"] = timed(
        nginx, lambda: loadgen.wrk(url(nginx_model), seconds, model, connections=16, threads=2)
    )
    latency = rows["latency"]
    latency["direct"] = loadgen.hey(url(replicas[0]), seconds, RATE, sample, json_type)
    latency["Weir router"] = loadgen.hey(
        url(router), seconds, RATE, sample, {**json_type, **auth, "Host": MODEL}
    )
    latency["nginx"] = loadgen.hey(url(nginx_model), seconds, RATE, sample, json_type)
    return rows


def _throughput(title: str, rows: dict) -> list[str]:
    lines = [
        title,
        "",
        "| path | requests/s | p50 | p99 | proxy CPU per request | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        cpu = f"{row['cpu_us']:.0f} µs" if "cpu_us" in row else "-"
        lines.append(
            f"| {name} | {row['rps']:,.0f} | {row['p50']:.2f} ms | {row['p99']:.2f} ms "
            f"| {cpu} | {row['errors']} |"
        )
    return lines


def render(rows: dict) -> str:
    ceiling, e2e, latency = rows["ceiling"], rows["end to end"], rows["latency"]
    lines = [
        *_throughput("(a) ceiling, fixed-response upstream:", ceiling),
        "",
        *_throughput("(b) end to end, two scikit-learn replicas:", e2e),
    ]
    lines += [
        "",
        f"(c) latency at a fixed {RATE:,} requests/s:",
        "",
        "| path | p50 | p99 | added p50 | added p99 | errors |",
        "|---|---|---|---|---|---|",
    ]
    direct = latency["direct"]
    for name, row in latency.items():
        lines.append(
            f"| {name} | {row['p50']:.2f} ms | {row['p99']:.2f} ms "
            f"| {row['p50'] - direct['p50']:+.2f} ms | {row['p99'] - direct['p99']:+.2f} ms "
            f"| {row['errors']} |"
        )
    weir, nginx = ceiling["Weir router"], ceiling["nginx"]
    lines += [
        "",
        f"Ratios: ceiling router/nginx {weir['rps'] / nginx['rps']:.2f}× requests/s at "
        f"{weir['cpu_us'] / nginx['cpu_us']:.1f}× the CPU per request; end to end "
        f"router/direct {e2e['Weir router']['rps'] / e2e['direct']['rps']:.2f}×, "
        f"nginx/direct {e2e['nginx']['rps'] / e2e['direct']['rps']:.2f}×.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
