"""The portal's pages. Reads come from readings (the rows the API reads, filtered by the
viewer's roles); every change is an API call made as the signed-in person (api.call), whose
answer the page shows. htmx requests get the fragment they swap in; the same URL without
htmx gets the whole page."""

from __future__ import annotations

import datetime as dt
import functools
import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from controlplane.access import principals
from controlplane.batch.models import BatchJob
from controlplane.core.models import OnlineEndpoint, Operation, ScaleEvent
from controlplane.portal import api, changes, readings, scoring
from controlplane.portal.readings import Viewer

CHART_WINDOWS = {"1h": dt.timedelta(hours=1), "6h": dt.timedelta(hours=6), "1d": dt.timedelta(1)}
ACCESS = "/providers/Weir.Access"
ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments"
ACCESS_API_VERSION = "2022-04-01"


def portal_view(*methods: str):
    """A portal page: signed in (else to the sign-in form; an htmx request whose session has
    expired sends the whole window there), CSRF-checked on POST (the API's paths are not:
    their session calls are checked by DRF), never framed."""

    def decorate(view):
        checked = login_required(csrf_protect(require_http_methods(list(methods))(view)))

        @functools.wraps(view)
        def signed_in(request, *args, **kwargs):
            if getattr(request, "htmx", False) and not request.user.is_authenticated:
                return HttpResponseClientRedirect(f"{settings.LOGIN_URL}?next=/portal/")
            return checked(request, *args, **kwargs)

        return xframe_options_deny(signed_in)

    return decorate


def page(request, template: str, context: dict, fragment: str | None = None):
    """The whole page, or only ``fragment`` (a template of its own) for an htmx request."""
    if fragment and getattr(request, "htmx", False):
        return render(request, fragment, context)
    return render(request, template, context)


# -- overview ---------------------------------------------------------------------------------


@portal_view("GET")
def overview(request):
    viewer = Viewer(request.user)
    sort = request.GET.get("sort", "health")
    rows = readings.sorted_rows(readings.endpoint_rows(readings.readable_endpoints(viewer)), sort)
    counts = {state: sum(1 for r in rows if r.health == state) for state in readings.HEALTH_ORDER}
    context = {
        "rows": rows,
        "sort": sort,
        "columns": readings.COLUMNS,
        "counts": counts,
        "section": "overview",
    }
    return page(request, "portal/overview.html", context, "portal/overview_table.html")


# -- one endpoint -----------------------------------------------------------------------------


def readable_endpoint(viewer: Viewer, pk) -> OnlineEndpoint:
    found = readings.readable_endpoints(viewer, pk=pk)
    if not found:
        raise Http404("No such endpoint, or you may not read it.")
    return found[0]


def endpoint_context(request, viewer: Viewer, endpoint: OnlineEndpoint) -> dict:
    row = readings.endpoint_rows([endpoint])[0]
    arm_id = endpoint.arm_id
    window = request.GET.get("window", "1h")
    end = timezone.now()
    start = (end - CHART_WINDOWS.get(window, CHART_WINDOWS["1h"])).replace(second=0, microsecond=0)
    deployments = [r.deployment for r in row.deployments]
    return {
        "section": "overview",
        "endpoint": endpoint,
        "row": row,
        "window": window,
        "windows": list(CHART_WINDOWS),
        "charts": readings.charts(deployments, start, end),
        "scale_events": ScaleEvent.objects.filter(deployment__endpoint=endpoint)
        .select_related("deployment")
        .order_by("-decided_at")[:20],
        "operations": Operation.objects.filter(endpoint=endpoint).order_by("-started_at")[:10],
        "rollouts": readings.rollouts(viewer, endpoint),
        "may": {
            "edit": viewer.may("PUT", arm_id),
            "keys": viewer.may("POST", f"{arm_id}/listKeys"),
            "regenerate": viewer.may("POST", f"{arm_id}/regenerateKeys"),
            "scale": viewer.may("PATCH", f"{arm_id}/deployments/any"),
            "logs": viewer.may("POST", f"{arm_id}/deployments/any/getLogs"),
        },
    }


@portal_view("GET")
def endpoint_page(request, pk: uuid.UUID):
    viewer = Viewer(request.user)
    endpoint = readable_endpoint(viewer, pk)
    context = endpoint_context(request, viewer, endpoint)
    return page(request, "portal/endpoint.html", context, "portal/endpoint_live.html")


@portal_view("POST")
def traffic(request, pk: uuid.UUID):
    """The traffic editor: ``preview`` shows the change and the API's verdict on it;
    ``apply`` sends it (the endpoint's PUT, as Azure's clients change traffic)."""
    viewer = Viewer(request.user)
    endpoint = readable_endpoint(viewer, pk)
    proposal = changes.traffic_from_form(request.POST, [d.name for d in endpoint.deployments.all()])
    current = api.call(request, "GET", endpoint.arm_id)
    if not current.ok:
        return render(request, "portal/answer.html", {"answer": current})
    body = changes.with_traffic(current.body, proposal)
    context = {
        "endpoint": endpoint,
        "proposal": proposal,
        "before": {
            "traffic": current.body["properties"].get("traffic") or {},
            "mirror": current.body["properties"].get("mirrorTraffic") or {},
        },
        "errors": changes.endpoint_errors(endpoint, body),
    }
    if request.POST.get("step") == "apply" and not context["errors"]:
        context["answer"] = api.call(request, "PUT", endpoint.arm_id, body)
    return render(request, "portal/traffic_result.html", context)


@portal_view("POST")
def rollout_action(request, pk: uuid.UUID, name: str, action: str):
    """Pause, resume or abort a rollout: the rollout's own API action."""
    endpoint = readable_endpoint(Viewer(request.user), pk)
    if action not in readings.ROLLOUT_ACTIONS:
        raise Http404("No such action.")
    answer = api.call(request, "POST", f"{endpoint.arm_id}/rollouts/{name}/{action}")
    return render(request, "portal/answer.html", {"answer": answer, "done": action.title()})


@portal_view("POST")
def keys(request, pk: uuid.UUID):
    """Reveal the keys (listKeys), or regenerate one (regenerateKeys) once confirmed."""
    endpoint = readable_endpoint(Viewer(request.user), pk)
    key_type = request.POST.get("regenerate")
    if key_type:
        answer = api.call(
            request, "POST", f"{endpoint.arm_id}/regenerateKeys", {"keyType": key_type}
        )
        return render(request, "portal/keys.html", {"answer": answer, "regenerated": key_type})
    answer = api.call(request, "POST", f"{endpoint.arm_id}/listKeys")
    return render(request, "portal/keys.html", {"answer": answer, "keys": answer.body})


@portal_view("POST")
def scale(request, pk: uuid.UUID, deployment: str):
    endpoint = readable_endpoint(Viewer(request.user), pk)
    path = f"{endpoint.arm_id}/deployments/{deployment}"
    current = api.call(request, "GET", path)
    if not current.ok:
        return render(request, "portal/answer.html", {"answer": current})
    method, body, problem = changes.scale_request(current.body, request.POST)
    if problem:
        return render(request, "portal/answer.html", {"problem": problem})
    answer = api.call(request, method, path, body)
    return render(request, "portal/answer.html", {"answer": answer, "done": "Scaling"})


@portal_view("GET")
def logs(request, pk: uuid.UUID, deployment: str):
    endpoint = readable_endpoint(Viewer(request.user), pk)
    container = request.GET.get("container", "InferenceServer")
    answer = api.call(
        request,
        "POST",
        f"{endpoint.arm_id}/deployments/{deployment}/getLogs",
        {"containerType": container, "tail": 200},
    )
    return render(request, "portal/logs.html", {"answer": answer, "deployment": deployment})


@portal_view("POST")
def test_request(request, pk: uuid.UUID):
    """Send the typed request to the endpoint's scoring URI with its key (or a token), as a
    client would, and show the answer and the deployment that served it."""
    endpoint = readable_endpoint(Viewer(request.user), pk)
    result = scoring.score(
        request, endpoint, request.POST.get("body", ""), request.POST.get("deployment") or None
    )
    return render(request, "portal/test_result.html", {"result": result})


# -- operations, batch jobs, assets -------------------------------------------------------------


@portal_view("GET")
def operations(request):
    viewer = Viewer(request.user)
    rows = [
        op
        for op in Operation.objects.order_by("-started_at")[:500]
        if viewer.may_read(op.resource_id)
    ]
    running = [op for op in rows if op.status == "InProgress"]
    recent = [op for op in rows if op.status != "InProgress"][:100]
    context = {"running": running, "recent": recent, "section": "operations"}
    return page(request, "portal/operations.html", context, "portal/operations_table.html")


@portal_view("GET")
def operation(request, pk: uuid.UUID):
    viewer = Viewer(request.user)
    op = get_object_or_404(Operation.objects.select_related("deployment__endpoint"), pk=pk)
    if not viewer.may_read(op.resource_id):
        raise Http404("No such operation, or you may not read it.")
    build_log = None
    if op.deployment is not None:
        build_log = api.call(
            request,
            "POST",
            f"{op.deployment.arm_id}/getLogs",
            {"containerType": "StorageInitializer", "tail": 300},
        )
    context = {"op": op, "build_log": build_log, "section": "operations"}
    return page(request, "portal/operation.html", context, "portal/operation_body.html")


@portal_view("GET")
def batch_jobs(request):
    viewer = Viewer(request.user)
    jobs = [
        job
        for job in BatchJob.objects.select_related("workspace").order_by("-created_at")[:300]
        if viewer.may_read(job.arm_id)
    ]
    return page(request, "portal/batch_jobs.html", {"jobs": jobs, "section": "batch"})


@portal_view("GET")
def batch_job(request, pk: uuid.UUID):
    viewer = Viewer(request.user)
    job = get_object_or_404(BatchJob.objects.select_related("workspace"), pk=pk)
    if not viewer.may_read(job.arm_id):
        raise Http404("No such job, or you may not read it.")
    context = {
        "job": job,
        "mini_batches": job.ledger.order_by("index"),
        "outputs": readings.job_outputs(job),
        "section": "batch",
    }
    return page(request, "portal/batch_job.html", context, "portal/batch_job_body.html")


@portal_view("GET")
def assets(request):
    viewer = Viewer(request.user)
    context = {"kinds": readings.assets_with_usage(viewer), "section": "assets"}
    return render(request, "portal/assets.html", context)


# -- people -----------------------------------------------------------------------------------


@portal_view("GET", "POST")
def people(request):
    """Users, service principals, groups and role assignments, as the API lists them to this
    person; a POST makes one change (an assignment, a token, a revocation) through the API."""
    answer = None
    new_token = None
    if request.method == "POST":
        answer, new_token = changes.people_change(request)
    listed = {
        kind: api.call(request, "GET", f"{ACCESS}/{kind}", query={"api-version": "2024-04-01"})
        for kind in ("users", "servicePrincipals", "groups")
    }
    assignments = api.call(request, "GET", ASSIGNMENTS, query={"api-version": ACCESS_API_VERSION})
    tokens_path = readings.tokens_path(request.user, principals.principal_of(request.user))
    context = {
        "section": "people",
        "listed": {kind: readings.values(a) for kind, a in listed.items()},
        "refused": {kind: a.error for kind, a in listed.items() if not a.ok},
        "assignments": readings.values(assignments),
        "assignments_refused": assignments.error,
        "roles": readings.role_names(),
        "my_tokens": readings.values(api.call(request, "GET", tokens_path)),
        "tokens_path": tokens_path,
        "answer": answer,
        "new_token": new_token,
        "may": {"assign": Viewer(request.user).may("PUT", f"{ASSIGNMENTS}/x")},
    }
    return render(request, "portal/people.html", context)


# -- audit ------------------------------------------------------------------------------------


@portal_view("GET")
def audit(request):
    """The audit log as its API reads it to this person (Weir.Audit/auditRecords), searched
    by scope, principal, action and time."""
    query = {
        key: value
        for key in ("scope", "principal", "action", "from", "to")
        if (value := request.GET.get(key, "").strip())
    }
    answer = api.call(
        request, "GET", "/providers/Weir.Audit/auditRecords", query={**query, "$top": "100"}
    )
    context = {
        "section": "audit",
        "query": query,
        "records": readings.values(answer),
        "answer": answer,
    }
    return page(request, "portal/audit.html", context, "portal/audit_table.html")
