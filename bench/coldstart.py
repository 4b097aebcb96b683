"""Cold starts from zero replicas: the sample scikit-learn model (examples/online/model-1)
deployed with ``minInstances: 0`` on the whole stack (API, workers, agent, router, as the
system tests run it), scaled to zero by idleness ``--activations`` times, each time woken by
one scoring request. Reports p50/p99 of that first request's latency from zero (and of the
time the router held it, ``x-weir-cold-start-ms``) beside a warm request's, and where the
time goes: router to activation sent, activation to the worker's scale operation,
then the replica's start (process, imports, ``init()``) and readiness until the router has
the route.

    python bench/coldstart.py [--activations 20] [--no-readme]

The environment is built once, in ``bench/.coldstart`` (kept between runs: its venv and uv
cache are the "cached environment"); every activation reuses it. Postgres database
weir_bench_coldstart (dropped and made again) and the Redis db WEIR_BENCH_REDIS names
(default 9, flushed). Writes its table into README.md between the ``bench:coldstart``
markers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from bench.loadgen import write_readme  # noqa: E402
from tests.system.conftest import running_stack  # noqa: E402

ONLINE = ROOT / "examples" / "online"
SAMPLE = (ONLINE / "model-1" / "sample-request.json").read_bytes()
CONDA = (ONLINE / "model-1" / "environment" / "conda.yaml").read_text()
DATA = ROOT / "bench" / ".coldstart"
REDIS = os.environ.get("WEIR_BENCH_REDIS", "redis://127.0.0.1:6379/9")


def upload_dir(stack, workspace: str, directory: Path, collection: str) -> str:
    files = {
        f"{directory.name}/{path.relative_to(directory)}": path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }
    return stack.upload(workspace, files, collection) + f"/{directory.name}"


def register(stack, workspace: str, collection: str, name: str, properties: dict) -> None:
    response = stack.call("PUT", f"{workspace}/{collection}/{name}/versions/1", properties)
    assert response.status_code == 201, response.text


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise SystemExit(f"{what} did not happen within {timeout:.0f}s")


def deploy(stack, workspace: str, model_dir: Path) -> tuple[str, dict]:
    """The sample model behind endpoint ``cold``, deployment ``blue`` (min 0, max 1,
    scaleToZeroAfter PT1S); returns the deployment's path and the scoring headers."""
    model_uri = upload_dir(stack, workspace, model_dir, "models")
    register(stack, workspace, "models", "diabetes", {"properties": {"modelUri": model_uri}})
    code_uri = upload_dir(stack, workspace, ONLINE / "model-1" / "onlinescoring", "codes")
    register(stack, workspace, "codes", "score", {"properties": {"codeUri": code_uri}})
    environment = {"properties": {"image": "python:3.11-slim", "condaFile": CONDA}}
    register(stack, workspace, "environments", "sklearn", environment)
    endpoint = f"{workspace}/onlineEndpoints/cold"
    response = stack.call("PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    stack.wait_for_status(response.headers["Azure-AsyncOperation"])
    path = f"{endpoint}/deployments/blue"
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "model": "azureml:diabetes:1",
            "environmentId": "azureml:sklearn:1",
            "codeConfiguration": {"codeId": "azureml:score:1", "scoringScript": "score.py"},
            "scaleSettings": {
                "scaleType": "TargetUtilization",
                "minInstances": 0,
                "maxInstances": 1,
                "pollingInterval": "PT1S",
                "targetUtilizationPercentage": 70,
                "scaleToZeroAfter": "PT1S",
            },
        },
    }
    started = time.monotonic()
    response = stack.call("PUT", path, body)
    status = stack.wait_for_status(response.headers["Azure-AsyncOperation"], 900)
    assert status["status"] == "Succeeded", status
    print(f"deployed in {time.monotonic() - started:.1f} s (environment build included)")
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": {"blue": 100}}}
    stack.wait_for_status(stack.call("PUT", endpoint, body).headers["Azure-AsyncOperation"])
    uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    headers = {
        "Host": urlsplit(uri).netloc,
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
    }
    return path, headers


def at_zero(stack, path: str) -> bool:
    return (
        stack.call("GET", path).json()["sku"]["capacity"] == 0
        and stack.agent_status("blue")["replicas"] == []
    )


def activations(stack, path: str, headers: dict, count: int) -> list[dict]:
    session = requests.Session()

    def score() -> tuple[float, requests.Response]:
        started = time.perf_counter()
        answer = session.post(f"{stack.router_url}/score", SAMPLE, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        return time.perf_counter() - started, answer

    score()
    runs = []
    for number in range(count):
        wait_for(lambda: at_zero(stack, path), 120, "scaling to zero")
        time.sleep(0.3)  # the route without replicas is published with the operation's end
        sent = time.time()
        cold, answer = score()
        held = float(answer.headers["x-weir-cold-start-ms"]) / 1000
        warm = sorted(score()[0] for _ in range(5))[2]
        events = stack.call("GET", f"{path}/scaleEvents").json()["value"]
        up = next(e for e in events if e["action"] == "ScaleUp")
        decided = datetime.fromisoformat(up["decidedAt"]).timestamp()
        runs.append({"cold": cold, "held": held, "warm": warm, "to_activation": decided - sent})
        print(
            f"activation {number + 1}: first request {cold * 1000:.0f} ms "
            f"(held {held * 1000:.0f} ms, activation sent after "
            f"{(decided - sent) * 1000:.0f} ms), warm {warm * 1000:.1f} ms"
        )
    return runs


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def render(runs: list[dict], replica_start: dict) -> str:
    cold = [r["cold"] * 1000 for r in runs]
    held = [r["held"] * 1000 for r in runs]
    warm = [r["warm"] * 1000 for r in runs]
    activation = [r["to_activation"] * 1000 for r in runs]
    p50, p99 = percentile(cold, 50), percentile(cold, 99)
    warm50 = statistics.median(warm)
    lines = [
        f"{len(runs)} activations from zero of the sample model (scikit-learn Ridge, "
        "examples/online/model-1), environment cached; one run on this machine:",
        "",
        "| request | p50 | p99 | vs warm p50 |",
        "|---|---|---|---|",
        f"| first request from zero | {p50:.0f} ms | {p99:.0f} ms | {p50 / warm50:.0f}× |",
        f"| of which held by the router (`x-weir-cold-start-ms`) | "
        f"{percentile(held, 50):.0f} ms | {percentile(held, 99):.0f} ms | |",
        f"| of which until the activation was sent | {percentile(activation, 50):.0f} ms | "
        f"{percentile(activation, 99):.0f} ms | |",
        f"| warm request (median of 5 after each) | {warm50:.1f} ms | "
        f"{percentile(warm, 99):.1f} ms | 1× |",
    ]
    if replica_start:
        lines += [
            "",
            "The replica's own start, measured apart (its environment's interpreter, "
            f"median of {replica_start['runs']}): {replica_start['imports'] * 1000:.0f} ms to "
            f"import the inference server and the script, {replica_start['init'] * 1000:.0f} "
            f"ms in `init()` (joblib loads the model), {replica_start['total'] * 1000:.0f} ms "
            "from exec to listening.",
        ]
    return "\n".join(lines)


def replica_start(stack, runs: int = 5) -> dict:
    """Start the deployment's replica command by hand (as the agent does) and time its
    log lines: interpreter and imports, init(), listening."""
    import subprocess

    spec_dir = Path(stack.env["WEIR_DATA_DIR"]) / "agent" / "desired"
    spec = json.loads(next(spec_dir.glob("*.json")).read_text())
    samples = {"imports": [], "init": [], "total": []}
    socket_path = Path(stack.env["WEIR_DATA_DIR"]) / "bench.sock"
    for _ in range(runs):
        command = [part.replace("{socket}", str(socket_path)) for part in spec["command"]]
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=spec["cwd"],
            env={"PATH": os.environ["PATH"], **spec["env"], "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        marks = {}
        for line in process.stdout:
            now = time.perf_counter() - started
            if "calling init()" in line:
                marks["imports"] = now
            elif "init() finished" in line:
                marks["init"] = now
            elif line.startswith("READY"):
                marks["total"] = now
                break
        process.terminate()
        process.wait()
        if len(marks) == 3:
            samples["imports"].append(marks["imports"])
            samples["init"].append(marks["init"] - marks["imports"])
            samples["total"].append(marks["total"])
    if not samples["total"]:
        return {}
    return {"runs": len(samples["total"]), **{k: statistics.median(v) for k, v in samples.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--activations", type=int, default=20)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    import make_models

    models = make_models.make()
    DATA.mkdir(parents=True, exist_ok=True)
    with running_stack(DATA, "weir_bench_coldstart", REDIS) as stack:
        stack.subscription = "00000000-0000-0000-0000-00000000c01d"
        stack.workspace_name = "bench"
        workspace = stack.ws()
        assert stack.call("PUT", workspace, {"location": "local"}).status_code == 201
        path, headers = deploy(stack, workspace, models["model-1"])
        runs = activations(stack, path, headers, args.activations)
        started = replica_start(stack)
    table = render(runs, started)
    print(table)
    if not args.no_readme:
        write_readme("coldstart", table)


if __name__ == "__main__":
    main()
