"""``weir ml-client``: Python that connects Azure's ML SDK v2 (azure-ai-ml's ``MLClient``) to
the Weir this CLI is configured for, ready to paste.

Weir is named by its cloud-metadata URL (``ARM_CLOUD_METADATA_URL``, which the SDK reads),
and the credential returns a Weir API token read when the SDK asks for it, from WEIR_TOKEN
or this CLI's configuration file: the snippet itself holds no secret.
"""

from __future__ import annotations

import json

from cli import config

METADATA_PATH = "/metadata/endpoints?api-version=2019-05-01"

SNIPPET = '''\
import configparser
import os
import time

from azure.ai.ml import MLClient
from azure.core.credentials import AccessToken

# Weir as the SDK's cloud: its resource manager, token audience and blob storage suffix.
os.environ["ARM_CLOUD_METADATA_URL"] = {metadata_url}
{ca_bundle_line}

class WeirCredential:
    """A Weir API token: WEIR_TOKEN, or the token `weir configure` stored."""

    def get_token(self, *scopes, **kwargs):
        token = os.environ.get("WEIR_TOKEN")
        if not token:
            stored = configparser.ConfigParser()
            stored.read({config_path})
            token = stored.get("server", "token")
        return AccessToken(token, int(time.time()) + 3600)


ml_client = MLClient(
    WeirCredential(),
    subscription_id={subscription},
    resource_group_name={group},
    workspace_name={workspace},
)
'''


def ml_client_snippet(cfg: config.Config, group: str | None, workspace: str | None) -> str:
    if not cfg.url:
        raise ValueError("no server is configured: run `weir configure --url ...` first")
    ca_bundle_line = (
        f"# Weir's certificate (self-signed), for the SDK's HTTPS calls.\n"
        f'os.environ["REQUESTS_CA_BUNDLE"] = {json.dumps(cfg.ca_bundle)}\n'
        if cfg.ca_bundle
        else ""
    )
    return SNIPPET.format(
        metadata_url=literal(cfg.url.rstrip("/") + METADATA_PATH),
        ca_bundle_line=ca_bundle_line,
        config_path=literal(str(config.path())),
        subscription=literal(cfg.subscription),
        group=literal(group or cfg.group),
        workspace=literal(workspace or cfg.workspace),
    )


def literal(value: str | None) -> str:
    """A Python literal: a JSON string is one, and null is spelled None."""
    return json.dumps(value) if value else "None"
