"""Role-based access: each built-in role assigned at each scope allows a representative call
and denies another with ARM's 403 AuthorizationFailed naming the principal, action and scope;
lists show what the caller may read; role definitions and assignments through the API."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from controlplane.access import actions, roles
from controlplane.access.models import Group, PrincipalType, RoleAssignment
from controlplane.access.principals import principal_of
from controlplane.core.models import ApiToken
from tests.conftest import API, SUB, WS, assert_arm_error, url

ML_PROVIDER = "Microsoft.MachineLearningServices"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1"
WS2 = f"/subscriptions/{SUB}/resourceGroups/rg2/providers/{ML_PROVIDER}/workspaces/ws2"
EP = f"{WS}/onlineEndpoints/ep1"
AUTH = "providers/Microsoft.Authorization"


def role_id(role: uuid.UUID) -> str:
    return f"/subscriptions/{SUB}/{AUTH}/roleDefinitions/{role}"


@pytest.fixture
def world(client):
    """Two workspaces in two resource groups; two endpoints in the first."""
    for workspace in (WS, WS2):
        response = client.put(url(workspace), {"location": "local"}, format="json")
        assert response.status_code == 201, response.content
    for name in ("ep1", "ep2"):
        body = {"location": "local", "properties": {"authMode": "Key"}}
        response = client.put(url(f"/onlineEndpoints/{name}"), body, format="json")
        assert response.status_code == 201, response.content
    return client


def caller(name: str, kind=PrincipalType.SERVICE_PRINCIPAL):
    user = get_user_model().objects.create(username=name)
    principal = principal_of(user, kind)
    _, token = ApiToken.issue(user, "tests", days=1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api, principal


def assign(client, scope: str, role: uuid.UUID, principal_id, expect=201):
    name = uuid.uuid4()
    body = {"properties": {"roleDefinitionId": role_id(role), "principalId": str(principal_id)}}
    response = client.put(
        f"{scope.rstrip('/')}/{AUTH}/roleAssignments/{name}?api-version=2022-04-01",
        body,
        format="json",
    )
    assert response.status_code == expect, response.content
    return name


def denied(response, principal, action: str, scope: str):
    error = assert_arm_error(response, 403, "AuthorizationFailed")
    assert principal.user.get_username() in error["message"]
    assert str(principal.object_id) in error["message"]
    assert f"'{action}'" in error["message"]
    assert f"'{scope}'" in error["message"]


TAGS = {"tags": {"team": "x"}}
ML = "Microsoft.MachineLearningServices/workspaces"


# (role, scope, an allowed call, a denied call and the action it needed)
MATRIX = [
    (
        roles.READER,
        f"/subscriptions/{SUB}",
        ("GET", WS2),
        ("PATCH", EP, f"{ML}/onlineEndpoints/write", EP),
    ),
    (roles.READER, RG, ("GET", EP), ("GET", WS2, f"{ML}/read", WS2)),
    (
        roles.READER,
        WS,
        ("GET", f"{WS}/onlineEndpoints"),
        ("POST", f"{EP}/listKeys", f"{ML}/onlineEndpoints/listKeys/action", EP),
    ),
    (
        roles.READER,
        EP,
        ("GET", EP),
        (
            "GET",
            f"{WS}/onlineEndpoints/ep2",
            f"{ML}/onlineEndpoints/read",
            f"{WS}/onlineEndpoints/ep2",
        ),
    ),
    (
        roles.CONTRIBUTOR,
        f"/subscriptions/{SUB}",
        ("PATCH", EP),
        (
            "PUT",
            f"{RG}/{AUTH}/roleAssignments/{{new}}",
            "Microsoft.Authorization/roleAssignments/write",
            f"{RG}/{AUTH}/roleAssignments/{{new}}",
        ),
    ),
    (roles.CONTRIBUTOR, RG, ("POST", f"{EP}/listKeys"), ("PATCH", WS2, f"{ML}/write", WS2)),
    (roles.CONTRIBUTOR, WS, ("PUT", f"{WS}/computes/k8s"), ("DELETE", WS2, f"{ML}/delete", WS2)),
    (
        roles.CONTRIBUTOR,
        EP,
        ("PATCH", EP),
        (
            "PATCH",
            f"{WS}/onlineEndpoints/ep2",
            f"{ML}/onlineEndpoints/write",
            f"{WS}/onlineEndpoints/ep2",
        ),
    ),
    (
        roles.OWNER,
        RG,
        ("PUT", f"{RG}/{AUTH}/roleAssignments/{{new}}"),
        (
            "PUT",
            f"/subscriptions/{SUB}/{AUTH}/roleAssignments/{{new}}",
            "Microsoft.Authorization/roleAssignments/write",
            f"/subscriptions/{SUB}/{AUTH}/roleAssignments/{{new}}",
        ),
    ),
    (
        roles.OWNER,
        WS,
        ("DELETE", f"{WS}/onlineEndpoints/ep2"),
        ("GET", WS2, f"{ML}/read", WS2),
    ),
    (
        roles.OWNER,
        EP,
        ("PUT", f"{EP}/{AUTH}/roleAssignments/{{new}}"),
        (
            "PUT",
            f"{WS}/{AUTH}/roleAssignments/{{new}}",
            "Microsoft.Authorization/roleAssignments/write",
            f"{WS}/{AUTH}/roleAssignments/{{new}}",
        ),
    ),
    (
        roles.DATA_SCIENTIST,
        RG,
        ("PUT", f"{WS}/environments/e1/versions/1"),
        ("PUT", f"{WS}/computes/k8s", f"{ML}/computes/write", f"{WS}/computes/k8s"),
    ),
    (roles.DATA_SCIENTIST, WS, ("POST", f"{EP}/listKeys"), ("PATCH", WS, f"{ML}/write", WS)),
    (
        roles.DATA_SCIENTIST,
        EP,
        ("PATCH", EP),
        (
            "PUT",
            f"{EP}/{AUTH}/roleAssignments/{{new}}",
            "Microsoft.Authorization/roleAssignments/write",
            f"{EP}/{AUTH}/roleAssignments/{{new}}",
        ),
    ),
    (
        roles.ENDPOINT_INVOKER,
        WS,
        ("POST", f"{EP}/listKeys"),
        ("PATCH", EP, f"{ML}/onlineEndpoints/write", EP),
    ),
    (
        roles.ENDPOINT_INVOKER,
        EP,
        ("GET", EP),
        ("GET", f"{EP}/deployments", f"{ML}/onlineEndpoints/deployments/read", EP),
    ),
]

BODIES = {
    "PATCH": TAGS,
    "PUT": None,  # by path, below
}


def body_for(method: str, path: str, principal_id) -> dict | None:
    if "/roleAssignments/" in path:
        return {
            "properties": {
                "roleDefinitionId": role_id(roles.READER),
                "principalId": str(principal_id),
            }
        }
    if "/computes/" in path:
        return {"location": "local", "properties": {"computeType": "Kubernetes"}}
    if "/environments/" in path:
        return {"properties": {"image": "python:3.11-slim"}}
    return TAGS if method == "PATCH" else None


def call(api, method: str, path: str, principal_id):
    version = "2022-04-01" if "/Microsoft.Authorization/" in path else API.split("=")[1]
    body = body_for(method, path, principal_id)
    return getattr(api, method.lower())(f"{path}?api-version={version}", body, format="json")


@pytest.mark.parametrize(("role", "scope", "allowed", "refused"), MATRIX)
def test_each_role_at_each_scope(world, role, scope, allowed, refused):
    bob, principal = caller("bob")
    assign(world, scope, role, principal.object_id)
    new = uuid.uuid4()
    method, path = allowed
    response = call(bob, method, path.replace("{new}", str(new)), principal.object_id)
    assert response.status_code < 300, (method, path, response.content)
    method, path, action, on = refused
    new = uuid.uuid4()
    response = call(bob, method, path.replace("{new}", str(new)), principal.object_id)
    denied(response, principal, action, on.replace("{new}", str(new)))


def test_without_a_role_nothing_is_allowed(world):
    bob, principal = caller("bob")
    denied(call(bob, "GET", WS, None), principal, f"{ML}/read", WS)
    assert_arm_error(
        call(
            bob,
            "GET",
            f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces",
            None,
        ),
        403,
        "AuthorizationFailed",
    )


def test_a_list_shows_only_what_the_caller_may_read(world):
    bob, principal = caller("bob")
    assign(world, f"{WS}/onlineEndpoints/ep2", roles.READER, principal.object_id)
    listed = call(bob, "GET", f"{WS}/onlineEndpoints", None)
    assert listed.status_code == 200, listed.content
    assert [e["name"] for e in listed.json()["value"]] == ["ep2"], listed.content
    assign(world, WS2, roles.READER, principal.object_id)
    workspaces = call(
        bob,
        "GET",
        f"/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices/workspaces",
        None,
    )
    assert [w["name"] for w in workspaces.json()["value"]] == ["ws2"]


def test_a_group_role_applies_to_its_members(world):
    bob, principal = caller("bob", PrincipalType.USER)
    group = Group.objects.create(name="data-team", external_id="data-team")
    group.members.add(principal.user)
    assign(world, WS, roles.DATA_SCIENTIST, group.object_id)
    assert call(bob, "PUT", f"{WS}/environments/e1/versions/1", None).status_code == 201


def test_a_custom_role_with_wildcards(world):
    bob, principal = caller("bob")
    role = uuid.uuid4()
    body = {
        "properties": {
            "roleName": "Endpoint reader but not keys",
            "type": "CustomRole",
            "permissions": [
                {
                    "actions": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/*"],
                    "notActions": ["*/listKeys/action", "*/write"],
                }
            ],
            "assignableScopes": [WS],
        }
    }
    response = world.put(
        f"/{AUTH}/roleDefinitions/{role}?api-version=2022-04-01", body, format="json"
    )
    assert response.status_code == 201, response.content
    assign(world, EP, role, principal.object_id)
    assert call(bob, "GET", EP, None).status_code == 200
    assert call(bob, "POST", f"{EP}/token", None).status_code != 403
    denied(
        call(bob, "POST", f"{EP}/listKeys", None),
        principal,
        f"{ML}/onlineEndpoints/listKeys/action",
        EP,
    )
    # Not assignable outside its assignable scopes.
    name = uuid.uuid4()
    outside = world.put(
        f"{WS2}/{AUTH}/roleAssignments/{name}?api-version=2022-04-01",
        {
            "properties": {
                "roleDefinitionId": role_id(role),
                "principalId": str(principal.object_id),
            }
        },
        format="json",
    )
    assert_arm_error(outside, 400, "ValidationError", "scope")
    # An assigned role cannot be deleted; a built-in one never.
    in_use = world.delete(f"/{AUTH}/roleDefinitions/{role}?api-version=2022-04-01")
    assert_arm_error(in_use, 400, "RoleDefinitionHasAssignments")
    built_in = world.delete(f"/{AUTH}/roleDefinitions/{roles.OWNER}?api-version=2022-04-01")
    assert_arm_error(built_in, 400, "RoleDefinitionDeleteNotPermitted")


def test_role_assignments_read_back_and_bad_input_changes_nothing(world):
    _, principal = caller("bob")
    name = assign(world, WS, roles.READER, principal.object_id)
    got = world.get(f"{WS}/{AUTH}/roleAssignments/{name}?api-version=2022-04-01").json()
    assert got["id"] == f"{WS}/{AUTH}/roleAssignments/{name}"
    assert got["type"] == "Microsoft.Authorization/roleAssignments"
    assert got["properties"]["principalId"] == str(principal.object_id)
    assert got["properties"]["principalType"] == "ServicePrincipal"
    assert got["properties"]["roleDefinitionId"].endswith(str(roles.READER))
    assert got["properties"]["scope"] == WS
    listed = world.get(f"{WS}/{AUTH}/roleAssignments?api-version=2022-04-01").json()["value"]
    # Below or at the workspace: bob's; above it: alice's Owner at /.
    assert {a["name"] for a in listed} == {
        str(name),
        str(RoleAssignment.objects.get(scope_key="/").id),
    }
    mine = world.get(
        f"{WS}/{AUTH}/roleAssignments?api-version=2022-04-01"
        f"&$filter=principalId eq '{principal.object_id}'"
    ).json()["value"]
    assert [a["name"] for a in mine] == [str(name)]
    count = RoleAssignment.objects.count()
    cases = [
        (
            {
                "properties": {
                    "roleDefinitionId": role_id(uuid.uuid4()),
                    "principalId": str(principal.object_id),
                }
            },
            "RoleDefinitionDoesNotExist",
            "properties.roleDefinitionId",
        ),
        (
            {
                "properties": {
                    "roleDefinitionId": role_id(roles.READER),
                    "principalId": str(uuid.uuid4()),
                }
            },
            "PrincipalNotFound",
            "properties.principalId",
        ),
        (
            {"properties": {"roleDefinitionId": role_id(roles.READER), "principalId": "nope"}},
            "ValidationError",
            "properties.principalId",
        ),
        (
            {
                "properties": {
                    "roleDefinitionId": role_id(roles.READER),
                    "principalId": str(principal.object_id),
                    "principalType": "Group",
                }
            },
            "ValidationError",
            "properties.principalType",
        ),
        ({}, "ValidationError", "properties"),
    ]
    for body, code, target in cases:
        response = world.put(
            f"{WS}/{AUTH}/roleAssignments/{uuid.uuid4()}?api-version=2022-04-01",
            body,
            format="json",
        )
        assert_arm_error(response, 400, code, target)
    duplicate = world.put(
        f"{WS}/{AUTH}/roleAssignments/{uuid.uuid4()}?api-version=2022-04-01",
        {
            "properties": {
                "roleDefinitionId": role_id(roles.READER),
                "principalId": str(principal.object_id),
            }
        },
        format="json",
    )
    assert_arm_error(duplicate, 409, "RoleAssignmentExists")
    assert RoleAssignment.objects.count() == count
    deleted = world.delete(f"{WS}/{AUTH}/roleAssignments/{name}?api-version=2022-04-01")
    assert deleted.status_code == 200 and deleted.json()["name"] == str(name)
    assert (
        world.get(f"{WS}/{AUTH}/roleAssignments/{name}?api-version=2022-04-01").status_code == 404
    )


@pytest.mark.parametrize(
    ("method", "path", "action", "scope"),
    [
        ("GET", "/subscriptions/s", "Microsoft.Resources/subscriptions/read", "/subscriptions/s"),
        ("GET", f"{WS}/onlineEndpoints", f"{ML}/onlineEndpoints/read", WS),
        ("DELETE", EP, f"{ML}/onlineEndpoints/delete", EP),
        ("POST", f"{EP}/regenerateKeys", f"{ML}/onlineEndpoints/regenerateKeys/action", EP),
        (
            "PUT",
            f"{EP}/deployments/blue",
            f"{ML}/onlineEndpoints/deployments/write",
            f"{EP}/deployments/blue",
        ),
        ("POST", f"/modelmanagement/v1.0{WS}/services", f"{ML}/services/write", WS),
        (
            "POST",
            f"/modelmanagement/v1.0{WS}/services/s1/listKeys",
            f"{ML}/services/listKeys/action",
            f"{WS}/services/s1",
        ),
        (
            "POST",
            f"/batch{WS}/batchEndpoints/b1/jobs",
            f"{ML}/batchEndpoints/jobs/write",
            f"{WS}/batchEndpoints/b1",
        ),
        ("GET", f"/rp/workspaces{WS}/computes/aks1", f"{ML}/computes/read", f"{WS}/computes/aks1"),
        (
            "PUT",
            f"{WS}/{AUTH}/roleAssignments/x",
            "Microsoft.Authorization/roleAssignments/write",
            f"{WS}/{AUTH}/roleAssignments/x",
        ),
        ("GET", f"/{AUTH}/roleDefinitions", "Microsoft.Authorization/roleDefinitions/read", "/"),
        (
            "GET",
            f"{EP}/providers/Microsoft.Insights/metrics",
            "Microsoft.Insights/metrics/read",
            EP,
        ),
        (
            "GET",
            f"{EP}/deployments/blue/providers/Microsoft.Insights/metricDefinitions",
            "Microsoft.Insights/metricDefinitions/read",
            f"{EP}/deployments/blue",
        ),
        (
            "GET",
            f"/subscriptions/s/providers/{ML_PROVIDER}/workspaces",
            f"{ML}/read",
            "/subscriptions/s",
        ),
    ],
)
def test_the_action_and_scope_of_a_request(method, path, action, scope):
    wanted = actions.of(method, path)
    assert (wanted.action, wanted.scope) == (action, scope)


def test_an_operation_poll_is_a_read_of_what_it_changes(world):
    bob, principal = caller("bob")
    created = world.put(
        url("/onlineEndpoints/ep3"),
        {"location": "local", "properties": {"authMode": "Key"}},
        format="json",
    )
    status = created["Azure-AsyncOperation"]
    path = status.split("://", 1)[1].split("/", 1)[1]
    denied(
        bob.get("/" + path), principal, f"{ML}/onlineEndpoints/read", f"{WS}/onlineEndpoints/ep3"
    )
    assign(world, f"{WS}/onlineEndpoints/ep3", roles.READER, principal.object_id)
    assert bob.get("/" + path).status_code == 200


def test_a_reader_of_a_workspace_reads_its_audit_records_only(world):
    bob, principal = caller("bob")
    assign(world, WS, roles.READER, principal.object_id)
    records = "/providers/Weir.Audit/auditRecords?api-version=2024-04-01"
    mine = bob.get(f"{records}&scope={WS}")
    assert mine.status_code == 200, mine.content
    assert mine.json()["value"]
    assert all(r["resourceId"].lower().startswith(WS.lower()) for r in mine.json()["value"])
    denied(bob.get(records), principal, "Microsoft.Insights/eventtypes/values/read", "/")
