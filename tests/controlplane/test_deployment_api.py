"""Online deployments: create, references, validation, scale, delete, logs, skus."""

import pytest
from django.test import override_settings

from controlplane.core.models import OnlineDeployment
from tests.conftest import (
    DEFAULT_DEPLOYMENT,
    assert_arm_error,
    put_deployment,
    put_endpoint,
    run_operations,
    url,
)
from tests.controlplane.arm_resource import ArmResourceTests

DEP = "/onlineEndpoints/ep1/deployments/blue"
BODY = {
    "location": "local",
    "sku": {"name": "Default", "capacity": 1},
    "properties": {"endpointComputeType": "Managed", **DEFAULT_DEPLOYMENT},
}


class TestOnlineDeploymentResource(ArmResourceTests):
    collection = "/onlineEndpoints/ep1/deployments"
    resource_type = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
    body = BODY
    update = {**BODY, "properties": {**BODY["properties"], "description": "d"}}
    bad_name = "b"
    bad_name_target = "deploymentName"
    long_running = True

    @pytest.fixture
    def parent(self, endpoint):
        return endpoint


@pytest.fixture
def blue(client, endpoint, model_version):
    response = put_deployment(client, model="azureml:sklearn:1", capacity=2)
    assert response.status_code == 201, response.content
    run_operations()
    return response.json()


def test_create_fills_defaults_and_succeeds(client, blue):
    assert blue["properties"]["provisioningState"] == "Creating"
    assert blue["sku"]["capacity"] == 2
    assert (
        blue["type"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
    )
    got = client.get(url(DEP)).json()
    assert got["properties"]["provisioningState"] == "Succeeded"
    assert got["properties"]["model"] == "azureml:sklearn:1"


def test_probe_and_request_settings_get_azure_defaults(client, endpoint):
    response = put_deployment(client, livenessProbe={}, requestSettings={"requestTimeout": "PT9S"})
    props = response.json()["properties"]
    assert props["livenessProbe"] == {
        "failureThreshold": 30,
        "successThreshold": 1,
        "timeout": "PT2S",
        "period": "PT10S",
        "initialDelay": None,
    }
    assert props["requestSettings"] == {
        "maxConcurrentRequestsPerInstance": 1,
        "requestTimeout": "PT9S",
        "maxQueueWait": "PT0.5S",
    }


def test_a_data_collector_is_kept_with_azures_defaults(client, endpoint):
    collector = {
        "collections": {
            "request": {"dataCollectionMode": "Enabled", "samplingRate": 0.5},
            "response": {"dataCollectionMode": "Enabled"},
            "model_inputs": None,
        },
        "requestLogging": {"captureHeaders": ["x-client"]},
    }
    response = put_deployment(client, dataCollector=collector)
    assert response.status_code == 201, response.content
    shown = client.get(url(DEP)).json()["properties"]["dataCollector"]
    unset = {"dataId": None, "clientId": None}
    assert shown == {
        "collections": {
            "request": {**unset, "dataCollectionMode": "Enabled", "samplingRate": 0.5},
            "response": {**unset, "dataCollectionMode": "Enabled", "samplingRate": 1.0},
            "model_inputs": None,
        },
        "requestLogging": {"captureHeaders": ["x-client"]},
        "rollingRate": "Hour",
    }


def test_settings_left_out_are_answered_with_the_server_side_defaults(client, endpoint):
    # Azure's SDK builds its entities from these and fails on null (OnlineScaleSettings).
    put_deployment(client)
    for props in (
        client.get(url(DEP)).json()["properties"],
        client.get(url("/onlineEndpoints/ep1/deployments")).json()["value"][0]["properties"],
    ):
        assert props["scaleSettings"] == {"scaleType": "Default"}
        assert props["requestSettings"] == {
            "maxConcurrentRequestsPerInstance": 1,
            "requestTimeout": "PT5S",
            "maxQueueWait": "PT0.5S",
        }
        for probe in ("livenessProbe", "readinessProbe"):
            assert props[probe] == {
                "failureThreshold": 30,
                "successThreshold": 1,
                "timeout": "PT2S",
                "period": "PT10S",
                "initialDelay": None,
            }


@pytest.mark.parametrize(
    "properties, target",
    [
        ({"endpointComputeType": "Serverless"}, "properties.endpointComputeType"),
        ({"model": "azureml:missing:1"}, "properties.model"),
        ({"model": "azureml:sklearn:9"}, "properties.model"),
        ({"model": "not a reference"}, "properties.model"),
        ({"environmentId": "azureml:noenv:1"}, "properties.environmentId"),
        (
            {"codeConfiguration": {"codeId": "azureml:nocode:1", "scoringScript": "score.py"}},
            "properties.codeConfiguration.codeId",
        ),
        ({"codeConfiguration": {}}, "properties.codeConfiguration.scoringScript"),
        *(
            (
                {"codeConfiguration": {"codeId": "azureml:test-score:1", "scoringScript": path}},
                "properties.codeConfiguration.scoringScript",
            )
            for path in ("../../etc/passwd", "/etc/passwd", "src/../../x.py", "C:\\x\\score.py")
        ),
        ({"livenessProbe": {"period": "ten seconds"}}, "properties.livenessProbe.period"),
        ({"readinessProbe": {"failureThreshold": 0}}, "properties.readinessProbe.failureThreshold"),
        (
            {"requestSettings": {"requestTimeout": "PT181S"}},
            "properties.requestSettings.requestTimeout",
        ),
        ({"scaleSettings": {"scaleType": "Magic"}}, "properties.scaleSettings.scaleType"),
        ({"dataCollector": {}}, "properties.dataCollector.collections"),
        (
            {"dataCollector": {"collections": {}, "rollingRate": "Week"}},
            "properties.dataCollector.rollingRate",
        ),
        *(
            (
                {"dataCollector": {"collections": {"request": collection}}},
                f"properties.dataCollector.collections.request.{field}",
            )
            for collection, field in (
                ({"dataCollectionMode": "On"}, "dataCollectionMode"),
                ({"samplingRate": 1.5}, "samplingRate"),
                ({"samplingRate": "0.5"}, "samplingRate"),
                ({"samplingRate": True}, "samplingRate"),
            )
        ),
    ],
)
def test_invalid_properties_name_the_field(client, endpoint, model_version, properties, target):
    response = put_deployment(client, **properties)
    error = assert_arm_error(response, 400, "ValidationError")
    if target:
        assert error["target"] == target, error
    assert not OnlineDeployment.objects.exists()


@pytest.fixture
def mlflow_model(client, workspace):
    body = {
        "properties": {
            "modelUri": "azureml://datastores/workspaceblobstore/paths/m/",
            "modelType": "MLflow_Model",  # compared without case
        }
    }
    response = client.put(url("/models/diabetes/versions/1"), body, format="json")
    assert response.status_code == 201, response.content


NO_CODE = {"environmentId": None, "codeConfiguration": None}


def test_an_mlflow_model_deploys_without_code_or_environment(client, endpoint, mlflow_model):
    response = put_deployment(client, model="azureml:diabetes:1", **NO_CODE)
    assert response.status_code == 201, response.content
    properties = client.get(url(DEP)).json()["properties"]
    assert properties["codeConfiguration"] is None and properties["environmentId"] is None
    assert properties["model"] == "azureml:diabetes:1"
    # With both given, the user's scoring script and environment run it, as for any model.
    assert put_deployment(client, name="scripted", model="azureml:diabetes:1").status_code == 201


@pytest.mark.parametrize(
    "model, properties, target",
    [
        ("azureml:sklearn:1", NO_CODE, "properties.environmentId"),
        (None, NO_CODE, "properties.environmentId"),
        ("azureml:sklearn:1", {"codeConfiguration": None}, "properties.codeConfiguration"),
        (
            "azureml:sklearn:1",
            {"codeConfiguration": {"scoringScript": "score.py"}},
            "properties.codeConfiguration.codeId",
        ),
        ("azureml:diabetes:1", {"environmentId": None}, "properties.environmentId"),
        ("azureml:diabetes:1", {"codeConfiguration": None}, "properties.codeConfiguration"),
    ],
)
def test_without_code_or_environment_only_an_mlflow_model_is_accepted(
    client, endpoint, model_version, mlflow_model, model, properties, target
):
    response = put_deployment(client, model=model, **properties)
    error = assert_arm_error(response, 400, "ValidationError", target)
    assert "MLflow model" in error["message"], error
    assert not OnlineDeployment.objects.exists()


def test_references_resolve_by_arm_id_and_short_form(client, endpoint, model_version):
    arm_id = model_version["id"]
    assert put_deployment(client, name="byid", model=arm_id).status_code == 201
    assert put_deployment(client, name="byname", model="azureml:sklearn:1").status_code == 201
    assert put_deployment(client, name="latest", model="azureml:sklearn@latest").status_code == 201


@pytest.mark.parametrize("capacity", [0, 51])
def test_instance_count_is_bounded(client, endpoint, capacity):
    assert_arm_error(
        put_deployment(client, capacity=capacity), 400, "ValidationError", "sku.capacity"
    )


@pytest.mark.parametrize("name", ["b", "9blue", "blue_green"])
def test_deployment_names_follow_azure_rules(client, endpoint, name):
    response = put_deployment(client, name=name)
    assert_arm_error(response, 400, "ValidationError", "deploymentName")


def test_an_endpoint_holds_at_most_the_configured_deployments(client, endpoint):
    with override_settings(WEIR_MAX_DEPLOYMENTS_PER_ENDPOINT=2):
        assert put_deployment(client, name="one").status_code == 201
        assert put_deployment(client, name="two").status_code == 201
        assert_arm_error(put_deployment(client, name="three"), 400, "ValidationError", "name")


def test_deployment_on_a_missing_endpoint_is_404(client, workspace):
    assert_arm_error(put_deployment(client, endpoint="nope"), 404, "ResourceNotFound")


def test_changing_only_capacity_scales(client, blue):
    response = put_deployment(client, model="azureml:sklearn:1", capacity=3)
    assert response.json()["properties"]["provisioningState"] == "Scaling"
    run_operations()
    assert OnlineDeployment.objects.get().instance_count == 3


def test_patch_sku_capacity_scales_asynchronously(client, blue):
    response = client.patch(url(DEP), {"sku": {"capacity": 4}}, format="json")
    assert response.status_code == 202
    assert response["Location"] and response["Azure-AsyncOperation"]
    assert client.get(url(DEP)).json()["properties"]["provisioningState"] == "Scaling"
    location = response["Location"].removeprefix("http://testserver")
    assert client.get(location).status_code == 202
    run_operations()
    final = client.get(location)
    assert final.status_code == 200
    assert final.json()["sku"]["capacity"] == 4
    assert final.json()["properties"]["provisioningState"] == "Succeeded"


def test_patch_tags_only_answers_at_once(client, blue):
    response = client.patch(url(DEP), {"tags": {"v": "2"}}, format="json")
    assert response.status_code == 200
    assert response.json()["tags"] == {"v": "2"}
    assert response.json()["sku"]["capacity"] == 2


def test_a_deployment_with_traffic_cannot_be_deleted(client, blue):
    assert put_endpoint(client, traffic={"blue": 100}).status_code == 200
    run_operations()
    error = assert_arm_error(client.delete(url(DEP)), 400, "BadArgument", "properties.traffic")
    assert "100%" in error["message"]
    assert OnlineDeployment.objects.get().provisioning_state == "Succeeded"


def test_delete_is_asynchronous(client, blue):
    response = client.delete(url(DEP))
    assert response.status_code == 202
    assert client.get(url(DEP)).json()["properties"]["provisioningState"] == "Deleting"
    run_operations()
    assert client.get(url(DEP)).status_code == 404
    assert client.delete(url(DEP)).status_code == 204


def test_list_pages_with_top_and_skip(client, endpoint):
    for name in ("aaa", "bbb", "ccc"):
        put_deployment(client, name=name)
    page = client.get(url("/onlineEndpoints/ep1/deployments", "$top=2")).json()
    assert [d["name"] for d in page["value"]] == ["aaa", "bbb"]
    rest = client.get(page["nextLink"].removeprefix("http://testserver")).json()
    assert [d["name"] for d in rest["value"]] == ["ccc"] and rest["nextLink"] is None


def test_get_logs_returns_the_provisioning_log_tail(client, blue):
    body = {"containerType": "StorageInitializer", "tail": 2}
    content = client.post(url(f"{DEP}/getLogs"), body, format="json").json()["content"]
    lines = content.splitlines()
    assert len(lines) == 2
    assert lines[-1].endswith("Succeeded")
    full = client.post(
        url(f"{DEP}/getLogs"), {"containerType": "StorageInitializer"}, format="json"
    )
    assert "model: azureml:sklearn:1" in full.json()["content"]


def test_get_logs_validates_the_container_type(client, blue):
    response = client.post(url(f"{DEP}/getLogs"), {"containerType": "Sidecar"}, format="json")
    assert_arm_error(response, 400, "ValidationError", "containerType")


def test_skus_list_the_instance_range(client, blue):
    skus = client.get(url(f"{DEP}/skus")).json()["value"]
    assert skus[0]["capacity"]["minimum"] == 1 and skus[0]["capacity"]["maximum"] == 50


def test_a_failing_step_ends_the_deployment_failed_with_an_arm_error(client, endpoint, tmp_path):
    not_a_directory = tmp_path / "logs"
    not_a_directory.write_text("")
    response = put_deployment(client)
    with override_settings(WEIR_LOG_DIR=not_a_directory):
        run_operations()
    got = client.get(url(DEP)).json()
    assert got["properties"]["provisioningState"] == "Failed"
    status = client.get(response["Azure-AsyncOperation"].removeprefix("http://testserver")).json()
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "InternalError"
    assert "NotADirectoryError" in status["error"]["message"]
    # A failed deployment can be put again, and then succeeds.
    assert put_deployment(client).json()["properties"]["provisioningState"] == "Updating"
    run_operations()
    assert client.get(url(DEP)).json()["properties"]["provisioningState"] == "Succeeded"


def test_a_deployment_deleted_by_another_request_meanwhile_is_gone_not_an_error(blue):
    """Two DELETEs (or a PATCH and a DELETE) of one deployment at once: the one that locks the
    row second finds it gone, which is a 404 for a write and a 204 for a DELETE, not a 500."""
    from controlplane.arm.errors import Gone
    from controlplane.core.services import deployment as service

    read_by_the_second_request = OnlineDeployment.objects.get(name="blue")
    OnlineDeployment.objects.filter(pk=read_by_the_second_request.pk).delete()
    with pytest.raises(Gone) as gone:
        service.delete(read_by_the_second_request, "alice", lambda etag: None)
    assert gone.value.status_code == 404
