"""What the portal's pages show, read from the same rows the API reads, and only what the
signed-in person may read: each row is checked with the API's own authorization (the action a
GET of its ARM id is, over its roles). Which buttons a page offers is asked the same way, so
a person sees no button the API would refuse them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Prefetch
from django.utils import timezone

from controlplane.access import actions
from controlplane.access.rbac import Grants
from controlplane.core.choices import DeploymentProvisioningState, ProvisioningState
from controlplane.core.models import OnlineDeployment, OnlineEndpoint
from controlplane.metrics import queries as metrics

OVERVIEW_WINDOW = dt.timedelta(hours=1)
# An error share over the last hour above which an endpoint is shown as degraded.
DEGRADED_ERROR_RATE = 0.05
FAILED_STATES = {ProvisioningState.FAILED, DeploymentProvisioningState.FAILED}
SETTLED_STATES = {ProvisioningState.SUCCEEDED, DeploymentProvisioningState.SUCCEEDED}
# Health, worst first: the overview's default order.
HEALTH_ORDER = ("Failed", "Degraded", "Changing", "Healthy")


class Viewer:
    """The signed-in person's roles, read once per page."""

    def __init__(self, user):
        self.grants = Grants(user)

    def may(self, method: str, path: str) -> bool:
        """Whether the API would let this person send ``method path``."""
        wanted = actions.of(method, path)
        return self.grants.allows(wanted.action, wanted.scope)

    def may_read(self, arm_id: str) -> bool:
        return self.may("GET", arm_id)


@dataclass
class DeploymentRow:
    deployment: OnlineDeployment
    traffic: int
    mirror: int
    ready: int
    desired: int
    stats: metrics.Summary | None = None

    @property
    def name(self) -> str:
        return self.deployment.name

    @property
    def autoscaled(self) -> bool:
        return (self.deployment.scale_settings or {}).get("scaleType") == "TargetUtilization"


@dataclass
class EndpointRow:
    endpoint: OnlineEndpoint
    deployments: list[DeploymentRow]
    stats: metrics.EndpointSummary | None
    health: str
    reasons: list[str]

    @property
    def ready(self) -> int:
        return sum(row.ready for row in self.deployments)

    @property
    def desired(self) -> int:
        return sum(row.desired for row in self.deployments)


def deployment_rows(endpoint: OnlineEndpoint, stats) -> list[DeploymentRow]:
    rows = []
    for deployment in endpoint.deployments.all():
        rows.append(
            DeploymentRow(
                deployment,
                traffic=int(endpoint.traffic.get(deployment.name, 0)),
                mirror=int(endpoint.mirror_traffic.get(deployment.name, 0)),
                ready=len((deployment.route or {}).get("replicas") or ()),
                desired=deployment.instance_count,
                stats=stats.deployments.get(deployment.name) if stats else None,
            )
        )
    return sorted(rows, key=lambda row: (-row.traffic, row.name.lower()))


def health(endpoint: OnlineEndpoint, rows: list[DeploymentRow], stats):
    """(health, reasons): Failed when it or a deployment failed; Changing while an operation
    runs; Degraded when a settled deployment has fewer ready replicas than it asks for, or
    the last hour's requests failed (5xx) more than DEGRADED_ERROR_RATE of the time."""
    reasons = []
    if endpoint.provisioning_state in FAILED_STATES:
        reasons.append("the endpoint's last operation failed")
    reasons += [f"{r.name}: its last operation failed" for r in rows if _failed(r)]
    if reasons:
        return "Failed", reasons
    if endpoint.provisioning_state not in SETTLED_STATES or any(
        r.deployment.provisioning_state not in SETTLED_STATES for r in rows
    ):
        return "Changing", ["an operation is running"]
    reasons += [
        f"{r.name}: {r.ready} of {r.desired} replicas ready" for r in rows if r.ready < r.desired
    ]
    error_rate = (stats.server_error_rate if stats else None) or 0.0
    if error_rate > DEGRADED_ERROR_RATE:
        reasons.append(f"{error_rate:.0%} of the last hour's requests failed")
    return ("Degraded", reasons) if reasons else ("Healthy", [])


def _failed(row: DeploymentRow) -> bool:
    return row.deployment.provisioning_state in FAILED_STATES


def readable_endpoints(viewer: Viewer, **filters):
    endpoints = (
        OnlineEndpoint.objects.filter(**filters)
        .select_related("workspace")
        # Pages never show the scoring keys (listKeys does): left encrypted, two Fernet
        # tokens fewer to open per endpoint.
        .defer("primary_key", "secondary_key")
        .prefetch_related(
            Prefetch("deployments", queryset=OnlineDeployment.objects.order_by("name"))
        )
        .order_by("name")
    )
    return [endpoint for endpoint in endpoints if viewer.may_read(endpoint.arm_id)]


def endpoint_rows(endpoints: list[OnlineEndpoint], now=None) -> list[EndpointRow]:
    since = (now or timezone.now()) - OVERVIEW_WINDOW
    summaries = metrics.endpoint_summaries(endpoints, since)
    rows = []
    for endpoint in endpoints:
        stats = summaries.get(endpoint.pk)
        deployments = deployment_rows(endpoint, stats)
        state, reasons = health(endpoint, deployments, stats)
        rows.append(EndpointRow(endpoint, deployments, stats, state, reasons))
    return rows


# The overview's columns, each sortable: (key, heading).
COLUMNS = (
    ("health", "Health"),
    ("name", "Endpoint"),
    ("workspace", "Workspace"),
    ("state", "State"),
    ("deployments", "Deployments (traffic)"),
    ("replicas", "Replicas ready"),
    ("requests", "Requests (last hour)"),
    ("errors", "Errors (5xx)"),
    ("p99", "p99"),
)
SORTS = {
    "health": lambda row: (HEALTH_ORDER.index(row.health), row.endpoint.name.lower()),
    "name": lambda row: row.endpoint.name.lower(),
    "workspace": lambda row: (row.endpoint.workspace.name.lower(), row.endpoint.name.lower()),
    "state": lambda row: (row.endpoint.provisioning_state, row.endpoint.name.lower()),
    "deployments": lambda row: -len(row.deployments),
    "requests": lambda row: -_stat(row, "requests_per_second"),
    "errors": lambda row: -_stat(row, "server_error_rate"),
    "p99": lambda row: -_stat(row, "p99_ms"),
    "replicas": lambda row: -row.ready,
}


def _stat(row: EndpointRow, name: str) -> float:
    return (getattr(row.stats, name) if row.stats else None) or 0.0


def sorted_rows(rows: list[EndpointRow], sort: str) -> list[EndpointRow]:
    return sorted(rows, key=SORTS.get(sort, SORTS["health"]))


# -- lists the API answers, and the rows other pages show -------------------------------------


def values(answer) -> list[dict]:
    """The rows of a list the API answered (``value``), or none when it refused."""
    if not answer.ok or not isinstance(answer.body, dict):
        return []
    return answer.body.get("value") or []


def tokens_path(user, principal) -> str:
    kind = "users" if principal.kind == "User" else "servicePrincipals"
    return f"/providers/Weir.Access/{kind}/{user.get_username()}/tokens"


def role_names() -> list[tuple[str, str]]:
    """(id, name) of every role, built-in first, for the assignment form."""
    from controlplane.access.models import RoleDefinition

    rows = RoleDefinition.objects.order_by("role_type", "role_name")
    prefix = "/providers/Microsoft.Authorization/roleDefinitions/"
    return [(f"{prefix}{row.id}", row.role_name) for row in rows]


def job_outputs(job) -> dict[str, str]:
    """Each file under a finished job's output folder, by its name there, as a read-only SAS
    URL the browser downloads from the blob store."""
    from controlplane.batch import files
    from controlplane.blobstore import storage
    from controlplane.blobstore.models import Blob

    if not job.output.get("uri"):
        return {}
    try:
        location = files.output_location(job)
    except ValueError:  # an output the blob store cannot resolve: nothing to offer
        return {}
    prefix = location.path if location.path.endswith("/") else location.path + "/"
    names = Blob.objects.filter(
        account=location.account, container=location.container, name__startswith=prefix
    ).values_list("name", flat=True)[:200]
    urls = {}
    for name in sorted(names):
        token = storage.sas_token(location.account, location.container, name, "r", "b")
        url = storage.blob_url(location.account, location.container, name)
        urls[name[len(prefix) :]] = f"{url}?{token}"
    return urls


ASSET_KINDS = (
    ("Models", "ModelContainer", "model"),
    ("Environments", "EnvironmentContainer", "environment_id"),
    ("Codes", "CodeContainer", "code_configuration"),
)


def assets_with_usage(viewer: Viewer) -> list[dict]:
    """Models, environments and codes the viewer may read, each version with the online
    deployments that use it."""
    from controlplane.core import models

    deployments = list(
        OnlineDeployment.objects.select_related("endpoint__workspace").only(
            "name",
            "model",
            "environment_id",
            "code_configuration",
            "endpoint__name",
            "endpoint__workspace__name",
            "endpoint__workspace__subscription_id",
            "endpoint__workspace__resource_group",
            "endpoint__id",
        )
    )
    kinds = []
    for label, model_name, field_name in ASSET_KINDS:
        containers = (
            getattr(models, model_name)
            .objects.select_related("workspace")
            .prefetch_related("versions")
            .order_by("name")
        )
        rows = []
        for container in containers:
            arm_id = container.arm_id
            if not viewer.may_read(arm_id):
                continue
            versions = []
            for version in sorted(container.versions.all(), key=lambda v: v.created_at):
                version_id = f"{arm_id}/versions/{version.name}".lower()
                used_by = [d for d in deployments if _uses(d, field_name, version_id)]
                versions.append({"version": version, "used_by": used_by})
            rows.append({"container": container, "arm_id": arm_id, "versions": versions})
        kinds.append({"label": label, "rows": rows})
    return kinds


def _uses(deployment, field_name: str, version_id: str) -> bool:
    value = getattr(deployment, field_name)
    if isinstance(value, dict):
        value = value.get("codeId")
    return isinstance(value, str) and value.lower().rstrip("/").endswith(version_id)


# -- the endpoint page's charts ----------------------------------------------------------------

# (id, title, unit, metric, aggregation, status class): a line per deployment, a point a
# minute.
CHARTS = (
    ("requests", "Requests per minute", "req/min", "RequestsPerMinute", "Total", None),
    ("errors", "Server errors (5xx) per minute", "req/min", "RequestsPerMinute", "Total", "5xx"),
    ("p99", "Latency p99", "ms", "RequestLatency_P99", None, None),
    ("p50", "Latency p50", "ms", "RequestLatency_P50", None, None),
    ("replicas", "Ready replicas", "replicas", "ReadyReplicas", None, None),
    ("queue", "Queue time (mean)", "ms", "QueueTimeMs", None, None),
    ("agreement", "Shadow agreement (mirrored requests)", "%", "ShadowAgreement", None, None),
)


def charts(deployments: list[OnlineDeployment], start, end) -> list[dict]:
    """The charts' data as the page's script draws them: ``x`` (epoch seconds) and one
    series of values per deployment (None where nothing was measured), all from one read of
    the deployments' minutes."""
    found = metrics.aggregate([d.pk for d in deployments], start, end, metrics.MINUTE)
    x = [int(moment.timestamp()) for moment in metrics.spans(start, end, metrics.MINUTE)]
    drawn = []
    for chart_id, title, unit, metric, aggregation, status_class in CHARTS:
        series = [
            {
                "label": deployment.name,
                "values": [
                    value
                    for _, value in metrics.points(
                        found,
                        [deployment.pk],
                        metric,
                        start,
                        end,
                        aggregation=aggregation,
                        status_class=status_class,
                    )
                ],
            }
            for deployment in deployments
        ]
        drawn.append(
            {"id": f"chart-{chart_id}", "title": title, "unit": unit, "x": x, "series": series}
        )
    return drawn


# -- the endpoint page's rollouts ----------------------------------------------------------------

ROLLOUT_ACTIONS = ("pause", "resume", "abort")
# What can be asked of a rollout in each state (controlplane.rollout.states allows it).
ACTIONS_BY_STATUS = {
    "Pending": ("abort",),
    "Running": ("pause", "abort"),
    "Paused": ("resume", "abort"),
}


def rollouts(viewer: Viewer, endpoint: OnlineEndpoint) -> list[dict]:
    """The endpoint's rollouts, newest first: each with its step of how many, its last
    reading (gate values against thresholds), its decisions newest first, and the actions
    (pause, resume, abort) the viewer may take on it."""
    from controlplane.rollout.models import Rollout

    shown = []
    for rollout in Rollout.objects.filter(endpoint=endpoint).order_by("-created_at")[:5]:
        rollout.endpoint = endpoint  # its arm_id without another query
        arm_id = rollout.arm_id
        shown.append(
            {
                "rollout": rollout,
                "step": min(rollout.current_step + 1, len(rollout.steps)),
                "steps": len(rollout.steps),
                "reading": rollout.reading or {},
                "decisions": list(reversed(rollout.decisions))[:20],
                "actions": [
                    action
                    for action in ACTIONS_BY_STATUS.get(rollout.status, ())
                    if viewer.may("POST", f"{arm_id}/{action}")
                ],
            }
        )
    return shown
