"""Azure's no-code deployment for real: an MLflow model, saved by the test, deployed with no
scoring script and no environment; its environment built from the model's own files, the
server's MLflow script scoring it behind the router."""

import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.mlflow_models import ROWS, features, local_predictions, split_request
from tests.system.test_provisioning import (
    get_logs,
    new_endpoint,
    one_replica,
    put_and_wait,
    register,
    upload_dir,
)

pytestmark = pytest.mark.system


def set_traffic(stack, endpoint: str, traffic: dict) -> None:
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": traffic}}
    response = stack.call("PUT", endpoint, body)
    assert response.status_code == 200, response.text
    assert stack.wait_for_status(response.headers["Azure-AsyncOperation"])["status"] == "Succeeded"


def test_an_mlflow_model_deploys_with_no_scoring_script_or_environment(
    stack, workspace, mlflow_model
):
    model_uri = upload_dir(stack, workspace, mlflow_model, "models")
    model = {"properties": {"modelUri": model_uri, "modelType": "mlflow_model"}}
    register(stack, workspace, "models", "diabetes-mlflow", "1", model)
    endpoint = new_endpoint(stack, workspace, "nocode")
    deployment_path = f"{endpoint}/deployments/blue"

    started = time.monotonic()
    body = one_replica({"model": "azureml:diabetes-mlflow:1"})
    status = put_and_wait(stack, deployment_path, body, timeout=900)
    print(f"MLflow no-code deployment: Succeeded in {time.monotonic() - started:.1f}s")
    assert status["status"] == "Succeeded", status
    properties = stack.call("GET", deployment_path).json()["properties"]
    assert properties["codeConfiguration"] is None and properties["environmentId"] is None
    log = get_logs(stack, deployment_path, "StorageInitializer")
    assert "environment from the MLflow model's MLmodel, conda.yaml" in log, log

    set_traffic(stack, endpoint, {"blue": 100})
    scoring_uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    headers = {"Host": urlsplit(scoring_uri).netloc, "Authorization": f"Bearer {key}"}

    def score(document) -> requests.Response:
        return requests.post(
            f"{stack.router_url}/score", json=document, headers=headers, timeout=30
        )

    expected = local_predictions(mlflow_model)
    answer = score(split_request())
    assert answer.status_code == 200, answer.text
    assert answer.json() == pytest.approx(expected)
    assert answer.headers["azureml-model-deployment"] == "blue"
    records = features()[:ROWS].to_dict(orient="records")
    for document in ({"dataframe_records": records}, {"input_data": records}):
        assert score(document).json() == pytest.approx(expected)

    # The replica's 400 reaches the client as Azure's model error: 424 with the status.
    for document, says in (
        ({"input_data": {"columns": ["age"], "data": [[0.1]]}}, "cannot score this input"),
        ({"rows": [[0.1]]}, "no model input"),
    ):
        refused = score(document)
        assert refused.status_code == 424, refused.text
        assert refused.headers["ms-azureml-model-error-statuscode"] == "400"
        assert says in refused.json()["message"]

    swagger = requests.get(f"{stack.router_url}/swagger.json", headers=headers, timeout=30).json()
    service_input = swagger["definitions"]["ServiceInput"]
    columns = service_input["properties"]["input_data"]["properties"]["columns"]
    assert columns["items"]["enum"] == list(features().columns)
    assert score(service_input["example"]).status_code == 200


def test_a_custom_model_without_code_or_environment_is_refused(stack, workspace, mlflow_model):
    model_uri = upload_dir(stack, workspace, mlflow_model, "models")
    register(stack, workspace, "models", "plain", "1", {"properties": {"modelUri": model_uri}})
    endpoint = new_endpoint(stack, workspace, "custom")
    response = stack.call(
        "PUT", f"{endpoint}/deployments/blue", one_replica({"model": "azureml:plain:1"})
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert error["target"] == "properties.environmentId"
    assert "mlflow_model" in error["message"]
