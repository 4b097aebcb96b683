"""SDK v1's web services on model management, in process: what a create request becomes, the
document the SDK reads back, and bad input refused in v1's error shape with nothing changed.
(tests/system/test_azureml_core_services.py runs the SDK itself against the whole stack.)"""

import io
import json
import tarfile

import pytest

from controlplane.blobstore import storage
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Workspace
from controlplane.v1 import webservices
from controlplane.v1.models import ServiceOperation
from tests.conftest import WS, url
from tests.controlplane.test_v1_models import MMS, register, upload

SCORE = b"def init():\n    pass\n\ndef run(raw_data):\n    return raw_data\n"
CONDA = {"name": "v1env", "dependencies": ["pip"]}
# What the SDK's validate calls ask first; the same checks run again on the change itself.
REQUIRED_KEYS = {
    "computeType",
    "createdTime",
    "description",
    "kvTags",
    "name",
    "properties",
    "appInsightsEnabled",
    "authEnabled",
    "computeName",
    "scoringUri",
    "aadAuthEnabled",
    "state",
    "updatedTime",
    "error",
}
VERSION_KEYS = {
    "autoScaler",
    "containerResourceRequirements",
    "dataCollection",
    "maxConcurrentRequestsPerContainer",
    "maxQueueWaitMs",
    "numReplicas",
    "scoringTimeoutMs",
    "livenessProbeRequirements",
    "trafficPercentile",
    "isDefault",
    "type",
    "models",
}


@pytest.fixture
def ws(client):
    response = client.put(url(""), {"location": "local"}, format="json")
    assert response.status_code == 201, response.content
    compute = {
        "location": "local",
        "properties": {"computeType": "Kubernetes", "properties": {"backend": "local"}},
    }
    response = client.put(url("/computes/aks1"), compute, format="json")
    assert response.status_code in (200, 201), response.content
    return Workspace.objects.get()


@pytest.fixture
def request_of(client, ws):
    """An environmentImageRequest as the SDK builds it: the driver and a tar.gz of the
    source directory uploaded as artifacts, the model registered, the environment inline."""
    upload(client, ws)
    assert register(client, ws).status_code == 200
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("src/score.py")
        info.size = len(SCORE)
        tar.addfile(info, io.BytesIO(SCORE))
    account = storage.account_for(ws)
    for path, content in (("driver.py", b"# driver\n"), ("abc.tar.gz", archive.getvalue())):
        upload(client, ws, container="deps", paths=(path,))
        storage.write_blob(
            account, account.default_container, f"artifacts/LocalUpload/deps/{path}", [content]
        )

    def build(model_id="m1:1") -> dict:
        return {
            "driverProgram": "driver.py",
            "assets": [
                {"id": "driver.py", "url": "aml://artifact/LocalUpload/deps/driver.py"},
                {
                    "id": "abc.tar.gz",
                    "url": "aml://artifact/LocalUpload/deps/abc.tar.gz",
                    "unpack": True,
                },
            ],
            "modelIds": [model_id],
            "environment": {
                "name": "v1env",
                "python": {"userManagedDependencies": False, "condaDependencies": CONDA},
                "docker": {"baseImage": "python:3.11-slim"},
                "environmentVariables": {
                    "AZUREML_ENTRY_SCRIPT": "src/score.py",
                    "AZUREML_SOURCE_DIRECTORY": "src",
                    "TEAM": "a",
                },
            },
        }

    return build


def endpoint_request(request_of, **versions) -> dict:
    return {
        "name": "ep1",
        "computeType": "AKSENDPOINT",
        "computeName": "aks1",
        "authEnabled": True,
        "versions": {
            name: {"environmentImageRequest": request_of(), **fields}
            for name, fields in versions.items()
        },
    }


def nothing_deployed():
    return not OnlineEndpoint.objects.exists() and not OnlineDeployment.objects.exists()


def test_a_create_becomes_an_endpoint_with_a_deployment_per_version(client, ws, request_of):
    body = endpoint_request(
        request_of,
        ver1={"numReplicas": 2, "scoringTimeoutMs": 2500},
        ver2={"trafficPercentile": 30},
    )
    response = client.post(f"{MMS}/services", body, format="json")
    assert response.status_code == 202, response.content
    operation_id = response["Operation-Location"].rsplit("/", 1)[1]
    assert response["Operation-Location"].endswith(f"{MMS}/operations/{operation_id}")

    endpoint = OnlineEndpoint.objects.get(name="ep1")
    assert (endpoint.auth_mode, endpoint.compute) == ("Key", "aks1")
    ver1 = endpoint.deployments.get(name="ver1")
    assert ver1.instance_count == 2
    assert ver1.request_settings["requestTimeout"] == "PT2.5S"
    # The source directory's top folder is the code's root; the SDK's variables are its own.
    assert ver1.code_configuration["scoringScript"] == "score.py"
    assert ver1.environment_variables == {"TEAM": "a"}
    # Traffic waits for the versions to be ready: the operation sets it.
    assert endpoint.traffic == {}
    operation = ServiceOperation.objects.get(pk=operation_id)
    assert operation.then_traffic == {"ver1": 70, "ver2": 30}
    assert len(operation.waits_for) == 3

    shown = client.get(f"{MMS}/services/ep1", {"expand": "true"}).json()
    assert REQUIRED_KEYS <= set(shown)
    assert shown["computeType"] == "AKSENDPOINT"
    assert set(shown["versions"]) == {"ver1", "ver2"}
    version = shown["versions"]["ver1"]
    assert VERSION_KEYS <= set(version)
    assert (version["isDefault"], version["type"], version["numReplicas"]) == (True, "Control", 2)
    assert version["scoringUri"].endswith("/api/v1/service/ep1/ver1/score")
    assert version["models"][0]["id"] == "m1:1"
    assert shown["versions"]["ver2"]["type"] == "Treatment"
    state = client.get(f"{MMS}/operations/{operation_id}").json()
    assert state["state"] == "Running"


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"modelIds": ["nope:1"]}, 404, "ModelNotFound"),
        ({"modelIds": ["m1:1", "m1:1"]}, 400, "one model"),
        ({"assets": []}, 400, "source asset"),
    ],
)
def test_a_bad_image_request_is_refused_and_creates_nothing(
    client, ws, request_of, change, status, words
):
    body = endpoint_request(request_of, ver1={})
    body["versions"]["ver1"]["environmentImageRequest"].update(change)
    response = client.post(f"{MMS}/services", body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["statusCode"] == status
    assert words in response.json()["code"] + response.json()["message"]
    assert nothing_deployed()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"computeType": "ACI"}, "computeType"),
        ({"computeName": "nowhere"}, "computeName"),
        ({"authEnabled": False}, "authenticates"),
        ({"name": "x"}, "name"),
    ],
)
def test_a_bad_service_is_refused_and_creates_nothing(client, ws, request_of, change, words):
    body = {**endpoint_request(request_of, ver1={}), **change}
    response = client.post(f"{MMS}/services", body, format="json")
    assert response.status_code == 400, response.content
    assert words in response.json()["message"]
    assert nothing_deployed()


def test_traffic_over_100_is_refused(client, ws, request_of):
    body = endpoint_request(
        request_of, ver1={}, ver2={"trafficPercentile": 60}, ver3={"trafficPercentile": 50}
    )
    response = client.post(f"{MMS}/services", body, format="json")
    assert response.status_code == 400, response.content
    assert "110" in response.json()["message"]
    assert nothing_deployed()


def test_validate_answers_the_error_the_change_would_give(client, ws, request_of):
    body = endpoint_request(request_of, ver1={})
    good = {"type": "Create", "serviceName": "ep1", "createRequest": body}
    assert client.post(f"{MMS}/services/validate", good, format="json").json() == {}
    body["versions"]["ver1"]["environmentImageRequest"]["modelIds"] = ["nope:1"]
    bad = client.post(f"{MMS}/services/validate", good, format="json")
    assert bad.status_code == 200
    assert "nope:1" in bad.json()["error"]["message"]
    assert nothing_deployed()
    free = client.post(f"{MMS}/services/validate/name/ep1", {}, format="json")
    assert free.json() == {}


@pytest.mark.parametrize(
    ("patch", "status", "words"),
    [
        ([{"op": "replace", "path": "/versions/ver1/nope/deeper", "value": 1}], 400, "patch"),
        ([{"op": "replace", "path": "/versions/ver9/trafficPercentile", "value": 5}], 400, "patch"),
        ([{"op": "add", "path": "/versions/ver1", "value": {}}], 409, "already exists"),
        ([{"op": "replace", "path": "/versions/ver2/trafficPercentile", "value": 150}], 400, "100"),
        (
            [{"op": "replace", "path": "/versions/ver2/trafficPercentile", "value": 10.5}],
            400,
            "whole",
        ),
        ([{"op": "replace", "path": "/versions/ver2/type", "value": "Boss"}], 400, "Control"),
        ({"op": "remove"}, 400, "list"),
    ],
)
def test_a_bad_patch_is_refused_and_changes_nothing(client, ws, request_of, patch, status, words):
    body = endpoint_request(request_of, ver1={}, ver2={"trafficPercentile": 30})
    assert client.post(f"{MMS}/services", body, format="json").status_code == 202
    before = client.get(f"{MMS}/services/ep1").json()
    response = client.patch(
        f"{MMS}/services/ep1", json.dumps(patch), content_type="application/json-patch+json"
    )
    assert response.status_code == status, response.content
    assert words in response.json()["message"]
    after = client.get(f"{MMS}/services/ep1").json()
    assert after["versions"] == before["versions"]
    assert ServiceOperation.objects.count() == 1


def test_a_service_that_does_not_exist(client, ws):
    for method, path in (
        ("get", ""),
        ("post", "/listkeys"),
        ("post", "/token"),
        ("get", "/logs"),
    ):
        response = getattr(client, method)(f"{MMS}/services/nope{path}")
        assert response.status_code == 404, (path, response.content)
        assert response.json()["code"] == "WebserviceNotFound"
    assert client.delete(f"{MMS}/services/nope").status_code == 204
    missing = client.get(f"{MMS}/operations/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


def test_the_compute_reads_as_an_aks_compute(client, ws):
    response = client.get(f"/rp/workspaces{WS}/computes/aks1", {"api-version": "2020-02-02"})
    assert response.status_code == 200, response.content
    properties = response.json()["properties"]
    assert (properties["computeType"], properties["isAttachedCompute"]) == ("AKS", True)
    assert {"agentCount", "agentVmSize", "clusterFqdn", "clusterPurpose"} <= set(
        properties["properties"]
    )
    assert client.get(f"/rp/workspaces{WS}/computes/nope").status_code == 404


def test_removing_a_version_without_traffic_keeps_the_others(client, ws, request_of):
    body = endpoint_request(request_of, ver1={}, ver2={"trafficPercentile": 0})
    assert client.post(f"{MMS}/services", body, format="json").status_code == 202
    endpoint = OnlineEndpoint.objects.get(name="ep1")
    change = webservices.read_patch(endpoint, [{"op": "remove", "path": "/versions/ver2"}], "a")
    assert change.removed == ["ver2"]
    # The traffic the removal sets: the default version keeps everything.
    assert change.traffic_after == {"ver1": 100}
