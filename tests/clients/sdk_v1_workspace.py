"""Azure's SDK v1 (azureml-core) pointed at Weir, as a team moving its v1 scripts writes it:
an authentication class whose cloud is Weir and whose token is a Weir API token, then
``Workspace(...)``. Prints one JSON line with what the SDK read: the workspace, the claims it
took from the token, and the service URLs it found through the workspace's discovery
document.

Runs in the client's own virtualenv (tests/clients/azureml-core.txt), nothing of Weir
imported. Configuration (environment): WEIR_URL, WEIR_TOKEN, WEIR_SUBSCRIPTION, WEIR_GROUP,
WEIR_WORKSPACE, REQUESTS_CA_BUNDLE (Weir's certificate), HOME (the SDK caches discovery
results in ~/.azureml).
"""

from __future__ import annotations

import json
import os

from azureml._vendor.azure_cli_core.cloud import Cloud, CloudEndpoints, CloudSuffixes
from azureml.core import Workspace
from azureml.core.authentication import AbstractAuthentication, _SubscriptionInfo

URL = os.environ["WEIR_URL"]
TOKEN = os.environ["WEIR_TOKEN"]
SUBSCRIPTION = os.environ["WEIR_SUBSCRIPTION"]


class WeirAuthentication(AbstractAuthentication):
    """Weir as the cloud, its API token as every token the SDK asks for."""

    def __init__(self):
        # Not super().__init__(): it would fetch Azure's public cloud metadata.
        self._cloud_type = Cloud(
            "Weir",
            endpoints=CloudEndpoints(
                management=URL + "/",
                resource_manager=URL + "/",
                active_directory="https://login.invalid",
                active_directory_resource_id=URL + "/",
                portal="https://portal.invalid/",
            ),
            suffixes=CloudSuffixes(storage_endpoint="core.windows.net"),
        )

    def _get_arm_token(self):
        return TOKEN

    def _get_graph_token(self):
        return TOKEN

    def _get_azureml_client_token(self):
        return TOKEN

    def _get_all_subscription_ids(self):
        return [_SubscriptionInfo("weir", SUBSCRIPTION)], "weir-tenant"

    def _get_workspace(self, subscription_id, resource_group, name):
        return None


def main() -> None:
    auth = WeirAuthentication()
    ws = Workspace(SUBSCRIPTION, os.environ["WEIR_GROUP"], os.environ["WEIR_WORKSPACE"], auth=auth)
    details = ws.get_details()
    context = ws.service_context
    print(
        json.dumps(
            {
                "name": ws.name,
                "resource_group": ws.resource_group,
                "subscription_id": ws.subscription_id,
                "location": ws.location,
                "id": details["id"],
                # What the SDK reads from the bearer token (it must be a JWT): its expiry.
                "token_expires_on": auth.get_token().expires_on,
                "discovery": context._get_discovery_url(),
                "history": context._get_run_history_url(),
                "modelmanagement": context._get_modelmanagement_url(),
                "api": context._get_api_url(),
            }
        )
    )


if __name__ == "__main__":
    main()
