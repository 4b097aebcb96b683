"""Weir's inference server vs. Azure's azureml-inference-server-http (azmlinfsrv).

Both serve the same score.py (Azure's model-1 sample) and the same scikit-learn model, one
server process each, pinned to one core, with wrk on the other core sending the same load
(the sample request, 8 connections, keep-alive where the server allows it). Reports
requests/s and server CPU time per request, and the ratios, from one run:

    python bench/inference.py [--seconds 10]

It installs what it needs: wrk (apt) and azmlinfsrv in bench/.venv-azml (pip).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

import loadgen

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "online"
SCRIPT = loadgen.SCORE_SCRIPT
AZML_PACKAGES = [
    "azureml-inference-server-http==1.5.1",
    "scikit-learn==1.9.1",
    "numpy==2.4.6",
    "joblib",
]
SERVER_CPU, LOAD_CPU = "1", "0"


def ensure_tools() -> Path:
    loadgen.ensure("wrk")
    return loadgen.venv("azml", AZML_PACKAGES, "azmlinfsrv")


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


def measure(name: str, command: list[str], port: int, seconds: int, lua: Path, env: dict) -> dict:
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port, process)
        url = f"http://127.0.0.1:{port}/score"
        loadgen.wrk(url, 2, lua, LOAD_CPU)  # warm up
        before = loadgen.cpu_seconds(process.pid)
        result = loadgen.wrk(url, seconds, lua, LOAD_CPU)
        cpu = loadgen.cpu_seconds(process.pid) - before
        rate, requests, bad = result["rps"], result["requests"], result["errors"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "name": name,
        "rps": rate,
        "requests": requests,
        "errors": bad,
        "cpu_ms": 1000 * cpu / max(requests, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    azml_venv = ensure_tools()
    sys.path.insert(0, str(ROOT / "examples"))
    import make_models

    model_dir = make_models.make()["model-1"].parent
    body = (EXAMPLES / "model-1" / "sample-request.json").read_text().replace("\n", " ")
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = [[{body}]]\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        weir = measure(
            "weir (dataplane.inference)",
            loadgen.replica_command(model_dir, 5091),
            5091,
            args.seconds,
            lua,
            env,
        )
        azml = measure(
            "azmlinfsrv 1.5.1",
            [
                str(azml_venv / "bin" / "azmlinfsrv"),
                "--entry_script",
                str(SCRIPT),
                "--model_dir",
                str(model_dir),
                "--port",
                "5092",
            ],
            5092,
            args.seconds,
            lua,
            {**os.environ, "AZUREML_MODEL_DIR": str(model_dir)},
        )
    print(f"{'server':30} {'req/s':>10} {'CPU ms/req':>11} {'requests':>9} {'errors':>7}")
    for row in (weir, azml):
        print(
            f"{row['name']:30} {row['rps']:>10.0f} {row['cpu_ms']:>11.3f} "
            f"{row['requests']:>9} {row['errors']:>7}"
        )
    print(
        f"ratio weir/azmlinfsrv: {weir['rps'] / azml['rps']:.2f}x requests/s, "
        f"{weir['cpu_ms'] / azml['cpu_ms']:.2f}x CPU per request"
    )


if __name__ == "__main__":
    main()
