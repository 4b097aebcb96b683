"""What the benchmarks share: installing their tools, running wrk and hey, reading CPU time,
and writing their tables into the README."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import Request, urlopen

from contracts.routing import DeploymentRoute, EndpointRoute

ROOT = Path(__file__).resolve().parents[1]
# Debian packages of the tools the benchmarks run.
PACKAGES = {"wrk": "wrk", "nginx": "nginx-light", "hey": "hey"}
TICKS = os.sysconf("SC_CLK_TCK")


def ensure(*tools: str) -> None:
    missing = [PACKAGES[tool] for tool in tools if not shutil.which(tool)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)


def wait_up(url: str, headers: dict | None = None, timeout: float = 60, body=b"{}") -> None:
    """Until ``url`` answers a POST with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urlopen(Request(url, data=body, headers=headers or {}), timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def wrk_lua(path: Path, body: str, headers: dict) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = [[{body}]]"]
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _wrk_command(url, seconds, lua, cpu, connections, threads) -> list[str]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["-s", str(lua), url]
    return ["taskset", "-c", cpu, *command] if cpu else command


def _parse_wrk(output: str) -> dict:
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


def wrk(
    url: str,
    seconds: int,
    lua: Path,
    cpu: str | None = None,
    connections: int = 8,
    threads: int = 1,
) -> dict:
    """Run wrk (pinned to ``cpu`` if given): requests/s, requests, p50/p99 in ms, and errors
    (non-2xx responses plus socket errors)."""
    command = _wrk_command(url, seconds, lua, cpu, connections, threads)
    return _parse_wrk(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def wrk_together(urls: list[str], seconds: int, lua: Path, connections: int = 8) -> dict:
    """One wrk per URL at the same time (e.g. each replica directly): summed requests/s and
    errors, the worst p50/p99."""
    runs = [
        subprocess.Popen(
            _wrk_command(url, seconds, lua, None, connections, 1),
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    results = [_parse_wrk(run.communicate()[0]) for run in runs]
    return {
        "rps": sum(r["rps"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p99": max(r["p99"] for r in results),
        "errors": sum(r["errors"] for r in results),
    }


def hey(url: str, seconds: int, rate: int, body: str, headers: dict, workers: int = 10) -> dict:
    """A fixed offered load: ``rate`` requests/s for ``seconds`` (hey, ``workers`` clients
    each capped at rate/workers). p50/p99 in ms, requests, errors (non-200)."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", str(rate // workers)]
    command += ["-m", "POST", "-d", body]
    for name, value in headers.items():
        # hey sends its own Host header unless told with -host.
        command += ["-host", value] if name.lower() == "host" else ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout

    def latency(percentile: str) -> float:
        return 1000 * float(re.search(rf"{percentile}%+ in ([\d.]+) secs", output).group(1))

    found = re.findall(r"\[(\d+)\]\s+(\d+) responses", output)
    statuses = {int(code): int(count) for code, count in found}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": sum(statuses.values()),
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": sum(n for code, n in statuses.items() if code != 200),
    }


def cpu_seconds(*root_pids: int) -> float:
    """User + system CPU of processes and all their descendants."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    total, stack = 0, list(root_pids)
    while stack:
        pid = stack.pop()
        if pid in stats:
            total += int(stats[pid][11]) + int(stats[pid][12])
        stack += children.get(pid, [])
    return total / TICKS


def write_readme(section: str, text: str) -> None:
    """Replace what stands between ``<!-- bench:{section} -->`` and ``<!-- /bench:{section}
    -->`` in the README with ``text``."""
    readme = ROOT / "README.md"
    content = readme.read_text()
    start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    if start not in content or end not in content:
        print(f"README has no {start} ... {end} markers; table not written")
        return
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text.strip()}\n{end}{tail}")
    print(f"README.md: {section} table updated")


def venv(name: str, packages: list[str], check: str) -> Path:
    """bench/.venv-{name} with ``packages`` (pip), made once; ``check`` is a file in its bin/
    that shows the install finished. Returns the venv's directory."""
    directory = ROOT / "bench" / f".venv-{name}"
    if not (directory / "bin" / check).exists():
        subprocess.run(["python3", "-m", "venv", str(directory)], check=True)
        pip = [str(directory / "bin" / "pip"), "install", "-q", *packages]
        subprocess.run(pip, check=True)
    return directory


# Weir's pieces as the benchmarks run them.
SCORE_SCRIPT = ROOT / "examples" / "online" / "model-1" / "onlinescoring" / "score.py"
# Not 14 or 15: the tests feed their routers from those.
FEED_URL = os.environ.get("WEIR_BENCH_REDIS", "redis://127.0.0.1:6379/9")
BENCH_KEY = "bench-key"


def replica_command(model_dir: Path, port: int, script: Path = SCORE_SCRIPT) -> list[str]:
    """One replica of Weir's inference server serving ``script``."""
    return [
        sys.executable,
        "-m",
        "dataplane.inference",
        "--entry-script",
        str(script),
        "--model-dir",
        str(model_dir),
        "--port",
        str(port),
    ]


def route(name: str, replicas: list[str], per_replica: int) -> str:
    """A routing-table entry (as the control plane publishes it) for one key-auth endpoint
    whose one deployment, blue, takes all traffic."""
    return EndpointRoute(
        name=name,
        workspace="bench",
        auth_mode="Key",
        key_digests=(hashlib.sha256(BENCH_KEY.encode()).hexdigest(),),
        traffic={"blue": 100},
        deployments={
            "blue": DeploymentRoute(
                id=f"bench-{name}",
                replicas=tuple(replicas),
                max_concurrent_requests_per_instance=per_replica,
            )
        },
    ).to_json()
