"""What the benchmarks share: installing their tools and running wrk on a core of its own."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

# Debian packages of the tools the benchmarks run.
PACKAGES = {"wrk": "wrk", "nginx": "nginx-light"}


def ensure(*tools: str) -> None:
    missing = [PACKAGES[tool] for tool in tools if not shutil.which(tool)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)


def wrk(url: str, seconds: int, lua: Path, cpu: str, connections: int = 8) -> dict:
    """Run wrk pinned to ``cpu``; requests/s, requests, p50/p99 in ms, and errors (non-2xx
    responses plus socket errors)."""
    output = subprocess.run(
        [
            "taskset",
            "-c",
            cpu,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(lua),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    def latency(percentile: str) -> float:
        value, unit = re.search(rf"{percentile}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": errors,
    }
