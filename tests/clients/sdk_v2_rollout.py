"""Azure's safe rollout for online endpoints, written with Azure's ML SDK v2 (azure-ai-ml,
``MLClient``) as an Azure user writes it, pointed at Weir as at any other Azure cloud.

Runs in the client's own virtualenv (tests/clients/azure-ai-ml.txt), nothing of Weir
imported. Prints one JSON line per step, ``{"step", "ok", "detail"}``, and stops at the
first failure with the exception and its traceback in ``detail``.

Configuration (environment): ARM_CLOUD_METADATA_URL, WEIR_TOKEN, WEIR_SUBSCRIPTION,
WEIR_GROUP, WEIR_WORKSPACE, WEIR_EXAMPLES (examples/online), WEIR_EXPECTED (a JSON file:
model folder name -> the predictions for model-1/sample-request.json, and "mlflow" -> those
for WEIR_MLFLOW_REQUEST), WEIR_MLFLOW_MODEL (a folder saved by MLflow), WEIR_MLFLOW_REQUEST
(a request in Azure's MLflow shape, input_data in split orient), and REQUESTS_CA_BUNDLE
(Weir's certificate) as the README says.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from azure.ai.ml import MLClient
from azure.ai.ml.entities import (
    CodeConfiguration,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
)
from azure.core.exceptions import ResourceNotFoundError
from weir_sdk import step, walk

EXAMPLES = Path(os.environ["WEIR_EXAMPLES"])
REQUEST = EXAMPLES / "model-1" / "sample-request.json"
EXPECTED = json.loads(Path(os.environ["WEIR_EXPECTED"]).read_text())
MLFLOW_MODEL = Path(os.environ["WEIR_MLFLOW_MODEL"])
MLFLOW_REQUEST = Path(os.environ["WEIR_MLFLOW_REQUEST"])
ENDPOINT = "sdk-endpoint"
IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"


def same_predictions(answer: str, model: str) -> list:
    predictions = json.loads(answer)
    expected = EXPECTED[model]
    assert isinstance(predictions, list) and len(predictions) == len(expected), (
        f"expected {model}'s predictions {expected}, got {answer!r}"
    )
    for got, want in zip(predictions, expected, strict=True):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (
            f"expected {model}'s predictions {expected}, got {answer!r}"
        )
    return predictions


def deployment(name: str, model: str) -> ManagedOnlineDeployment:
    """As blue-deployment.yml / green-deployment.yml say, from the local folders."""
    folder = EXAMPLES / model
    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=ENDPOINT,
        model=Model(path=str(folder / "model")),
        code_configuration=CodeConfiguration(
            code=str(folder / "onlinescoring"), scoring_script="score.py"
        ),
        environment=Environment(conda_file=str(folder / "environment" / "conda.yaml"), image=IMAGE),
        instance_type="Standard_DS3_v2",
        instance_count=1,
    )


def run_steps(ml: MLClient) -> None:  # noqa: C901 - one walk, step after step
    def workspace_get():
        ws = ml.workspaces.get(os.environ["WEIR_WORKSPACE"])
        assert ws.name == os.environ["WEIR_WORKSPACE"], ws.name
        return {"name": ws.name, "location": ws.location}

    step("workspace_get", workspace_get)

    def endpoint_create():
        endpoint = ManagedOnlineEndpoint(name=ENDPOINT, auth_mode="key")
        created = ml.online_endpoints.begin_create_or_update(endpoint).result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        assert created.auth_mode == "key", created.auth_mode
        return {"scoring_uri": created.scoring_uri}

    step("endpoint_create", endpoint_create)

    def blue_create():
        created = ml.online_deployments.begin_create_or_update(deployment("blue", "model-1"))
        created = created.result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        return {"model": created.model, "environment": created.environment}

    step("blue_create", blue_create)

    def traffic(split: dict, mirror: dict | None = None):
        def update():
            endpoint = ml.online_endpoints.get(ENDPOINT)
            endpoint.traffic = split
            if mirror is not None:
                endpoint.mirror_traffic = mirror
            ml.online_endpoints.begin_create_or_update(endpoint).result()
            got = ml.online_endpoints.get(ENDPOINT)
            assert {k: v for k, v in got.traffic.items() if v} == {
                k: v for k, v in split.items() if v
            }, got.traffic
            if mirror is not None:
                assert {k: v for k, v in (got.mirror_traffic or {}).items() if v} == {
                    k: v for k, v in mirror.items() if v
                }, got.mirror_traffic
            return {"traffic": got.traffic, "mirror_traffic": got.mirror_traffic}

        return update

    step("traffic_blue_100", traffic({"blue": 100}))

    def invoke(model: str, deployment_name: str | None = None):
        def call():
            answer = ml.online_endpoints.invoke(
                endpoint_name=ENDPOINT, request_file=str(REQUEST), deployment_name=deployment_name
            )
            return {"predictions": same_predictions(answer, model)}

        return call

    step("invoke_endpoint", invoke("model-1"))

    def green_create():
        created = ml.online_deployments.begin_create_or_update(deployment("green", "model-2"))
        created = created.result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        assert ml.online_endpoints.get(ENDPOINT).traffic.get("green", 0) == 0
        return {"model": created.model}

    step("green_create", green_create)
    step("mirror_green_10", traffic({"blue": 100}, {"green": 10}))

    def green_log() -> str:
        return ml.online_deployments.get_logs(name="green", endpoint_name=ENDPOINT, lines=1000)

    def mirrored_requests():
        """Answered by blue; about one in ten copied to green, which logs it (green has
        not been invoked itself yet)."""
        seen = green_log().count("model 2: request received")
        for invocations in range(10, 310, 10):
            for _ in range(10):
                invoke("model-1")()
            now = green_log().count("model 2: request received")
            if now > seen:
                return {"invocations": invocations, "mirrored": now - seen}
        raise AssertionError(f"{invocations} invocations, none mirrored to green: {now} == {seen}")

    step("invoke_while_mirroring", mirrored_requests)

    def get_logs():
        logs = green_log()
        assert "model 2: request received" in logs, logs[-2000:]
        return {"lines": len(logs.splitlines())}

    step("get_logs_green", get_logs)
    step("traffic_90_10", traffic({"blue": 90, "green": 10}, {}))

    def invoke_split():
        answers = [invoke_any() for _ in range(20)]
        return {"model-1": answers.count("model-1"), "model-2": answers.count("model-2")}

    def invoke_any() -> str:
        answer = ml.online_endpoints.invoke(endpoint_name=ENDPOINT, request_file=str(REQUEST))
        for model in ("model-1", "model-2"):
            try:
                same_predictions(answer, model)
                return model
            except AssertionError:
                pass
        raise AssertionError(f"neither model's predictions: {answer!r}")

    step("invoke_split", invoke_split)

    keys = {}

    def get_keys():
        got = ml.online_endpoints.get_keys(ENDPOINT)
        assert got.primary_key and got.secondary_key and got.primary_key != got.secondary_key
        keys.update(primary=got.primary_key, secondary=got.secondary_key)
        return {"primary_key_length": len(got.primary_key)}

    step("get_keys", get_keys)

    def regenerate_keys():
        ml.online_endpoints.begin_regenerate_keys(name=ENDPOINT, key_type="primary").result()
        got = ml.online_endpoints.get_keys(ENDPOINT)
        assert got.primary_key and got.primary_key != keys["primary"], "primary key unchanged"
        assert got.secondary_key == keys["secondary"], "secondary key changed"
        # invoke reads the keys again: the new primary key scores.
        invoke_any()
        return {"primary_key_changed": True}

    step("regenerate_keys", regenerate_keys)

    def scale():
        blue = ml.online_deployments.get(name="blue", endpoint_name=ENDPOINT)
        blue.instance_count = 2
        ml.online_deployments.begin_create_or_update(blue).result()
        got = ml.online_deployments.get(name="blue", endpoint_name=ENDPOINT)
        assert got.instance_count == 2, got.instance_count
        assert got.provisioning_state == "Succeeded", got.provisioning_state
        invoke_any()
        return {"instance_count": got.instance_count}

    step("scale_blue_to_2", scale)
    step("traffic_green_100", traffic({"blue": 0, "green": 100}))
    step("invoke_after_switch", invoke("model-2"))
    # By name last: the SDK keeps a deployment name in its shared default headers
    # (OnlineEndpointOperations.invoke updates EndpointInvokeFields.DEFAULT_HEADER in place),
    # so every later invoke from this process would go to that deployment too.
    step("invoke_blue", invoke("model-1", "blue"))
    step("invoke_green", invoke("model-2", "green"))

    def mlflow_create():
        """Azure's no-code deployment: an MLflow model, no scoring script, no environment."""
        nocode = ManagedOnlineDeployment(
            name="mlflow",
            endpoint_name=ENDPOINT,
            model=Model(type="mlflow_model", path=str(MLFLOW_MODEL)),
            instance_type="Standard_DS3_v2",
            instance_count=1,
        )
        created = ml.online_deployments.begin_create_or_update(nocode).result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        assert created.code_configuration is None, created.code_configuration
        assert created.environment is None, created.environment
        return {"model": created.model}

    step("mlflow_create", mlflow_create)

    def invoke_mlflow():
        answer = ml.online_endpoints.invoke(
            endpoint_name=ENDPOINT, request_file=str(MLFLOW_REQUEST), deployment_name="mlflow"
        )
        return {"predictions": same_predictions(answer, "mlflow")}

    step("invoke_mlflow", invoke_mlflow)

    def delete_blue():
        ml.online_deployments.begin_delete(name="blue", endpoint_name=ENDPOINT).result()
        names = sorted(d.name for d in ml.online_deployments.list(endpoint_name=ENDPOINT))
        assert names == ["green", "mlflow"], names
        return {"deployments": names}

    step("delete_blue", delete_blue)

    def delete_endpoint():
        ml.online_endpoints.begin_delete(name=ENDPOINT).result()
        try:
            ml.online_endpoints.get(ENDPOINT)
        except ResourceNotFoundError:
            return {"deleted": True}
        raise AssertionError("the endpoint is still there after its delete finished")

    step("delete_endpoint", delete_endpoint)


if __name__ == "__main__":
    walk(run_steps)
