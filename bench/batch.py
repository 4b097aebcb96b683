"""Batch scoring's cost: Weir's batch job against the same ``run()`` called in a plain
Python loop over the same files, and the job with 1, 2 and 4 scoring processes, in one run.

    python bench/batch.py [--files 64] [--lines 5000] [--no-readme]

The job runs as the batch worker runs it (the ``weir.run_batch_job`` task body, in this
process, against Postgres database ``weir_bench_batch``, made afresh): invoke through the API,
fetch the input folder from the blob store, split it into mini-batches of 4 files, score them
in ``maxConcurrencyPerInstance`` driver processes with the ledger committed per mini-batch,
merge the parts and store predictions.csv. The plain loop is the scoring script imported in
the job environment's own python, ``init()`` once and ``run()`` over the same mini-batches,
its results joined into one file. Each figure is the best of --runs; rows/s counts output
rows; the last column is the time the scoring processes spent in run() and writing its
result, from the job's ledger. The environment (stdlib only) is built once before timing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402

DATABASE = "weir_bench_batch"
MINI_BATCH = 4
# A scoring script with real work per row: parse a CSV line, compute a score, format it.
SCRIPT = """import math
import os

def init():
    global weights
    weights = [0.5, -0.25, 0.125]

def run(mini_batch):
    rows = []
    for path in mini_batch:
        name = os.path.basename(path)
        with open(path) as f:
            for index, line in enumerate(f):
                values = [float(v) for v in line.split(",")]
                score = 1 / (1 + math.exp(-sum(w * v for w, v in zip(weights, values))))
                rows.append(f"{name} {index} {score:.6f}")
    return rows
"""
PLAIN = """import importlib.util, json, sys, time
spec = importlib.util.spec_from_file_location("score", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
batches = json.loads(open(sys.argv[2]).read())
started = time.perf_counter()
module.init()
with open(sys.argv[3], "w") as out:
    for batch in batches:
        rows = module.run(batch)
        out.write("\\n".join(rows) + "\\n")
print(time.perf_counter() - started)
"""
CONDA = "name: bench\\ndependencies:\\n  - pip\\n"


def setup(data_dir: Path) -> None:
    os.environ["WEIR_DATA_DIR"] = str(data_dir)
    os.environ["DATABASE_URL"] = f"postgres://localhost/{DATABASE}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    subprocess.run(["dropdb", "--if-exists", DATABASE], check=True)
    subprocess.run(["createdb", DATABASE], check=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    logging.getLogger("workers").setLevel(logging.WARNING)


def client():
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from controlplane.core.models import ApiToken

    user = get_user_model().objects.create(username="bench")
    _, token = ApiToken.issue(user, "bench", days=1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


WS = (
    "/subscriptions/00000000-0000-0000-0000-00000000b0b0/resourceGroups/rg/providers/"
    "Microsoft.MachineLearningServices/workspaces/bench"
)


def put(api, path: str, body: dict) -> dict:
    response = api.put(f"{WS}{path}?api-version=2024-04-01", body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def make_files(folder: Path, files: int, lines: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for index in range(files):
        path = folder / f"input-{index:04d}.csv"
        path.write_text(
            "".join(f"{i % 7 * 0.5},{i % 11 * 0.25},{i % 13 * 0.125}\n" for i in range(lines))
        )
        paths.append(path)
    return paths


def prepare(api, paths: list[Path]) -> None:
    from controlplane.blobstore import storage
    from controlplane.core.models import Workspace

    put(api, "", {"location": "local"})
    account = storage.account_for(Workspace.objects.get())
    container = account.default_container
    storage.write_blob(account, container, "code/score.py", [SCRIPT.encode()])
    storage.write_blob(account, container, "model/m.txt", [b"m"])
    for path in paths:
        storage.write_blob(account, container, f"inputs/{path.name}", [path.read_bytes()])
    store = "azureml://datastores/workspaceblobstore/paths"
    put(api, "/codes/score/versions/1", {"properties": {"codeUri": f"{store}/code/"}})
    put(api, "/models/m/versions/1", {"properties": {"modelUri": f"{store}/model/"}})
    env = {"properties": {"image": "python:3.11-slim", "condaFile": CONDA}}
    put(api, "/environments/bench/versions/1", env)
    cluster = {"computeType": "AmlCompute", "properties": {"scaleSettings": {"maxNodeCount": 1}}}
    put(api, "/computes/cluster", {"location": "local", "properties": cluster})
    put(api, "/batchEndpoints/bench", {"location": "local", "properties": {"authMode": "AADToken"}})


def job(api, processes: int) -> tuple[float, int, float]:
    """Seconds from invoke to Completed, output rows, and the seconds the scoring processes
    spent in run() and writing its result (summed over mini-batches), for one job."""
    import workers.tasks  # noqa: F401 - registers the tasks
    from controlplane.batch.models import BatchJob
    from workers.celery_app import app

    name = f"procs-{processes}"
    deployment = {
        "model": {"referenceType": "Id", "assetId": "azureml:m:1"},
        "codeConfiguration": {"codeId": "azureml:score:1", "scoringScript": "score.py"},
        "environmentId": "azureml:bench:1",
        "compute": "azureml:cluster",
        "miniBatchSize": MINI_BATCH,
        "maxConcurrencyPerInstance": processes,
    }
    put(
        api,
        f"/batchEndpoints/bench/deployments/{name}",
        {"location": "local", "properties": deployment},
    )
    uri = api.get(f"{WS}/batchEndpoints/bench?api-version=2024-04-01").json()["properties"][
        "scoringUri"
    ]
    body = {
        "properties": {
            "inputData": {
                "in": {
                    "jobInputType": "UriFolder",
                    "uri": "azureml://datastores/workspaceblobstore/paths/inputs/",
                }
            }
        }
    }
    started = time.perf_counter()
    response = api.post(uri, body, format="json", HTTP_AZUREML_MODEL_DEPLOYMENT=name)
    assert response.status_code == 201, response.content
    row = BatchJob.objects.get(name=response.json()["name"])
    app.tasks["weir.run_batch_job"](job_id=str(row.pk))
    seconds = time.perf_counter() - started
    row.refresh_from_db()
    assert row.status == "Completed", row.error
    batches = list(row.ledger.all())
    return seconds, sum(b.items for b in batches), sum(b.seconds or 0 for b in batches)


def plain(python: Path, script: Path, paths: list[Path], out: Path) -> float:
    batches = [
        [str(p) for p in paths[i : i + MINI_BATCH]] for i in range(0, len(paths), MINI_BATCH)
    ]
    listing = out.with_suffix(".json")
    listing.write_text(json.dumps(batches))
    runner = out.with_suffix(".py")
    runner.write_text(PLAIN)
    started = time.perf_counter()
    subprocess.run([str(python), str(runner), str(script), str(listing), str(out)], check=True)
    return time.perf_counter() - started


def environment_python() -> Path:
    from workers.builds import environment

    spec = environment.spec_for(_environment())
    return environment.ensure(spec, lambda line: None) / "bin" / "python"


def _environment():
    from controlplane.core import references
    from controlplane.core.models import Workspace

    return references.resolve(Workspace.objects.get(), "azureml:bench:1", "environments")


def render(rows: int, files: int, plain_s: float, jobs: dict[int, tuple[float, float]]) -> str:
    lines = [
        "| what | processes | seconds | rows/s | throughput vs the plain loop "
        "| in run(), summed over mini-batches |",
        "|---|---|---|---|---|---|",
        f"| `run()` in a plain loop | 1 | {plain_s:.2f} | {rows / plain_s:,.0f} | 1.00× "
        f"| {plain_s:.2f} s |",
    ]
    for processes, (seconds, in_run) in jobs.items():
        lines.append(
            f"| Weir batch job | {processes} | {seconds:.2f} | {rows / seconds:,.0f} | "
            f"{plain_s / seconds:.2f}× | {in_run:.2f} s |"
        )
    overhead = jobs[1][0] / plain_s - 1
    lines.append("")
    lines.append(
        f"({rows:,} rows from {files} files in mini-batches of {MINI_BATCH}; the job's time runs "
        "from invoke to Completed, with fetching the input, the ledger, merging and storing "
        f"the output. Overhead of the job with one process over the plain loop: "
        f"{overhead:+.0%}. This machine has {os.cpu_count()} cores.)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true", help="only print the table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weir-bench-batch-") as tmp:
        root = Path(tmp)
        setup(root / "data")
        api = client()
        paths = make_files(root / "inputs", args.files, args.lines)
        prepare(api, paths)
        python = environment_python()
        script = root / "score.py"
        script.write_text(SCRIPT)
        plain_s = min(
            plain(python, script, paths, root / f"plain{i}.txt") for i in range(args.runs)
        )
        rows = sum(1 for _ in (root / "plain0.txt").open())
        jobs = {}
        for processes in (1, 2, 4):
            results = [job(api, processes) for _ in range(args.runs)]
            assert all(count == rows for _, count, _ in results), (results, rows)
            best = min(results)
            jobs[processes] = (best[0], best[2])
            print(f"{processes} process(es): {best[0]:.2f} s", flush=True)
    table = render(rows, args.files, plain_s, jobs)
    print(table)
    if not args.no_readme:
        loadgen.write_readme("batch", table)


if __name__ == "__main__":
    main()
