"""How the control plane's cost grows with what it holds, in one run: p50/p99 of reading one
endpoint, the first and a deep page of the endpoint list, the model list, one model's
versions and an operation poll, in a workspace with 0, 100, 1,000 and 10,000 endpoints (and
five model versions per endpoint: 50,000 at the largest size).

    python bench/scale.py [--requests 200] [--sizes 0,100,1000,10000] [--no-readme]

It runs the real HTTPS server (``manage.py serve``) on a database of its own
(weir_bench_scale, dropped and made again), seeds rows in bulk between sizes, and sends
each request ``--requests`` times, one after another on one keep-alive connection. The last
columns compare the largest size with 100 and 1,000 endpoints, where the endpoint and the
model list pages are already full (pages hold WEIR_PAGE_SIZE = 100 rows; there is one model
per ten endpoints): the ratio is the cost of what else is stored.
Writes its table into README.md between the ``bench:scale`` markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


class ControlPlane:
    def __init__(self, workdir: Path):
        base = os.environ.get("DATABASE_URL", "postgres://localhost/weir").rsplit("/", 1)[0]
        self.database_url = f"{base}/{DATABASE}"
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE}")
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
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000


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
    args = parser.parse_args()
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
        write_readme(table)


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


def write_readme(table: str) -> None:
    text = README.read_text()
    start, end = MARKERS
    if start not in text:
        print("README.md has no bench:scale markers; table not written", file=sys.stderr)
        return
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    README.write_text(f"{before}{start}\n{table}\n{end}{after}")


if __name__ == "__main__":
    main()
