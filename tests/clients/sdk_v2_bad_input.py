"""Bad input through azure-ai-ml, as a user makes the mistakes: each case prints one JSON
line, ``{"case", "raised", "message"}``, with the exception the SDK raised and its message.

Runs in the client's own virtualenv; configuration as weir_sdk.py reads it (WEIR_ENDPOINT
names an endpoint with one deployment, WEIR_DEPLOYMENT).
"""

from __future__ import annotations

import json
import os

from azure.ai.ml.entities import ManagedOnlineEndpoint
from weir_sdk import ml_client


def main() -> None:
    ml = ml_client()
    endpoint_name, deployment_name = os.environ["WEIR_ENDPOINT"], os.environ["WEIR_DEPLOYMENT"]

    def name_with_spaces():
        endpoint = ManagedOnlineEndpoint(name="my endpoint", auth_mode="key")
        ml.online_endpoints.begin_create_or_update(endpoint).result()

    def traffic_summing_to_90():
        endpoint = ml.online_endpoints.get(endpoint_name)
        endpoint.traffic = {deployment_name: 90}
        ml.online_endpoints.begin_create_or_update(endpoint).result()

    def unknown_model():
        deployment = ml.online_deployments.get(deployment_name, endpoint_name)
        deployment.model = "azureml:no-such-model:1"
        ml.online_deployments.begin_create_or_update(deployment).result()

    def unknown_deployment_in_traffic():
        endpoint = ml.online_endpoints.get(endpoint_name)
        endpoint.traffic = {"no-such-deployment": 100}
        ml.online_endpoints.begin_create_or_update(endpoint).result()

    def deployment_on_a_missing_endpoint():
        deployment = ml.online_deployments.get(deployment_name, endpoint_name)
        deployment.endpoint_name = "no-such-endpoint"
        ml.online_deployments.begin_create_or_update(deployment).result()

    for case in (
        name_with_spaces,
        traffic_summing_to_90,
        unknown_model,
        unknown_deployment_in_traffic,
        deployment_on_a_missing_endpoint,
    ):
        try:
            case()
        except Exception as error:  # noqa: BLE001 - the exception is what this reports
            raised, message = type(error).__name__, str(error)
        else:
            raised, message = None, ""
        print(json.dumps({"case": case.__name__, "raised": raised, "message": message}))


if __name__ == "__main__":
    main()
