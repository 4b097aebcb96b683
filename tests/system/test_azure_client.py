"""Azure's own AutoRest-generated ARM client (shipped inside azure-ai-ml) against Weir."""

import subprocess
import sys
import time
import uuid

import jwt
import pytest
from azure.ai.ml._restclient.arm_ml_service import MachineLearningServicesMgmtClient
from azure.ai.ml._restclient.arm_ml_service import models as m
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.system.conftest import ROOT

pytestmark = pytest.mark.system


class WeirTokenCredential:
    """A TokenCredential whose token is a Weir API token."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def arm(stack, workspace, monkeypatch):
    # What the README tells users to do to trust the self-signed certificate.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", stack.ca_bundle)
    return MachineLearningServicesMgmtClient(
        WeirTokenCredential(stack.token),
        stack.subscription,
        base_url=stack.base_url,
        api_version="2024-04-01",
        polling_interval=0.2,
    )


def test_the_generated_client_walks_an_endpoint_lifecycle(stack, workspace, arm):
    rg, ws = "rg1", stack.workspace_name
    model_uri = stack.upload(workspace, {"model.pkl": b"weights"}, "models")
    runtime = stack.register_runtime(workspace)
    arm.model_versions.create_or_update(
        rg, ws, "sk", "1", m.ModelVersion(properties=m.ModelVersionProperties(model_uri=model_uri))
    )

    endpoint = arm.online_endpoints.begin_create_or_update(
        rg,
        ws,
        "client-ep",
        m.OnlineEndpoint(location="local", properties=m.OnlineEndpointProperties(auth_mode="Key")),
    ).result()
    assert endpoint.properties.provisioning_state == "Succeeded"

    deployment = arm.online_deployments.begin_create_or_update(
        rg,
        ws,
        "client-ep",
        "blue",
        m.OnlineDeployment(
            location="local",
            sku=m.Sku(name="Default", capacity=2),
            properties=m.ManagedOnlineDeployment(
                model="azureml:sk:1",
                environment_id=runtime["environmentId"],
                code_configuration=m.CodeConfiguration(
                    code_id=runtime["codeConfiguration"]["codeId"], scoring_script="score.py"
                ),
                request_settings=m.OnlineRequestSettings(max_concurrent_requests_per_instance=2),
            ),
        ),
    ).result()
    assert deployment.properties.provisioning_state == "Succeeded"
    assert deployment.sku.capacity == 2

    got = arm.online_deployments.get(rg, ws, "client-ep", "blue")
    assert got.properties.endpoint_compute_type == "Managed"
    assert got.properties.request_settings.max_concurrent_requests_per_instance == 2
    assert arm.online_endpoints.get(rg, ws, "client-ep").properties.auth_mode == "Key"

    endpoint.properties.traffic = {"blue": 100}
    updated = arm.online_endpoints.begin_create_or_update(rg, ws, "client-ep", endpoint).result()
    assert updated.properties.traffic == {"blue": 100}

    scaled = arm.online_deployments.begin_update(
        rg,
        ws,
        "client-ep",
        "blue",
        m.PartialMinimalTrackedResourceWithSku(sku=m.PartialSku(capacity=3)),
    ).result()
    assert scaled.sku.capacity == 3

    assert [e.name for e in arm.online_endpoints.list(rg, ws)] == ["client-ep"]
    assert [d.name for d in arm.online_deployments.list(rg, ws, "client-ep")] == ["blue"]

    keys = arm.online_endpoints.list_keys(rg, ws, "client-ep")
    arm.online_endpoints.begin_regenerate_keys(
        rg, ws, "client-ep", m.RegenerateEndpointKeysRequest(key_type="Secondary")
    ).result()
    after = arm.online_endpoints.list_keys(rg, ws, "client-ep")
    assert after.primary_key == keys.primary_key and after.secondary_key != keys.secondary_key

    logs = arm.online_deployments.get_logs(
        rg,
        ws,
        "client-ep",
        "blue",
        m.DeploymentLogsRequest(container_type="StorageInitializer", tail=5),
    )
    assert "Succeeded" in logs.content

    # A deployment with live traffic cannot be deleted; traffic must move first.
    with pytest.raises(HttpResponseError) as refused:
        arm.online_deployments.begin_delete(rg, ws, "client-ep", "blue").result()
    assert refused.value.status_code == 400
    endpoint.properties.traffic = {"blue": 0}
    arm.online_endpoints.begin_create_or_update(rg, ws, "client-ep", endpoint).result()
    arm.online_deployments.begin_delete(rg, ws, "client-ep", "blue").result()
    with pytest.raises(ResourceNotFoundError):
        arm.online_deployments.get(rg, ws, "client-ep", "blue")

    arm.online_endpoints.begin_delete(rg, ws, "client-ep").result()
    with pytest.raises(ResourceNotFoundError):
        arm.online_endpoints.get(rg, ws, "client-ep")


def test_the_generated_client_gets_a_token_for_an_aml_token_endpoint(stack, arm):
    arm.online_endpoints.begin_create_or_update(
        "rg1",
        stack.workspace_name,
        "token-ep",
        m.OnlineEndpoint(
            location="local", properties=m.OnlineEndpointProperties(auth_mode="AMLToken")
        ),
    ).result()
    token = arm.online_endpoints.get_token("rg1", stack.workspace_name, "token-ep")
    assert token.access_token and token.token_type == "Bearer"
    assert token.expiry_time_utc > time.time()
    arm.online_endpoints.begin_delete("rg1", stack.workspace_name, "token-ep").result()


def test_roles_decide_what_the_generated_client_may_do(stack, workspace, arm):
    """A second principal, given Reader and then AzureML Data Scientist on the workspace by
    the first (the install's Owner), through the same generated client."""
    rg, ws = "rg1", stack.workspace_name
    bob_token = subprocess.run(
        [sys.executable, "manage.py", "create_api_token", f"bob-{ws}", "--days", "1"],
        cwd=ROOT,
        env=stack.env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    bob_id = jwt.decode(bob_token, options={"verify_signature": False})["oid"]
    bob = MachineLearningServicesMgmtClient(
        WeirTokenCredential(bob_token),
        stack.subscription,
        base_url=stack.base_url,
        api_version="2024-04-01",
        polling_interval=0.2,
    )
    endpoint = m.OnlineEndpoint(
        location="local", properties=m.OnlineEndpointProperties(auth_mode="Key")
    )
    arm.online_endpoints.begin_create_or_update(rg, ws, "rbac-ep", endpoint).result()

    def refused(action):
        with pytest.raises(HttpResponseError) as raised:
            action()
        assert raised.value.status_code == 403
        assert raised.value.error.code == "AuthorizationFailed"
        assert f"bob-{ws}" in raised.value.error.message
        return raised.value.error.message

    # Nothing yet: not even a read.
    refused(lambda: list(bob.online_endpoints.list(rg, ws)))

    def assign(role: str):
        name = uuid.uuid4()
        body = {
            "properties": {
                "roleDefinitionId": f"/subscriptions/{stack.subscription}/providers/"
                f"Microsoft.Authorization/roleDefinitions/{role}",
                "principalId": bob_id,
            }
        }
        response = stack.call(
            "PUT",
            f"{workspace}/providers/Microsoft.Authorization/roleAssignments/{name}"
            "?api-version=2022-04-01",
            body,
        )
        assert response.status_code == 201, response.text

    assign("acdd72a7-3385-48ef-bd42-f606fba81ae7")  # Reader
    assert [e.name for e in bob.online_endpoints.list(rg, ws)] == ["rbac-ep"]
    message = refused(
        lambda: bob.online_endpoints.begin_create_or_update(rg, ws, "bob-ep", endpoint).result()
    )
    assert "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write" in message
    refused(lambda: bob.online_endpoints.list_keys(rg, ws, "rbac-ep"))

    assign("f6c7c914-8db3-469d-8ca1-694a8f32e121")  # AzureML Data Scientist
    assert bob.online_endpoints.list_keys(rg, ws, "rbac-ep").primary_key
    refused(lambda: bob.workspaces.begin_delete(rg, ws).result())
    arm.online_endpoints.begin_delete(rg, ws, "rbac-ep").result()
