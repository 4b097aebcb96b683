"""The admin portal's speed and page weight, against its goals: the overview (``/portal/``)
with 200 endpoints renders in 200 ms or less server-side, and no page loads more than 200 KB
of JavaScript.

    python bench/portal.py [--requests 50] [--endpoints 200] [--no-readme] [--profile]

It runs the real HTTPS server (``manage.py serve``, as bench/scale.py does) on a database of
its own (weir_bench_portal, dropped and made again), where it makes four workspaces through
the API and then, in bulk, ``--endpoints`` endpoints spread over them with two deployments
each (settled, mostly healthy, a few degraded or failed) and 60 minutes of per-minute
scoring metrics per deployment; and, through the API, a local user who is Owner at ``/``
and signs in through the password form at /auth/login as a browser does (CSRF token, cookie
and Referer).

Then, as that person, on one keep-alive connection, round by round (so the machine's noise
falls on each alike): the overview, one endpoint's page (its six charts over the last hour)
and, for comparison, the API's list of the same endpoints (``{workspace}/onlineEndpoints``,
one request per workspace) — ``--requests`` rounds, p50 and p95. The same requests are timed
again inside Django (``django.test.Client`` in this process, on the same database), which
leaves out TLS, nginx and gunicorn: the server-side time the goal is about.

Page weight: each page's HTML, and the scripts and stylesheets it links, as fetched from the
server (bytes on the wire, and gzipped here when the server sends them uncompressed).

Writes its tables into README.md between the ``bench:portal`` markers. ``--profile`` also
prints where the overview's time goes in Django (cProfile, by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gzip
import os
import pstats
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402
from scale import API, SUBSCRIPTION, ControlPlane, quantile  # noqa: E402

DATABASE = "weir_bench_portal"
WORKSPACES = ("alpha", "beta", "gamma", "delta")
DEPLOYMENTS = ("blue", "green")
MINUTES = 60
USERNAME = "bench-admin"
# The goals: the overview's server-side time, and the JavaScript any page loads.
OVERVIEW_GOAL_MS = 200
JS_BUDGET = 200_000
PAGES = {
    "overview": "/portal/",
    "endpoint": "/portal/endpoints/{endpoint}",
    "operations": "/portal/operations",
    "batch": "/portal/batch",
    "assets": "/portal/assets",
    "people": "/portal/people",
    "audit": "/portal/audit",
}


def workspace_path(name: str) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/bench/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{name}"
    )


#
# The install: workspaces and the person through the API, the rest in bulk
#
def seed(plane: ControlPlane, count: int, password: str) -> str:
    """The workspaces, ``count`` endpoints with their deployments and metrics, and the
    person who signs in; returns the first endpoint's id (the endpoint page's)."""
    for name in WORKSPACES:
        plane.call("PUT", workspace_path(name), {"location": "local"})

    make_owner(plane, password)

    from contracts.metrics import LATENCY_BUCKETS
    from contracts.routing import DeploymentRoute
    from controlplane.core.choices import (
        AuthMode,
        DeploymentProvisioningState,
        EndpointComputeType,
        ProvisioningState,
    )
    from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Workspace
    from controlplane.core.models.endpoint import scoring_host
    from controlplane.metrics.models import DeploymentMinute

    rng = random.Random(7)
    workspaces = list(Workspace.objects.order_by("name"))
    endpoints, deployments = [], []
    for n in range(count):
        workspace = workspaces[n % len(workspaces)]
        name = f"ep{n}"
        traffic = {"blue": 90, "green": 10} if n % 3 else {"blue": 100}
        endpoint = OnlineEndpoint(
            workspace=workspace,
            name=name,
            location="local",
            created_by="bench",
            modified_by="bench",
            auth_mode=AuthMode.KEY,
            traffic=traffic,
            applied_traffic=traffic,
            mirror_traffic={"green": 20} if n % 10 == 5 else {},
            scoring_host=scoring_host(name, workspace.name),
            primary_key=secrets.token_urlsafe(32),
            secondary_key=secrets.token_urlsafe(32),
            provisioning_state=ProvisioningState.SUCCEEDED,
        )
        endpoints.append(endpoint)
        for deployment_name in DEPLOYMENTS:
            pk = uuid.uuid4()
            desired = 2 if deployment_name == "blue" else 1
            # Every 25th endpoint has a replica missing (degraded); every 50th a failed green.
            ready = desired - 1 if n % 25 == 7 and deployment_name == "blue" else desired
            failed = n % 50 == 13 and deployment_name == "green"
            deployments.append(
                OnlineDeployment(
                    id=pk,
                    endpoint=endpoint,
                    name=deployment_name,
                    location="local",
                    created_by="bench",
                    modified_by="bench",
                    sku={"name": "Default", "capacity": desired},
                    instance_count=desired,
                    endpoint_compute_type=EndpointComputeType.MANAGED,
                    model=f"{workspace.arm_id}/models/m{n % 5}/versions/1",
                    environment_id=f"{workspace.arm_id}/environments/env/versions/1",
                    code_configuration={
                        "codeId": f"{workspace.arm_id}/codes/score/versions/1",
                        "scoringScript": "score.py",
                    },
                    route=DeploymentRoute(
                        id=str(pk),
                        replicas=tuple(f"127.0.0.1:{20000 + i}" for i in range(ready)),
                        instance_count=desired,
                    ).to_wire(),
                    provisioning_state=DeploymentProvisioningState.FAILED
                    if failed
                    else DeploymentProvisioningState.SUCCEEDED,
                )
            )
    OnlineEndpoint.objects.bulk_create(endpoints)
    OnlineDeployment.objects.bulk_create(deployments)

    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    minutes = []
    for index, deployment in enumerate(deployments):
        # Blue takes most of the traffic; every 20th endpoint fails 8% of its requests.
        base = 600 if deployment.name == "blue" else 60
        error_share = 0.08 if (index // 2) % 20 == 3 else 0.002
        for m in range(MINUTES, 0, -1):
            total = int(base * rng.uniform(0.7, 1.3))
            errors = int(total * error_share)
            buckets = [0] * (len(LATENCY_BUCKETS) + 1)
            for _ in range(20):  # twenty draws, each a twentieth of the minute's requests
                buckets[min(int(rng.expovariate(0.6)) + 3, len(buckets) - 1)] += total // 20
            minutes.append(
                DeploymentMinute(
                    deployment=deployment,
                    minute=now - dt.timedelta(minutes=m),
                    requests_2xx=total - errors - total // 100,
                    requests_4xx=total // 100,
                    requests_5xx=errors,
                    requests_429=total // 300,
                    latency_buckets=buckets,
                    latency_seconds=total * 0.02,
                    queue_ms=total * 0.4,
                    queue_count=total,
                    ready_replicas=len(deployment.route["replicas"]),
                    queued=rng.randint(0, 3),
                )
            )
    DeploymentMinute.objects.bulk_create(minutes, batch_size=5000)

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return str(endpoints[0].pk)


def make_owner(plane: ControlPlane, password: str) -> None:
    """The local user who signs in, made as an administrator makes one: through the API."""
    from controlplane.access.roles import OWNER

    user = plane.call("PUT", f"/providers/Weir.Access/users/{USERNAME}", {}).json()
    plane.call(
        "POST", f"/providers/Weir.Access/users/{USERNAME}/setPassword", {"password": password}
    )
    assignment = {
        "properties": {
            "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{OWNER}",
            "principalId": user["properties"]["principalId"],
        }
    }
    plane.session.put(
        f"{plane.base_url}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
        "?api-version=2022-04-01",
        json=assignment,
    ).raise_for_status()


def sign_in(plane: ControlPlane, password: str) -> requests.Session:
    """A browser's session, signed in through the password form."""
    browser = requests.Session()
    browser.trust_env = False
    browser.verify = plane.session.verify
    form_url = f"{plane.base_url}/auth/login"
    form = browser.get(form_url)
    form.raise_for_status()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)[1]
    answer = browser.post(
        form_url,
        data={"username": USERNAME, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": form_url},
        allow_redirects=False,
    )
    if answer.status_code != 302 or "sessionid" not in browser.cookies:
        raise RuntimeError(f"signing in failed: {answer.status_code} {answer.text[:500]}")
    return browser


#
# Speed
#
def speed_targets(endpoint: str) -> dict[str, list[str]]:
    """Each row's requests: a row's time is theirs together."""
    lists = [f"{workspace_path(name)}/onlineEndpoints?{API}" for name in WORKSPACES]
    return {
        "overview": ["/portal/"],
        "endpoint": [f"/portal/endpoints/{endpoint}"],
        "list": lists[:1],
        "lists": lists,
    }


def rounds(get, targets, count: int) -> dict[str, list[float]]:
    """Each row's seconds, sorted: ``count`` rounds, each calling ``get`` once per row with
    its requests (after one round that warms)."""
    for paths in targets.values():
        get(paths)
    times = {row: [] for row in targets}
    for _ in range(count):
        for row, paths in targets.items():
            started = time.perf_counter()
            get(paths)
            times[row].append(time.perf_counter() - started)
    return {row: sorted(seconds) for row, seconds in times.items()}


def over_https(browser: requests.Session, base_url: str, targets, count: int) -> dict:
    """On the browser's keep-alive connection."""

    def get(paths):
        for path in paths:
            browser.get(f"{base_url}{path}").raise_for_status()

    return rounds(get, targets, count)


def signed_in_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=USERNAME))
    return client


def in_django(targets, count: int) -> tuple[dict, int]:
    """The same rows inside Django, in this process (no TLS, nginx or gunicorn), and how many
    queries the overview makes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = signed_in_client()

    def get(paths):
        for path in paths:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code}")

    times = rounds(get, targets, count)
    with CaptureQueriesContext(connection) as queries:
        get(targets["overview"])
    return times, len(queries)


def profile_overview(rounds: int = 10) -> str:
    client = signed_in_client()
    client.get("/portal/")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        client.get("/portal/")
    profiler.disable()
    out = tempfile.SpooledTemporaryFile(mode="w+")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(40)
    out.seek(0)
    return f"cProfile of {rounds} overviews, by cumulative time:\n{out.read()}"


#
# Weight
#
class Links(HTMLParser):
    """A page's external scripts and stylesheets."""

    def __init__(self):
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        elif tag == "link" and "stylesheet" in (attrs.get("rel") or "").split():
            self.stylesheets.append(attrs["href"])


def fetched(browser: requests.Session, url: str) -> tuple[bytes, int, bool]:
    """(content, bytes on the wire, whether the server compressed it), gzip accepted."""
    response = browser.get(url, stream=True, headers={"Accept-Encoding": "gzip"})
    response.raise_for_status()
    wire = response.raw.read(decode_content=False)
    compressed = response.headers.get("Content-Encoding") == "gzip"
    return (gzip.decompress(wire) if compressed else wire), len(wire), compressed


def weigh(browser: requests.Session, base_url: str, endpoint: str) -> list[dict]:
    rows = []
    for page, path in PAGES.items():
        url = f"{base_url}{path.format(endpoint=endpoint)}"
        html, html_wire, html_compressed = fetched(browser, url)
        links = Links()
        links.feed(html.decode())
        row = {"page": page, "html": len(html), "html_wire": html_wire}
        row["compressed"] = html_compressed
        for kind, srcs in (("js", links.scripts), ("css", links.stylesheets)):
            total = wire = zipped = 0
            for src in srcs:
                content, on_wire, compressed = fetched(browser, requests.compat.urljoin(url, src))
                total += len(content)
                wire += on_wire
                zipped += len(gzip.compress(content, 6))
                row["compressed"] = row["compressed"] or compressed
            row.update({kind: total, f"{kind}_wire": wire, f"{kind}_gzip": zipped})
            row[f"{kind}_files"] = [src.rsplit("/", 1)[-1] for src in srcs]
        rows.append(row)
    return rows


#
# Tables
#
def ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.1f} / {quantile(times, 0.95) * 1000:.1f} ms"


def render(count, endpoints, https, django, queries, weights) -> str:
    per_workspace = endpoints // len(WORKSPACES)
    labels = {
        "overview": f"`GET /portal/` (overview, {endpoints} endpoints)",
        "endpoint": "`GET /portal/endpoints/{id}` (7 charts × 2 deployments, 1 h)",
        "list": f"API list, one workspace ({per_workspace} endpoints, 1 request)",
        "lists": f"API lists, all {len(WORKSPACES)} workspaces "
        f"({endpoints} endpoints, {len(WORKSPACES)} requests)",
    }
    lines = [
        "| request | over HTTPS p50 / p95 | in Django p50 / p95 |",
        "|---|---|---|",
    ]
    for row, label in labels.items():
        lines.append(f"| {label} | {ms(https[row])} | {ms(django[row])} |")
    overview_ms = statistics.median(django["overview"]) * 1000
    verdict = "met" if overview_ms <= OVERVIEW_GOAL_MS else "not met"
    lines += [
        "",
        f"Overview ÷ the API's lists of the same {endpoints} endpoints (p50): "
        f"{statistics.median(https['overview']) / statistics.median(https['lists']):.2f}× over "
        f"HTTPS, {statistics.median(django['overview']) / statistics.median(django['lists']):.2f}×"
        f" in Django. The overview in Django: {overview_ms:.1f} ms at p50 against the "
        f"{OVERVIEW_GOAL_MS} ms goal ({verdict}), in {queries} queries.",
        "",
        "| page | HTML | JS | JS gzipped | CSS | CSS gzipped | scripts | JS ÷ 200 KB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in weights:
        lines.append(
            f"| {row['page']} | {kb(row['html'])} | {kb(row['js'])} | {kb(row['js_gzip'])} | "
            f"{kb(row['css'])} | {kb(row['css_gzip'])} | {', '.join(row['js_files'])} | "
            f"{row['js'] / JS_BUDGET:.0%} |"
        )
    heaviest = max(weights, key=lambda row: row["js"])
    compressed = any(row["compressed"] for row in weights)
    lines += [
        "",
        f"Most JavaScript on one page: {kb(heaviest['js'])} ({heaviest['page']}), against the "
        f"{JS_BUDGET // 1000} KB budget ({'met' if heaviest['js'] <= JS_BUDGET else 'not met'}). "
        + (
            "The server compressed some of them; sizes are uncompressed, gzipped is on the wire."
            if compressed
            else "The server sends them uncompressed (sizes are bytes on the wire); gzipped is "
            "what gzip -6 makes of them here."
        ),
        "",
        f"({count} rounds, each row's requests once per round, one after another on one "
        "keep-alive HTTPS connection of the signed-in Owner, API lists included (its session "
        "authenticates them); in Django: the same requests through django.test.Client in the "
        f"benchmark's process on the same database. {MINUTES} minutes of metrics per "
        f"deployment; KB = 1,000 bytes.)",
    ]
    return "\n".join(lines)


def kb(size: int) -> str:
    return f"{size / 1000:.1f} KB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as workdir:
        plane = ControlPlane(Path(workdir), DATABASE)
        try:
            # This process reads and writes the same database as the server, with its secrets.
            os.environ.update(plane.env)
            import django

            django.setup()
            endpoint = seed(plane, args.endpoints, password)
            browser = sign_in(plane, password)
            targets = speed_targets(endpoint)
            https = over_https(browser, plane.base_url, targets, args.requests)
            django_times, queries = in_django(targets, args.requests)
            weights = weigh(browser, plane.base_url, endpoint)
            if args.profile:
                print(profile_overview(), file=sys.stderr)
        finally:
            plane.stop()
    table = render(args.requests, args.endpoints, https, django_times, queries, weights)
    print(table)
    if not args.no_readme:
        loadgen.write_readme("portal", table)


if __name__ == "__main__":
    main()
