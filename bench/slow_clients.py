"""The API and the blob store answering, idle and while slow clients are held open, in one run.

    python bench/slow_clients.py [--requests 100] [--rounds 3] [--clients 200] [--no-readme]

Both servers run as bin/start runs them (``manage.py serve`` and ``manage.py serve --blob``:
nginx in front of two gunicorn workers each), on a database of their own (weir_bench_serving,
dropped at the end) and a temporary data directory. For each server, requests one after
another on new TLS connections, ``--requests`` of each kind a round: ``GET /healthz`` (on
the blob store an address that names no container, which the blob server itself refuses
with a 400) and an authenticated GET (a workspace with a bearer token; a blob with a SAS).
Each round runs them idle, then while ``--clients`` anonymous TLS connections each send a
request line and one header line a second, never finishing (a connection the server drops
is replaced at once, as an attacker would). Reports p50/p99 idle and loaded, their ratios
(the goal: within 2x), the slow clients held throughout, and the memory they cost the
server's processes. Writes its table into README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import loadgen
import psycopg
import requests

from dataplane.agent.supervisor import free_port

ROOT = loadgen.ROOT
DATABASE = "weir_bench_serving"
SUBSCRIPTION = "00000000-0000-0000-0000-0000000be4c1"
WORKSPACE = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/bench/providers/"
    "Microsoft.MachineLearningServices/workspaces/bench"
)
API = "api-version=2024-04-01"
PATIENCE = 5  # seconds a request may take before it counts as an error
GOAL = 2.0


# --------------------------------------------------------------------------------------------
# Slow clients
# --------------------------------------------------------------------------------------------


def _hold(url: str, ca_bundle: str, count: int, held, stop) -> None:
    """In a process of its own: ``count`` connections trickling a header, each replaced as
    soon as the server lets it go, until ``stop`` is set. ``held`` counts those open."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_bundle)

    async def client() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(
                    parts.hostname, parts.port, ssl=context, server_hostname="localhost"
                )
            except OSError:
                await asyncio.sleep(0.1)
                continue
            with held.get_lock():
                held.value += 1
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
                line = 0
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(reader.read(1024), timeout=1)
                        break  # answered or closed: let go
                    except TimeoutError:
                        writer.write(b"X-Trickle-%d: x\r\n" % line)
                        line += 1
                        await writer.drain()
            except OSError:
                pass
            finally:
                with held.get_lock():
                    held.value -= 1
                writer.close()

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(count)))

    asyncio.run(main())


class SlowClients:
    def __init__(self, url: str, ca_bundle: str, count: int):
        context = multiprocessing.get_context("fork")
        self.held, self.stop = context.Value("i", 0), context.Event()
        self.count = count
        self.process = context.Process(
            target=_hold, args=(url, ca_bundle, count, self.held, self.stop), daemon=True
        )

    def __enter__(self) -> SlowClients:
        self.process.start()
        deadline = time.monotonic() + 30
        while self.held.value < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def series(get, count: int, held: SlowClients | None = None) -> dict:
    """``count`` requests one after another: their times in ms, errors (timeouts, 5xx), and
    the fewest slow clients held while they ran. Stops after 3 errors."""
    times, errors, fewest = [], 0, held.count if held else 0
    for _ in range(count):
        start = time.perf_counter()
        try:
            failed = get().status_code >= 500
        except requests.RequestException:
            failed = True
        times.append(1000 * (time.perf_counter() - start))
        errors += failed
        if held:
            fewest = min(fewest, held.held.value)
        if errors >= 3:
            break
    return {"times": times, "errors": errors, "held": fewest}


def combined(runs: list[dict]) -> dict:
    """p50/p99 over every run's times, errors summed, the fewest held."""
    times = sorted(t for run in runs for t in run["times"])
    return {
        "p50": statistics.median(times),
        "p99": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        "errors": sum(run["errors"] for run in runs),
        "held": min(run["held"] for run in runs),
    }


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next(
            int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS")
        )
        stack += children.get(current, [])
    return total


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


def recreate_database(url: str, drop_only: bool = False) -> None:
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def wait_up(url: str, ca_bundle: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            requests.get(f"{url}/healthz", verify=ca_bundle, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def run(args) -> dict:
    database_url = (
        os.environ.get("DATABASE_URL", "postgres://localhost/weir").rsplit("/", 1)[0]
        + f"/{DATABASE}"
    )
    recreate_database(database_url)
    servers: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory() as data:
            api_port, blob_port = free_port(), free_port()
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "controlplane.settings",
                "DATABASE_URL": database_url,
                "WEIR_DATA_DIR": data,
                "WEIR_BLOB_URL": f"https://localhost:{blob_port}",
                "PYTHONPATH": str(ROOT),
            }
            manage = [sys.executable, str(ROOT / "manage.py")]
            subprocess.run(
                [*manage, "migrate", "--noinput"],
                env=env,
                check=True,
                cwd=ROOT,
                capture_output=True,
            )
            token = subprocess.run(
                [*manage, "create_api_token", "bench", "--days", "1"],
                env=env,
                check=True,
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout.strip()
            log = open(Path(data) / "server.log", "ab")  # noqa: SIM115
            for flags in (
                ["--bind", f"127.0.0.1:{api_port}"],
                ["--blob", "--bind", f"127.0.0.1:{blob_port}"],
            ):
                servers.append(
                    subprocess.Popen(
                        [*manage, "serve", *flags],
                        env=env,
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            ca = str(Path(data) / "tls" / "server.crt")
            deadline = time.monotonic() + 30
            while not Path(ca).exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            api_url, blob_url = f"https://localhost:{api_port}", env["WEIR_BLOB_URL"]
            wait_up(api_url, ca, servers[0])
            wait_up(blob_url, ca, servers[1])
            return measure(args, api_url, blob_url, ca, token, servers)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=60)
        recreate_database(database_url, drop_only=True)


def measure(args, api_url, blob_url, ca, token, servers) -> dict:
    bearer = {"Authorization": f"Bearer {token}"}
    workspace = f"{api_url}{WORKSPACE}?{API}"
    created = requests.put(workspace, json={"location": "local"}, headers=bearer, verify=ca)
    assert created.status_code in (200, 201), created.text
    pending = requests.post(
        f"{api_url}{WORKSPACE}/codes/bench/versions/1/startPendingUpload?{API}",
        json={},
        headers=bearer,
        verify=ca,
    ).json()["blobReferenceForConsumption"]
    sas = urlsplit(pending["credential"]["sasUri"])
    blob = sas._replace(path=f"{sas.path}/bench.txt").geturl()
    stored = requests.put(
        blob, data=b"x" * 4096, headers={"x-ms-blob-type": "BlockBlob"}, verify=ca
    )
    assert stored.status_code == 201, stored.text

    def get(url: str, **kwargs):
        return lambda: requests.get(url, verify=ca, timeout=PATIENCE, **kwargs)

    kinds = {
        "API": (
            api_url,
            servers[0],
            [
                ("GET /healthz", get(f"{api_url}/healthz")),
                ("GET workspace (bearer token)", get(workspace, headers=bearer)),
            ],
        ),
        "blob store": (
            blob_url,
            servers[1],
            [
                ("GET /healthz (a 400 of its own)", get(f"{blob_url}/healthz")),
                ("GET blob (SAS)", get(blob)),
            ],
        ),
    }
    rows: dict = {}
    for server, (url, process, requests_) in kinds.items():
        for _, call in requests_:
            series(call, 20)  # both workers warm
        idle: dict = {name: [] for name, _ in requests_}
        loaded: dict = {name: [] for name, _ in requests_}
        # Idle and loaded rounds alternate, so that what else the machine does weighs on both.
        for round_ in range(args.rounds):
            if round_ == 0:
                memory_idle = rss_bytes(process.pid)
            for name, call in requests_:
                idle[name].append(series(call, args.requests))
            with SlowClients(url, ca, args.clients) as slow:
                if round_ == 0:
                    memory_loaded = rss_bytes(process.pid)
                for name, call in requests_:
                    loaded[name].append(series(call, args.requests, slow))
        for name, _ in requests_:
            rows[(server, name)] = {"idle": combined(idle[name]), "loaded": combined(loaded[name])}
        rows[(server, "memory")] = {"idle": memory_idle, "loaded": memory_loaded}
    return rows


def render(rows: dict, clients: int) -> str:
    lines = [
        f"| server | request | idle p50 | idle p99 | with {clients} slow clients p50 | p99 "
        "| ratio p50 | ratio p99 | slow clients held | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    worst = 0.0
    memory = []
    for (server, name), row in rows.items():
        if name == "memory":
            per = (row["loaded"] - row["idle"]) / clients / 1024
            memory.append(
                f"{server} {row['idle'] / 2**20:.0f} → {row['loaded'] / 2**20:.0f} MiB "
                f"({per:.0f} KiB per slow client)"
            )
            continue
        idle, loaded = row["idle"], row["loaded"]
        p50, p99 = loaded["p50"] / idle["p50"], loaded["p99"] / idle["p99"]
        worst = max(worst, p50, p99)
        lines.append(
            f"| {server} | {name} | {idle['p50']:.1f} ms | {idle['p99']:.1f} ms "
            f"| {loaded['p50']:.1f} ms | {loaded['p99']:.1f} ms | {p50:.2f}× | {p99:.2f}× "
            f"| {loaded['held']} | {idle['errors'] + loaded['errors']} |"
        )
    verdict = "met" if worst <= GOAL else "not met"
    lines += [
        "",
        f"Worst ratio {worst:.2f}× (goal: within {GOAL:.0f}×, {verdict}). Memory of the "
        f"server's processes (nginx and gunicorn), idle → held: {'; '.join(memory)}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="of each kind, per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--no-readme", action="store_true", help="only print the table")
    args = parser.parse_args()
    table = render(run(args), args.clients)
    print(table)
    if not args.no_readme:
        loadgen.write_readme("slow-clients", table)


if __name__ == "__main__":
    main()
