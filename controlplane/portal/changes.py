"""The changes a page's form asks for, as the API request bodies that make them. The API
decides whether they are allowed and right; what is checked here is only that the form was
filled in (numbers where numbers go), so a mistyped field is named before anything is sent."""

from __future__ import annotations

import copy
import re
import uuid

from controlplane.arm.errors import flatten_validation
from controlplane.core.serializers.endpoint import OnlineEndpointSerializer
from controlplane.portal import api


def _percent(text: str) -> int | str:
    text = (text or "").strip() or "0"
    return int(text) if text.isdigit() else text


def traffic_from_form(form, deployment_names: list[str]) -> dict:
    """{"traffic": {...}, "mirrorTraffic": {...}} from the editor's traffic-{name} and
    mirror-{name} fields (an empty field is 0; what is not a whole number is sent as typed,
    for the API to refuse by name)."""
    traffic = {name: _percent(form.get(f"traffic-{name}", "")) for name in deployment_names}
    mirror = {name: _percent(form.get(f"mirror-{name}", "")) for name in deployment_names}
    return {
        "traffic": traffic,
        "mirrorTraffic": {name: share for name, share in mirror.items() if share != 0},
    }


def with_traffic(endpoint_body: dict, proposal: dict) -> dict:
    """The endpoint's PUT body: what its GET answered, with the proposed traffic."""
    body = copy.deepcopy(endpoint_body)
    body["properties"]["traffic"] = proposal["traffic"]
    body["properties"]["mirrorTraffic"] = proposal["mirrorTraffic"]
    return body


def endpoint_errors(endpoint, body: dict) -> list[dict]:
    """What the endpoint's PUT would refuse in ``body``: the API's own serializer, with the
    context its PUT gives it, and its errors as the ARM error details it answers with."""
    names = list(endpoint.deployments.values_list("name", flat=True))
    serializer = OnlineEndpointSerializer(data=body, context={"deployment_names": names})
    if serializer.is_valid():
        return []
    return flatten_validation(serializer.errors)


def scale_request(deployment_body: dict, form) -> tuple[str, dict | None, str | None]:
    """(method, body, problem): a manual deployment's new instance count is a PATCH of its
    sku's capacity; an autoscaled one's new bounds and target are a PUT of its body with
    new scaleSettings."""
    settings = deployment_body["properties"].get("scaleSettings") or {}
    if settings.get("scaleType") == "TargetUtilization":
        fields = {
            "minInstances": form.get("minInstances", ""),
            "maxInstances": form.get("maxInstances", ""),
            "targetUtilizationPercentage": form.get("targetUtilizationPercentage", ""),
        }
        problem = _not_whole(fields)
        if problem:
            return "PUT", None, problem
        body = copy.deepcopy(deployment_body)
        body["properties"]["scaleSettings"] = {
            **settings,
            **{name: int(value) for name, value in fields.items()},
        }
        return "PUT", body, None
    problem = _not_whole({"capacity": form.get("capacity", "")})
    if problem:
        return "PATCH", None, problem
    return "PATCH", {"sku": {"capacity": int(form["capacity"])}}, None


def _not_whole(fields: dict) -> str | None:
    for name, value in fields.items():
        if not str(value).strip().isdigit():
            return f"{name} must be a whole number, not '{value}'."
    return None


# The People forms name a principal's tokens, or one of them, by its API path.
TOKENS_PATH = re.compile(r"^/providers/Weir\.Access/(users|servicePrincipals)/[^/]+/tokens$")
TOKEN_PATH = re.compile(r"^/providers/Weir\.Access/(users|servicePrincipals)/[^/]+/tokens/\d+$")
ASSIGNMENT_PATH = re.compile(r"^(/.*)?/providers/Microsoft\.Authorization/roleAssignments/[^/]+$")


def people_change(request):
    """(answer, new token): the one change a People form asks for, made through the API."""
    form = request.POST
    change = form.get("change")
    if change == "assign":
        scope = "/" + form.get("scope", "").strip().strip("/")
        path = (
            f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
        )
        body = {
            "properties": {
                "roleDefinitionId": form.get("role", ""),
                "principalId": form.get("principal", "").strip(),
            }
        }
        return api.call(request, "PUT", path, body, {"api-version": "2022-04-01"}), None
    if change == "unassign":
        path = form.get("assignment", "")
        if not ASSIGNMENT_PATH.match(path):
            return None, None
        return api.call(request, "DELETE", path, query={"api-version": "2022-04-01"}), None
    if change == "token":
        if not TOKENS_PATH.match(form.get("owner", "")):
            return None, None
        days = form.get("days", "").strip()
        properties = {"label": form.get("label", "")}
        if days.isdigit():
            from django.utils import timezone

            expires = timezone.now() + timezone.timedelta(days=int(days))
            properties["expiresOn"] = expires.isoformat()
        answer = api.call(request, "POST", form.get("owner", ""), {"properties": properties})
        secret = (answer.body or {}).get("properties", {}).get("token") if answer.ok else None
        return answer, secret
    if change == "revoke":
        if not TOKEN_PATH.match(form.get("token", "")):
            return None, None
        return api.call(request, "POST", form.get("token", "") + "/revoke"), None
    return None, None
