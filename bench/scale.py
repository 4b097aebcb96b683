"""How the control plane's cost grows with what it holds, in one run: p50/p99 of reading one
endpoint, the first and a deep page of the endpoint list, the model list, one model's
versions and an operation poll, in a workspace with 0, 100, 1,000 and 10,000 endpoints (and
five model versions per endpoint: 50,000 at the largest size). Then the scoring router's:
its memory and start-up with a routing table of 0, 1,000 and 10,000 endpoints (two
deployments each), and how long a traffic change takes to be served at the largest size.

    python bench/scale.py [--requests 200] [--sizes 0,100,1000,10000] [--no-readme]
                          [--only control-plane|router] [--router-sizes 0,1000,10000]
                          [--changes 50]

It runs the real HTTPS server (``manage.py serve``) on a database of its own
(weir_bench_scale, dropped and made again), seeds rows in bulk between sizes, and sends
each request ``--requests`` times, one after another on one keep-alive connection. The last
columns compare the largest size with 100 and 1,000 endpoints, where the endpoint and the
model list pages are already full (pages hold WEIR_PAGE_SIZE = 100 rows; there is one model
per ten endpoints): the ratio is the cost of what else is stored.

The router runs as a black box, as bin/start runs it (``python -m dataplane.router``, one
serving process per core), fed from the Redis db WEIR_BENCH_REDIS names (default 9; its
routing keys are deleted first) with EndpointRoute entries written as the control plane
publishes them, in front of one tiny upstream (a thread answering 200) that every deployment
points at: the ``azureml-model-deployment`` response header says which one served. A change
is one endpoint's traffic 100/0 -> 0/100, written and announced in one MULTI (as
``controlplane.core.services.routing.publish`` does); it counts as served when four requests
in a row, each on a new connection (so any serving process may answer), come from the new
deployment.

Writes its tables into README.md between the ``bench:scale`` markers (control plane) and
the ``bench:scale-router`` markers (router).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.routing import (  # noqa: E402
    ROUTES,
    SIGNING_KEYS,
    DeploymentRoute,
    EndpointRoute,
    changed,
)
from dataplane.agent.supervisor import free_port  # noqa: E402

DATABASE = "weir_bench_scale"
API = "api-version=2024-04-01"
SUBSCRIPTION = "00000000-0000-0000-0000-00000000be11"
WS = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/bench/providers/"
    "Microsoft.MachineLearningServices/workspaces/scale"
)
VERSIONS_PER_MODEL = 50
MODEL_VERSIONS_PER_ENDPOINT = 5
# A file for model versions to point at, written into the workspace's default datastore.
STORE_MODEL_FILE = (
    "from controlplane.blobstore import storage\n"
    "from controlplane.core.models import Workspace\n"
    "account = storage.account_for(Workspace.objects.get())\n"
    "storage.write_blob(account, account.default_container, 'm/model.pkl', [b'model'])\n"
)
README = ROOT / "README.md"
MARKERS = ("<!-- bench:scale -->", "<!-- /bench:scale -->")
ROUTER_MARKERS = ("<!-- bench:scale-router -->", "<!-- /bench:scale-router -->")
FEED_URL = os.environ.get("WEIR_BENCH_REDIS", "redis://127.0.0.1:6379/9")
BENCH_KEY = "bench-key"
# Consecutive answers, each on a new connection, from the new deployment that count as the
# router serving a change.
SETTLED = 4
STARTS = 3


class ControlPlane:
    """The real HTTPS server on ``database`` (dropped and made again, then migrated), with a
    session holding an API token of the install's first principal (its Owner)."""

    def __init__(self, workdir: Path, database: str = DATABASE):
        base = os.environ.get("DATABASE_URL", "postgres://localhost/weir").rsplit("/", 1)[0]
        self.database_url = f"{base}/{database}"
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {database}")
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "DATABASE_URL": self.database_url,
            "WEIR_DATA_DIR": str(workdir),
            # Nothing consumes operations here: a queue of its own that nobody drains.
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/9",
        }
        manage = [sys.executable, "manage.py"]
        self.manage("migrate", "--noinput")
        token = subprocess.run(
            [*manage, "create_api_token", "bench", "--days", "1"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        port = free_port()
        self.base_url = f"https://localhost:{port}"
        self.server = subprocess.Popen(
            [*manage, "serve", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "server.log").open("w"),
        )
        self.log = workdir / "server.log"
        self.session = requests.Session()
        # Loopback only, and the certificate below, whatever REQUESTS_CA_BUNDLE says.
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.verify = str(workdir / "tls" / "server.crt")
        deadline = time.monotonic() + 60
        while True:
            try:
                if Path(self.session.verify).exists():
                    self.session.get(f"{self.base_url}/healthz", timeout=2)
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.server.poll() is not None:
                self.stop()
                raise RuntimeError(f"the control plane did not start:\n{self.log.read_text()}")
            time.sleep(0.2)

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def call(self, method: str, path: str, body=None) -> requests.Response:
        sep = "&" if "?" in path else "?"
        response = self.session.request(method, f"{self.base_url}{path}{sep}{API}", json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response

    def stop(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


def seed(plane: ControlPlane, first: int, last: int) -> None:
    """Endpoints ep{first..last-1} and their share of model versions, copied in bulk from
    the rows the API made for ep0 and model m0 version 1 (so every column is as the API
    writes it)."""
    with psycopg.connect(plane.database_url, autocommit=True) as conn:
        copy_rows(
            conn,
            "weir_onlineendpoint",
            "name = 'ep0'",
            first,
            last,
            {"name": "'ep' || n", "scoring_host": "'ep' || n || '.scale.localhost'"},
        )
        models_first, models_last = (
            first * MODEL_VERSIONS_PER_ENDPOINT // VERSIONS_PER_MODEL,
            last * MODEL_VERSIONS_PER_ENDPOINT // VERSIONS_PER_MODEL,
        )
        copy_rows(
            conn,
            "weir_modelcontainer",
            "name = 'm0'",
            max(models_first, 1),
            models_last,
            {"name": "'m' || n"},
        )
        containers = "SELECT id, name FROM weir_modelcontainer"
        template = conn.execute("SELECT id FROM weir_modelversion LIMIT 1").fetchone()[0]
        columns = column_names(conn, "weir_modelversion")
        values = [
            {"id": "gen_random_uuid()", "container_id": "c.id", "name": "v::text"}.get(c, f"t.{c}")
            for c in columns
        ]
        conn.execute(
            f"INSERT INTO weir_modelversion ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM weir_modelversion t, ({containers}) c, "
            f"generate_series(1, {VERSIONS_PER_MODEL}) v "
            f"WHERE t.id = %s AND substr(c.name, 2)::int BETWEEN %s AND %s "
            f"AND NOT (c.name = 'm0' AND v = 1)",
            (template, max(models_first, 0), models_last - 1),
        )
        conn.execute("ANALYZE")


def column_names(conn, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [name for (name,) in rows]


def copy_rows(conn, table: str, template: str, first: int, last: int, overrides: dict) -> None:
    if last <= first:
        return
    columns = column_names(conn, table)
    values = [{"id": "gen_random_uuid()", **overrides}.get(c, c) for c in columns]
    conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"FROM {table}, generate_series({first}, {last - 1}) n WHERE {template} AND n > 0"
    )


def measure(plane: ControlPlane, path: str, count: int) -> tuple[float, float]:
    sep = "&" if "?" in path else "?"
    url = f"{plane.base_url}{path}{sep}{API}"
    plane.session.get(url).raise_for_status()  # warm
    times = []
    for _ in range(count):
        started = time.perf_counter()
        plane.session.get(url).raise_for_status()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times) * 1000, quantile(times, 0.99) * 1000


def quantile(times: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``times`` (the sample at or below it)."""
    return times[max(int(len(times) * q) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sizes", default="0,100,1000,10000")
    parser.add_argument(
        "--baselines",
        default="100,1000",
        help="sizes the largest is compared with: 100 endpoints fill an endpoint page "
        "(WEIR_PAGE_SIZE), 1,000 fill a model page (100 models)",
    )
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--only", choices=("control-plane", "router"))
    parser.add_argument("--router-sizes", default="0,1000,10000")
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    if args.only != "router":
        control_plane(args)
    if args.only != "control-plane":
        table = router_scale([int(s) for s in args.router_sizes.split(",")], args.changes)
        print(table)
        if not args.no_readme:
            write_readme(table, ROUTER_MARKERS)


def control_plane(args) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        plane = ControlPlane(Path(workdir))
        try:
            plane.call("PUT", WS, {"location": "local"})
            endpoint = {"location": "local", "properties": {"authMode": "Key"}}
            created = plane.call("PUT", f"{WS}/onlineEndpoints/ep0", endpoint)
            status_url = created.headers["Azure-AsyncOperation"]
            operation = status_url.split("?")[0].removeprefix(plane.base_url)
            plane.manage("shell", "-c", STORE_MODEL_FILE)
            model = {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/m/"}}
            plane.call("PUT", f"{WS}/models/m0/versions/1", model)
            targets = {
                "GET one endpoint": f"{WS}/onlineEndpoints/ep0",
                "list endpoints, first page": f"{WS}/onlineEndpoints",
                "list endpoints, deep page": f"{WS}/onlineEndpoints?$skip={{deep}}",
                "list models": f"{WS}/models",
                "list one model's versions": f"{WS}/models/m0/versions",
                "poll an operation": operation,
            }
            results: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in targets}
            seeded = 1
            for size in sizes:
                if size > seeded:
                    started = time.monotonic()
                    seed(plane, seeded, size)
                    print(
                        f"seeded {size} endpoints in {time.monotonic() - started:.1f}s",
                        file=sys.stderr,
                    )
                    seeded = size
                deep = max(0, seeded - 20)
                for name, path in targets.items():
                    results[name][size] = measure(plane, path.format(deep=deep), args.requests)
                    print(name, size, results[name][size], file=sys.stderr)
        finally:
            plane.stop()
    baselines = [int(b) for b in args.baselines.split(",")]
    table = render(results, sizes, baselines, args.requests)
    print(table)
    if not args.no_readme:
        write_readme(table, MARKERS)


#
# The router
#
class Upstream(BaseHTTPRequestHandler):
    """The tiny upstream every deployment points at: 200 and a small JSON body."""

    protocol_version = "HTTP/1.1"
    # Buffered: the headers and the body leave in one write (two small writes would wait on
    # the router's delayed ACK, 40 ms each).
    wbufsize = -1

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def host(n: int) -> str:
    return f"ep{n}.scale.localhost"


def endpoint_route(n: int, replica: str, traffic: dict[str, int]) -> str:
    """Endpoint n's entry as the control plane publishes it: key auth, two deployments."""
    return EndpointRoute(
        name=f"ep{n}",
        workspace="scale",
        auth_mode="Key",
        key_digests=(hashlib.sha256(BENCH_KEY.encode()).hexdigest(),),
        traffic=traffic,
        deployments={
            name: DeploymentRoute(id=f"ep{n}-{name}", replicas=(replica,))
            for name in ("blue", "green")
        },
    ).to_json()


def write_table(feed: redis.Redis, first: int, last: int, replica: str) -> None:
    for start in range(first, last, 1000):
        feed.hset(
            ROUTES,
            mapping={
                host(n): endpoint_route(n, replica, {"blue": 100, "green": 0})
                for n in range(start, min(start + 1000, last))
            },
        )


def served_by(port: int, n: int) -> str | None:
    """Who served one request to endpoint n, on a new connection (None: not a 200)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(
            "POST",
            "/score",
            body=b"{}",
            headers={"Host": host(n), "Authorization": f"Bearer {BENCH_KEY}"},
        )
        response = conn.getresponse()
        response.read()
        return response.getheader("azureml-model-deployment") if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def wait_served(port: int, n: int, deployment: str, timeout: float = 120) -> float:
    """Seconds until SETTLED requests in a row to endpoint n come from ``deployment``."""
    started = time.perf_counter()
    in_a_row = 0
    while in_a_row < SETTLED:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"endpoint {n} not served by {deployment} in {timeout}s")
        in_a_row = in_a_row + 1 if served_by(port, n) == deployment else 0
    return time.perf_counter() - started


def rss_bytes(root: int) -> tuple[int, int]:
    """The summed RSS of process ``root`` and its children, and how many there are."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    total, count, queue = 0, 0, [root]
    while queue:
        pid = queue.pop()
        queue.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        total += int(rss.split()[1]) * 1024
        count += 1
    return total, count


def start_router(port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "WEIR_ROUTING_REDIS_URL": FEED_URL, "PYTHONPATH": str(ROOT)}
    env.pop("WEIR_ROUTER_PROCESSES", None)
    return subprocess.Popen(
        [sys.executable, "-m", "dataplane.router", "--port", str(port), "--access-log", "off"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def stop_router(router: subprocess.Popen) -> None:
    router.terminate()
    router.wait(timeout=30)


def router_scale(sizes: list[int], changes: int) -> str:
    feed = redis.Redis.from_url(FEED_URL)
    feed.delete(ROUTES, SIGNING_KEYS)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    replica = f"127.0.0.1:{upstream.server_address[1]}"
    rows, written = [], 0
    log = Path(tempfile.mkdtemp(prefix="weir-bench-router-")) / "router.log"
    try:
        for size in sizes:
            write_table(feed, written, size, replica)
            written = max(written, size)
            # Start-up is timed three times (the least counts: the machine may be shared).
            start_to_serving = math.inf
            for attempt in range(STARTS):
                port = free_port()
                started = time.perf_counter()
                router = start_router(port, log)
                try:
                    # Served once the last endpoint is (with no table: once it answers 404).
                    if size:
                        wait_served(port, size - 1, "blue")
                    else:
                        while not _answers_404(port):
                            time.sleep(0.01)
                except BaseException:
                    stop_router(router)
                    raise
                start_to_serving = min(start_to_serving, time.perf_counter() - started)
                if attempt < STARTS - 1:
                    stop_router(router)
            try:
                for n in random.sample(range(size), min(size, 200)) if size else ():
                    served_by(port, n)  # what serving touches, touched
                time.sleep(2)  # the load reporter and autoscaler have started their rounds
                rss, processes = rss_bytes(router.pid)
                delays = []
                if size == sizes[-1] and size:
                    for n in random.sample(range(size), min(changes, size)):
                        entry = endpoint_route(n, replica, {"blue": 0, "green": 100})
                        pipe = feed.pipeline()
                        pipe.hset(ROUTES, host(n), entry)
                        pipe.publish(changed(feed), host(n))
                        started_change = time.perf_counter()
                        pipe.execute()
                        wait_served(port, n, "green", timeout=30)
                        delays.append(time.perf_counter() - started_change)
                rows.append((size, rss, processes, start_to_serving, delays))
                print(
                    f"router at {size} endpoints: {rss / 2**20:.1f} MiB in {processes} "
                    f"processes, serving after {start_to_serving:.2f}s",
                    file=sys.stderr,
                )
            finally:
                stop_router(router)
    finally:
        upstream.shutdown()
        feed.delete(ROUTES, SIGNING_KEYS)
    return render_router(rows)


def render_router(rows) -> str:
    base_rss, base_start = rows[0][1], rows[0][3]
    lines = [
        "| routing table | router RSS (all processes) | growth per endpoint | "
        "start to serving | of which loading the table |",
        "|---|---|---|---|---|",
    ]
    for size, rss, processes, start, _ in rows:
        growth = f"{(rss - base_rss) / size:,.0f} B" if size and rows[0][0] == 0 else "—"
        loading = f"{start - base_start:.2f} s" if size and rows[0][0] == 0 else "—"
        lines.append(
            f"| {size:,} endpoints × 2 deployments | {rss / 2**20:.1f} MiB ({processes} "
            f"processes) | {growth} | {start:.2f} s | {loading} |"
        )
    size, _, processes, _, delays = rows[-1]
    delays = sorted(delays)
    if delays:
        p99 = delays[max(int(len(delays) * 0.99) - 1, 0)]
        lines += [
            "",
            f"A traffic change (100/0 → 0/100) at {size:,} endpoints, from its MULTI to the "
            f"router serving it ({SETTLED} answers in a row on new connections), over "
            f"{len(delays)} changes: p50 {statistics.median(delays) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms.",
        ]
    lines += [
        "",
        f"(The router as bin/start runs it, {rows[0][2] - 1} serving processes and their "
        "supervisor, each serving process holding the whole table; RSS summed over them. "
        f"Start to serving is the least of {STARTS} starts; loading is that minus the same at "
        "0 endpoints.)",
    ]
    return "\n".join(lines)


def _answers_404(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("POST", "/score", body=b"{}", headers={"Host": host(0)})
        response = conn.getresponse()
        response.read()
        return response.status == 404
    except OSError:
        return False
    finally:
        conn.close()


def render(results, sizes: list[int], baselines: list[int], count: int) -> str:
    header = "| request | " + " | ".join(f"{s:,} endpoints p50 / p99" for s in sizes)
    header += "".join(f" | p50 at {sizes[-1]:,} ÷ at {b:,}" for b in baselines) + " |"
    lines = [header, "|---" * (len(sizes) + len(baselines) + 1) + "|"]
    for name, by_size in results.items():
        cells = [f"{by_size[s][0]:.1f} / {by_size[s][1]:.1f} ms" for s in sizes]
        ratios = [f"{by_size[sizes[-1]][0] / by_size[b][0]:.2f}×" for b in baselines]
        lines.append(f"| {name} | " + " | ".join(cells + ratios) + " |")
    lines.append("")
    lines.append(
        f"({count} sequential requests each on one keep-alive HTTPS connection; at the largest "
        f"size the workspace also holds {sizes[-1] * MODEL_VERSIONS_PER_ENDPOINT:,} model "
        f"versions in {sizes[-1] * MODEL_VERSIONS_PER_ENDPOINT // VERSIONS_PER_MODEL:,} models.)"
    )
    return "\n".join(lines)


def write_readme(table: str, markers: tuple[str, str]) -> None:
    text = README.read_text()
    start, end = markers
    if start not in text:
        print(f"README.md has no {start} marker; table not written", file=sys.stderr)
        return
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    README.write_text(f"{before}{start}\n{table}\n{end}{after}")


if __name__ == "__main__":
    main()
