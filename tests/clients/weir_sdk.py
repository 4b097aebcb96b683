"""The MLClient every azure-ai-ml script here uses, built as the README tells users to:
Weir is the cloud ARM_CLOUD_METADATA_URL names (from the environment), and the credential
returns a Weir API token. Imports nothing of Weir: it runs in the client's own virtualenv.

Configuration (environment): ARM_CLOUD_METADATA_URL, REQUESTS_CA_BUNDLE, WEIR_TOKEN,
WEIR_SUBSCRIPTION, WEIR_GROUP, WEIR_WORKSPACE.
"""

from __future__ import annotations

import os
import time

from azure.ai.ml import MLClient
from azure.core.credentials import AccessToken
from walk import step


class WeirCredential:
    """A TokenCredential whose token is a Weir API token (as a user would write one)."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def ml_client() -> MLClient:
    return MLClient(
        WeirCredential(os.environ["WEIR_TOKEN"]),
        subscription_id=os.environ["WEIR_SUBSCRIPTION"],
        resource_group_name=os.environ["WEIR_GROUP"],
        workspace_name=os.environ["WEIR_WORKSPACE"],
        show_progress=False,
        enable_telemetry=False,
    )


def walk(run_steps) -> None:
    """A walk: the MLClient (its own step, which says which cloud the SDK took), then
    ``run_steps(ml)``."""
    clients = []

    def connect():
        clients.append(ml_client())
        return {"base_url": clients[0]._base_url, "cloud": clients[0]._cloud}

    step("ml_client", connect)
    run_steps(clients[0])
