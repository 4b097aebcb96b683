"""The audit log: what a sequence of writes leaves in it (actions, ids, outcomes, changes,
secrets redacted), reading it back (filters, pages, JSON lines, Azure's activity-log route),
and Postgres refusing to change or remove a record."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from controlplane.access import signals
from controlplane.access.models import RoleAssignment
from controlplane.access.principals import principal_of
from controlplane.access.roles import READER
from controlplane.audit.changes import REDACTED, diff, redact
from controlplane.audit.models import AuditRecord
from tests.conftest import SUB, WS, assert_arm_error, put_deployment, put_endpoint, url

pytestmark = pytest.mark.django_db

ML = "Microsoft.MachineLearningServices/workspaces"
EP = f"{WS}/onlineEndpoints/ep1"
AUDIT = "/providers/Weir.Audit/auditRecords?api-version=2024-04-01"
SAS_URL = "https://blob.example/c/data.csv?sv=2024-01-01&sp=r&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"


def rows(after: int = 0) -> list[tuple]:
    return [
        (r.action, r.resource_id, r.method, r.status_code, r.outcome)
        for r in AuditRecord.objects.filter(id__gt=after).order_by("id")
    ]


def test_a_scripted_sequence_leaves_exactly_its_records(client, alice, workspace, capsys):
    # The workspace fixture's own writes: the workspace, an environment and a code version.
    created = f"{ML}/write"
    assert rows() == [
        (created, WS, "PUT", 201, "Succeeded"),
        (
            f"{ML}/environments/versions/write",
            f"{WS}/environments/test-env/versions/1",
            "PUT",
            201,
            "Succeeded",
        ),  # noqa: E501
        (
            f"{ML}/codes/versions/write",
            f"{WS}/codes/test-score/versions/1",
            "PUT",
            201,
            "Succeeded",
        ),  # noqa: E501
    ]
    mark = AuditRecord.objects.latest("id").id
    assert put_endpoint(client, description="first").status_code == 201
    environment = {"DB_PASSWORD": "hunter2", "DATA_URL": SAS_URL, "MODE": "fast"}
    response = put_deployment(client, environmentVariables=environment)
    assert response.status_code == 201, response.content
    patch = client.patch(url("/onlineEndpoints/ep1"), {"tags": {"team": "red"}}, format="json")
    assert patch.status_code == 200, patch.content
    regenerate = client.post(
        url("/onlineEndpoints/ep1/regenerateKeys"), {"keyType": "Secondary"}, format="json"
    )
    assert regenerate.status_code == 200, regenerate.content
    bad = put_endpoint(client, authMode="Password")
    assert_arm_error(bad, 400, "ValidationError", "properties.authMode")
    assert client.delete(url("/onlineEndpoints/ep1")).status_code == 202
    # Reads leave nothing; listing keys is an action, as in Azure's activity log.
    assert client.get(url("/onlineEndpoints")).status_code == 200
    assert client.post(url("/onlineEndpoints/ep1/listKeys")).status_code == 200
    call_command("create_api_token", "bob", "--label", "ci")
    plaintext = capsys.readouterr().out.strip()

    token = f"/providers/Weir.Access/principals/{principal_of_name('bob')}/tokens/"
    records = list(AuditRecord.objects.filter(id__gt=mark).order_by("id"))
    summary = [(r.action, r.resource_id, r.method, r.status_code, r.outcome) for r in records]
    assert summary[:7] == [
        (f"{ML}/onlineEndpoints/write", EP, "PUT", 201, "Accepted"),
        (
            f"{ML}/onlineEndpoints/deployments/write",
            f"{EP}/deployments/blue",
            "PUT",
            201,
            "Accepted",
        ),  # noqa: E501
        (f"{ML}/onlineEndpoints/write", EP, "PATCH", 200, "Succeeded"),
        (f"{ML}/onlineEndpoints/regenerateKeys/action", EP, "POST", 200, "Succeeded"),
        (f"{ML}/onlineEndpoints/write", EP, "PUT", 400, "Failed"),
        (f"{ML}/onlineEndpoints/delete", EP, "DELETE", 202, "Accepted"),
        (f"{ML}/onlineEndpoints/listKeys/action", EP, "POST", 200, "Succeeded"),
    ]
    assert summary[7][0] == "Weir.Access/tokens/write" and summary[7][1].startswith(token)
    assert summary[7][2:] == ("", None, "Succeeded")
    assert len(summary) == 8
    endpoint, deployment, tags, keys, failed, deleted, _, issued = records

    # Who, and the request: every record carries the x-ms-request-id the client was given.
    oid = principal_of(alice).object_id
    assert {(r.principal_name, r.principal_id, r.principal_type) for r in records[:7]} == {
        ("alice", oid, "ServicePrincipal")
    }
    assert patch["x-ms-request-id"] == tags.request_id
    assert bad["x-ms-request-id"] == failed.request_id
    assert tags.client_ip == "127.0.0.1"

    # What changed: a create shows its properties against nothing, a tag patch the one tag.
    assert endpoint.changes["properties.authMode"] == {"before": None, "after": "Key"}
    assert endpoint.changes["properties.description"] == {"before": None, "after": "first"}
    assert endpoint.changes["properties.provisioningState"] == {"before": None, "after": "Creating"}
    assert tags.changes == {"tags.team": {"before": None, "after": "red"}}
    # Secrets redacted: the password, and the SAS signature (the rest of the URL is kept).
    variables = {
        path.removeprefix("properties.environmentVariables."): change["after"]
        for path, change in deployment.changes.items()
        if path.startswith("properties.environmentVariables.")
    }
    assert variables == {
        "DB_PASSWORD": REDACTED,
        "DATA_URL": "https://blob.example/c/data.csv?sv=2024-01-01&sp=r&sig=" + REDACTED,
        "MODE": "fast",
    }
    # An action records what it was asked; regenerating keys changes nothing the GET shows.
    assert keys.changes == {} and keys.details == {"parameters": {"keyType": "Secondary"}}
    # A failure: its outcome and the field it named, no changes.
    assert failed.changes == {}
    assert failed.details == {"error": {"code": "ValidationError", "target": "properties.authMode"}}
    assert deleted.changes == {
        "properties.provisioningState": {"before": "Creating", "after": "Deleting"}
    }
    # The token: its name, prefix and owner, never the token itself.
    assert issued.principal_type == "Operator"
    assert issued.details["token"]["name"] == "ci"
    assert issued.details["token"]["owner"] == "bob"
    assert plaintext.split(".")[1][:8] not in json.dumps(issued.details)
    dumped = json.dumps([[r.changes, r.details] for r in AuditRecord.objects.all()])
    for secret in ("hunter2", "c2VjcmV0LXNpZ25hdHVyZQ", plaintext):
        assert secret not in dumped


def principal_of_name(name: str):
    from django.contrib.auth import get_user_model

    return principal_of(get_user_model().objects.get(username=name)).object_id


def test_the_application_cannot_change_or_remove_a_record(client, alice):
    assert client.put(url(""), {"location": "local"}, format="json").status_code == 201
    record = AuditRecord.objects.get()
    for statement in (
        "UPDATE audit_auditrecord SET outcome = 'Failed' WHERE id = %s",
        "DELETE FROM audit_auditrecord WHERE id = %s",
        "TRUNCATE audit_auditrecord",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                # As an install's sessions are (the test settings let Django's flush truncate).
                cursor.execute("SET LOCAL weir.audit_truncate = 'off'")
                cursor.execute(statement, [record.id] if "%s" in statement else None)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditRecord.objects.filter(id=record.id).update(outcome="Failed")
    with pytest.raises(DatabaseError), transaction.atomic():
        record.delete()
    assert AuditRecord.objects.get().outcome == "Succeeded"


def test_secrets_are_redacted_by_name_and_in_urls_and_a_change_of_one_still_shows():
    before = {
        "properties": {
            "keys": {"primaryKey": "p1", "secondaryKey": "s1"},
            "credentials": {"account": {"name": "n", "value": "v"}},
            "keyType": "Primary",
            "authMode": "Key",
            "environmentVariables": {"API_TOKEN": "t", "client_secret": "c", "X": "1"},
        },
        "tags": {},
    }
    after = json.loads(json.dumps(before))
    after["properties"]["keys"]["primaryKey"] = "p2"
    after["properties"]["environmentVariables"]["X"] = "2"
    after["properties"]["sasUri"] = "https://a/b?sig=zz"
    after["properties"]["accessToken"] = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert diff(before, after) == {
        "properties.keys.primaryKey": {"before": REDACTED, "after": REDACTED},
        "properties.environmentVariables.X": {"before": "1", "after": "2"},
        "properties.sasUri": {"before": None, "after": REDACTED},
        "properties.accessToken": {"before": None, "after": REDACTED},
    }
    assert redact(before) == {
        "properties": {
            "keys": REDACTED,
            "credentials": REDACTED,
            "keyType": "Primary",
            "authMode": "Key",
            "environmentVariables": {"API_TOKEN": REDACTED, "client_secret": REDACTED, "X": "1"},
        },
        "tags": {},
    }
    assert redact({"uri": "https://x/y?sv=1&sig=abc&se=2"}) == {
        "uri": f"https://x/y?sv=1&sig={REDACTED}&se=2"
    }
    assert redact({"note": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}) == {
        "note": f"Bearer {REDACTED}"
    }
    assert redact({"password": "", "keyValue": "k"}) == {"password": "", "keyValue": REDACTED}


def test_a_write_without_credentials_is_recorded_as_failed_with_nobody(alice):
    response = APIClient().put(url(""), {"location": "local"}, format="json")
    assert response.status_code == 401
    record = AuditRecord.objects.get()
    assert (record.action, record.status_code, record.outcome) == (f"{ML}/write", 401, "Failed")
    assert (record.principal_name, record.principal_id) == ("", None)
    assert record.details == {"error": {"code": "AuthenticationFailed", "target": None}}


def test_role_changes_and_sign_ins_are_recorded_from_the_access_signals(alice):
    bob = get_user_model().objects.create(username="bob")
    assignment = RoleAssignment.objects.create(
        scope=WS,
        scope_key=WS.lower(),
        role_definition_id=READER,
        principal_id=principal_of(bob).object_id,
        principal_type="ServicePrincipal",
    )
    signals.role_assignment_created.send(
        sender=RoleAssignment, request=None, principal=alice, assignment=assignment
    )
    signals.role_assignment_deleted.send(
        sender=RoleAssignment, request=None, principal=alice, assignment=assignment
    )
    user_logged_in.send(sender=type(bob), request=None, user=bob)
    user_login_failed.send(sender=None, credentials={"username": "mallory", "password": "*"})
    created, deleted, signed_in, refused = AuditRecord.objects.order_by("id")
    assignment_id = f"{WS}/providers/Microsoft.Authorization/roleAssignments/{assignment.pk}"
    assert (created.action, created.resource_id, created.principal_name) == (
        "Microsoft.Authorization/roleAssignments/write",
        assignment_id,
        "alice",
    )
    assert created.changes["properties.roleDefinitionId"] == {
        "before": None,
        "after": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
    }
    assert created.changes["properties.principalId"]["after"] == str(principal_of(bob).object_id)
    assert deleted.action == "Microsoft.Authorization/roleAssignments/delete"
    assert deleted.changes["properties.scope"] == {"before": WS, "after": None}
    assert (signed_in.action, signed_in.outcome, signed_in.principal_name) == (
        "Weir.Access/signIn/action",
        "Succeeded",
        "bob",
    )
    assert (
        signed_in.resource_id == f"/providers/Weir.Access/principals/{principal_of(bob).object_id}"
    )
    assert (refused.outcome, refused.principal_name, refused.principal_id) == (
        "Failed",
        "mallory",
        None,
    )


def add_records(client) -> list[str]:
    """Writes in two workspaces and a failure; returns the request ids, oldest first."""
    other = WS.replace("/ws1", "/ws2")
    ids = []
    for path, body in (
        (url(""), {"location": "local"}),
        (url(other), {"location": "local"}),
        (url(""), {"location": "local", "tags": {"a": "b"}}),
        (url("/onlineEndpoints/BAD_NAME!"), {"location": "local"}),
    ):
        ids.append(client.put(path, body, format="json")["x-ms-request-id"])
    return ids


def test_records_are_read_newest_first_filtered_and_paged(client, alice):
    ids = add_records(client)
    response = client.get(AUDIT)
    assert response.status_code == 200, response.content
    assert [e["properties"]["serviceRequestId"] for e in response.json()["value"]] == ids[::-1]
    first = response.json()["value"][0]
    assert first["operationName"]["value"] == f"{ML}/onlineEndpoints/write"
    assert first["status"]["value"] == "Failed" and first["subStatus"]["value"] == "BadRequest"
    assert first["caller"] == "alice" and first["resourceGroupName"] == "rg1"

    def request_ids(query: str) -> list[str]:
        answer = client.get(f"{AUDIT}&{query}")
        assert answer.status_code == 200, answer.content
        return [e["properties"]["serviceRequestId"] for e in answer.json()["value"]]

    assert request_ids(f"scope={WS}") == [ids[3], ids[2], ids[0]]
    assert request_ids(f"scope={WS.upper()}") == [ids[3], ids[2], ids[0]]
    assert request_ids(f"scope={WS}/onlineEndpoints") == [ids[3]]
    assert request_ids(f"action={ML}/write") == [ids[2], ids[1], ids[0]]
    assert request_ids("action=*/ONLINEENDPOINTS/*") == [ids[3]]
    assert request_ids("principal=alice") == ids[::-1]
    assert request_ids(f"principal={principal_of(alice).object_id}") == ids[::-1]
    assert request_ids("principal=bob") == []
    times = list(AuditRecord.objects.order_by("id").values_list("time", flat=True))
    window = f"from={times[1].isoformat()}&to={times[2].isoformat()}".replace("+", "%2B")
    assert request_ids(window) == [ids[2], ids[1]]
    assert request_ids("from=2999-01-01") == []

    # Pages of two, following nextLink to the end.
    seen, link = [], f"{AUDIT}&$top=2"
    while link:
        page = client.get(link).json()
        assert len(page["value"]) <= 2
        seen += [e["properties"]["serviceRequestId"] for e in page["value"]]
        link = page["nextLink"]
    assert seen == ids[::-1]

    assert_arm_error(client.get(f"{AUDIT}&from=yesterday"), 400, "ValidationError", "from")
    assert_arm_error(client.get(f"{AUDIT}&scope=subscriptions"), 400, "ValidationError", "scope")
    assert_arm_error(client.get(f"{AUDIT}&$skipToken=x"), 400, "ValidationError", "$skipToken")
    assert_arm_error(client.get(f"{AUDIT}&$format=xml"), 400, "ValidationError", "$format")
    assert APIClient().get(AUDIT).status_code == 401
    # Reading the log is not a write: it adds nothing.
    assert AuditRecord.objects.count() == 4


def test_the_log_exports_as_json_lines(client, alice):
    ids = add_records(client)
    for response in (
        client.get(f"{AUDIT}&$format=jsonl"),
        client.get(f"{AUDIT}&scope={WS}", HTTP_ACCEPT="application/x-ndjson"),
    ):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/x-ndjson"
        assert response.streaming
        lines = b"".join(response.streaming_content).decode().splitlines()
        events = [json.loads(line) for line in lines]
        assert [e["properties"]["serviceRequestId"] for e in events] in (
            ids[::-1],
            [ids[3], ids[2], ids[0]],
        )
        assert all(e["eventDataId"] and e["operationName"]["value"] for e in events)


def test_azure_activity_log_route_and_filter(client, alice):
    ids = add_records(client)
    start = AuditRecord.objects.order_by("id").first().time.isoformat()
    route = (
        f"/subscriptions/{SUB}/providers/microsoft.insights/eventtypes/management/values"
        "?api-version=2015-04-01&$filter="
    )

    def request_ids(condition: str) -> list[str]:
        answer = client.get(route + condition)
        assert answer.status_code == 200, answer.content
        return [e["properties"]["serviceRequestId"] for e in answer.json()["value"]]

    since = f"eventTimestamp ge '{start}'".replace("+", "%2B")
    assert request_ids(since) == ids[::-1]
    assert request_ids(f"{since} and resourceGroupName eq 'rg1'") == ids[::-1]
    assert request_ids(f"{since} and resourceGroupName eq 'rg2'") == []
    assert request_ids(f"{since} and resourceUri eq '{WS.replace('ws1', 'ws2')}'") == [ids[1]]
    assert request_ids(f"{since} and status eq 'Failed'") == [ids[3]]
    assert request_ids(f"{since} and caller eq 'alice'") == ids[::-1]
    assert request_ids(f"correlationId eq '{ids[2]}'") == [ids[2]]
    assert request_ids("eventTimestamp le '2000-01-01T00:00:00Z'") == []
    other = route.replace(SUB, "99999999-1111-2222-3333-444444444444")
    assert client.get(other + since).json()["value"] == []
    assert_arm_error(client.get(route + "level eq 'Error'"), 400, "ValidationError", "$filter")
    assert_arm_error(client.get(route + "caller ne 'x'"), 400, "ValidationError", "$filter")


def test_the_operation_is_read_from_the_path_and_method():
    from controlplane.audit.actions import target

    v1 = f"/modelmanagement/v1.0{WS}"
    cases = {
        ("GET", EP): None,
        ("PUT", EP): (f"{ML}/onlineEndpoints/write", EP, EP),
        ("DELETE", f"{EP}/deployments/b"): (
            f"{ML}/onlineEndpoints/deployments/delete",
            f"{EP}/deployments/b",
            f"{EP}/deployments/b",
        ),
        ("POST", f"{EP}/token"): (f"{ML}/onlineEndpoints/token/action", EP, EP),
        ("POST", f"{v1}/models"): (f"{ML}/models/write", f"{WS}/models", None),
        ("POST", f"{v1}/services/s1/regenerateKeys"): (
            f"{ML}/services/regenerateKeys/action",
            f"{WS}/services/s1",
            f"{v1}/services/s1",
        ),
        ("POST", f"{v1}/services/validate"): None,
        # A deployment's logs are a read (the portal's log panels poll them); its keys are not.
        ("POST", f"{EP}/deployments/b/getLogs"): None,
        ("POST", f"{EP}/listKeys"): (f"{ML}/onlineEndpoints/listKeys/action", EP, EP),
        ("POST", f"/batch{WS}/batchEndpoints/b/jobs"): (
            f"{ML}/batchEndpoints/jobs/write",
            f"{WS}/batchEndpoints/b/jobs",
            None,
        ),
        ("POST", f"/history/v1.0{WS}/rundata"): None,
        ("PUT", f"{WS}/providers/Microsoft.Authorization/roleAssignments/r1"): (
            "Microsoft.Authorization/roleAssignments/write",
            f"{WS}/providers/Microsoft.Authorization/roleAssignments/r1",
            f"{WS}/providers/Microsoft.Authorization/roleAssignments/r1",
        ),
        ("DELETE", "/subscriptions/s/resourceGroups/rg"): (
            "Microsoft.Resources/subscriptions/resourceGroups/delete",
            "/subscriptions/s/resourceGroups/rg",
            "/subscriptions/s/resourceGroups/rg",
        ),
        ("PUT", "/healthz"): None,
    }
    for (method, path), expected in cases.items():
        found = target(method, path)
        assert (found and (found.action, found.resource_id, found.read_path)) == expected, path
