"""Workspaces: create, read, update, list, delete, ETags."""

from tests.conftest import SUB, assert_arm_error, url
from tests.controlplane.arm_resource import ArmResourceTests

RG1 = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.MachineLearningServices"
RG2 = f"/subscriptions/{SUB}/resourceGroups/rg2/providers/Microsoft.MachineLearningServices"


class TestWorkspaceResource(ArmResourceTests):
    collection = f"{RG1}/workspaces"
    resource_type = "Microsoft.MachineLearningServices/workspaces"
    body = {"location": "local"}
    update = {"location": "local", "tags": {"team": "a"}}
    names = ("ws7", "ws8")
    bad_name = "x"
    bad_name_target = "workspaceName"


def test_it_creates_a_workspace_with_the_arm_envelope(client, workspace):
    assert workspace["id"].endswith("/providers/Microsoft.MachineLearningServices/workspaces/ws1")
    assert workspace["type"] == "Microsoft.MachineLearningServices/workspaces"
    assert workspace["location"] == "local"
    assert workspace["properties"]["provisioningState"] == "Succeeded"
    system = workspace["systemData"]
    assert system["createdBy"] == "alice" and system["lastModifiedBy"] == "alice"
    assert system["createdAt"] and system["lastModifiedAt"]


def test_a_put_replaces_and_a_patch_merges(client, workspace):
    body = {"location": "local", "tags": {"a": "1"}, "properties": {"description": "d"}}
    assert client.put(url(""), body, format="json").status_code == 200
    patched = client.patch(url(""), {"tags": {"b": "2"}}, format="json")
    assert patched.status_code == 200
    assert patched.json()["tags"] == {"b": "2"}
    assert patched.json()["properties"]["description"] == "d"


def test_location_cannot_change(client, workspace):
    response = client.put(url(""), {"location": "elsewhere"}, format="json")
    assert_arm_error(response, 400, "ValidationError", "location")


def test_location_is_required(client):
    response = client.put(url(""), {"properties": {}}, format="json")
    assert_arm_error(response, 400, "ValidationError", "location")


def test_it_lists_by_resource_group_and_subscription(client, workspace):
    other = f"{RG2}/workspaces/ws2"
    assert client.put(url(other), {"location": "local"}, format="json").status_code == 201
    by_rg = client.get(
        url(
            f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces"
        )
    )
    by_sub = client.get(
        url(f"/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices/workspaces")
    )
    assert [w["name"] for w in by_rg.json()["value"]] == ["ws1"]
    assert sorted(w["name"] for w in by_sub.json()["value"]) == ["ws1", "ws2"]


def test_if_match_guards_writes(client, workspace):
    etag = client.get(url(""))["ETag"]
    stale = client.patch(url(""), {"tags": {"x": "y"}}, format="json", HTTP_IF_MATCH='"stale"')
    assert_arm_error(stale, 412, "PreconditionFailed")
    fresh = client.patch(url(""), {"tags": {"x": "y"}}, format="json", HTTP_IF_MATCH=etag)
    assert fresh.status_code == 200
    assert fresh["ETag"] != etag


def test_a_workspace_with_endpoints_is_not_deleted(client, endpoint):
    assert_arm_error(client.delete(url("")), 409, "Conflict")
    assert client.get(url("")).status_code == 200
