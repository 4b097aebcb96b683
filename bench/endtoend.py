"""One scikit-learn model served end to end by Weir, by Azure's azmlinfsrv and by Ray Serve,
on the same two cores, in one run.

    python bench/endtoend.py [--seconds 10] [--no-readme]

All three serve Azure's sample score.py with the same model and answer the same sample
request, with two workers each: Weir's router (one process per core) in front of two Weir
replicas; azmlinfsrv 1.5.1 alone with WORKER_COUNT=2 (gunicorn); Ray Serve with two
replicas behind its HTTP proxy. wrk (2 threads, 16 connections) shares the cores with them.
Reports requests/s, latency, and the CPU time per request of every process of the server.

It installs wrk (apt), azmlinfsrv and Ray Serve (pip, in bench/.venv-azml and
bench/.venv-ray), and writes its table into README.md.
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
SCRIPT = loadgen.SCORE_SCRIPT
MODEL_PACKAGES = ["scikit-learn==1.9.1", "numpy==2.4.6", "joblib"]
AZML_PACKAGES = ["azureml-inference-server-http==1.5.1", *MODEL_PACKAGES]
RAY_PACKAGES = ["ray[serve]==2.60.0", *MODEL_PACKAGES]
KEY = loadgen.BENCH_KEY
HOST = "sklearn.bench.localhost"

RAY_APP = """
import importlib.util, os, sys, time
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
class Scorer:
    def __init__(self):
        spec = importlib.util.spec_from_file_location("score", os.environ["SCORE_SCRIPT"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.init()
        self.run = module.run

    async def __call__(self, request: Request):
        return JSONResponse(self.run((await request.body()).decode()))


ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[1])})
serve.run(Scorer.bind(), route_prefix="/score")
print("READY", flush=True)
while True:
    time.sleep(3600)
"""


class Server:
    """A server under test: its processes (with their children), started and stopped."""

    def __init__(self, name: str):
        self.name = name
        self.processes: list[subprocess.Popen] = []

    def start(self, command: list[str], **kwargs) -> None:
        self.processes.append(
            subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
            )
        )

    def cpu(self) -> float:
        return loadgen.cpu_seconds(*(p.pid for p in self.processes))

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def measure(server: Server, url: str, lua: Path, seconds: int, wait_headers: dict) -> dict:
    sample = (EXAMPLES / "model-1" / "sample-request.json").read_bytes()
    try:
        loadgen.wait_up(url, wait_headers, timeout=180, body=sample)
        loadgen.wrk(url, 3, lua, connections=16, threads=2)  # warm up
        before = server.cpu()
        result = loadgen.wrk(url, seconds, lua, connections=16, threads=2)
        result["cpu_ms"] = 1000 * (server.cpu() - before) / max(result["requests"], 1)
    finally:
        server.stop()
    return result


def weir(model_dir: Path, seconds: int, tmp: Path, body: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = Server("Weir")
    replicas = [free_port() for _ in range(2)]
    for port in replicas:
        server.start(loadgen.replica_command(model_dir, port), env=env)
    feed_url = loadgen.FEED_URL
    entry = loadgen.route("sklearn", [f"127.0.0.1:{port}" for port in replicas], 8)
    feed = redis.Redis.from_url(feed_url)
    feed.hset(ROUTES, HOST, entry)
    router = free_port()
    server.start(
        [
            sys.executable,
            "-m",
            "dataplane.router",
            "--port",
            str(router),
            "--redis-url",
            feed_url,
            "--access-log",
            str(tmp / "access.log"),
        ],
        env=env,
    )
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}", "Host": HOST}
    lua = loadgen.wrk_lua(tmp / "weir.lua", body, headers)
    try:
        return measure(server, f"http://127.0.0.1:{router}/score", lua, seconds, headers)
    finally:
        feed.hdel(ROUTES, HOST)


def azmlinfsrv(model_dir: Path, seconds: int, tmp: Path, body: str) -> dict:
    venv = loadgen.venv("azml", AZML_PACKAGES, "azmlinfsrv")
    server = Server("azmlinfsrv")
    port = free_port()
    server.start(
        [
            str(venv / "bin" / "azmlinfsrv"),
            "--entry_script",
            str(SCRIPT),
            "--model_dir",
            str(model_dir),
            "--port",
            str(port),
        ],
        env={**os.environ, "AZUREML_MODEL_DIR": str(model_dir), "WORKER_COUNT": "2"},
    )
    headers = {"Content-Type": "application/json"}
    lua = loadgen.wrk_lua(tmp / "azml.lua", body, headers)
    return measure(server, f"http://127.0.0.1:{port}/score", lua, seconds, headers)


def ray_serve(model_dir: Path, seconds: int, tmp: Path, body: str) -> dict:
    venv = loadgen.venv("ray", RAY_PACKAGES, "serve")
    app = tmp / "ray_app.py"
    app.write_text(RAY_APP)
    server = Server("Ray Serve")
    port = free_port()
    env = {
        **os.environ,
        "AZUREML_MODEL_DIR": str(model_dir),
        "SCORE_SCRIPT": str(SCRIPT),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    server.start([str(venv / "bin" / "python"), str(app), str(port)], env=env, cwd=tmp)
    headers = {"Content-Type": "application/json"}
    lua = loadgen.wrk_lua(tmp / "ray.lua", body, headers)
    try:
        return measure(server, f"http://127.0.0.1:{port}/score", lua, seconds, headers)
    finally:
        ray = venv / "bin" / "ray"
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, check=False)


def render(rows: dict) -> str:
    lines = [
        "| server (2 workers, same 2 cores) | requests/s | p50 | p99 | CPU per request | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['rps']:,.0f} | {row['p50']:.2f} ms | {row['p99']:.2f} ms "
            f"| {row['cpu_ms']:.2f} ms | {row['errors']} |"
        )
    weir_rps = rows["Weir (router + 2 replicas)"]["rps"]
    lines += [
        "",
        f"Ratios: Weir / azmlinfsrv {weir_rps / rows['azmlinfsrv 1.5.1']['rps']:.1f}× "
        f"requests/s; Weir / Ray Serve {weir_rps / rows['Ray Serve 2.60.0']['rps']:.1f}×.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--no-readme", action="store_true", help="only print the table")
    args = parser.parse_args()
    loadgen.ensure("wrk")
    sys.path.insert(0, str(ROOT / "examples"))
    import make_models

    model_dir = make_models.make()["model-1"].parent
    body = (EXAMPLES / "model-1" / "sample-request.json").read_text().replace("\n", " ")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows["Weir (router + 2 replicas)"] = weir(model_dir, args.seconds, tmp, body)
        rows["azmlinfsrv 1.5.1"] = azmlinfsrv(model_dir, args.seconds, tmp, body)
        rows["Ray Serve 2.60.0"] = ray_serve(model_dir, args.seconds, tmp, body)
    table = render(rows)
    print(table)
    if not args.no_readme:
        loadgen.write_readme("endtoend", table)


if __name__ == "__main__":
    main()
