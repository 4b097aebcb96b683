"""Asset references in deployments and jobs: a full ARM id, an ``azureml://`` URI or
``azureml:name:version``."""

from __future__ import annotations

import re
from dataclasses import dataclass

ASSET_PATH = (
    r"/(?P<kind>models|environments|codes|data)/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?$"
)
ARM_ASSET = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)" + ASSET_PATH,
    re.IGNORECASE,
)
AZUREML_URI = re.compile(
    r"^azureml://(?:locations/[^/]+/)?workspaces/(?P<ws>[^/]+)" + ASSET_PATH, re.IGNORECASE
)
SHORT = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>latest))?$")


@dataclass(frozen=True)
class AssetRef:
    kind: str  # "models", "environments", "codes" or "data"
    name: str
    version: str | None  # None means the latest version
    workspace: str | None  # None: the deployment's own workspace
    subscription: str | None = None
    resource_group: str | None = None


def parse(value: str, kind: str) -> AssetRef:
    """Parse a reference to an asset of ``kind``; raise ValueError with a user message."""
    if value.lower().startswith("azureml://registries/"):
        raise ValueError("registry assets (azureml://registries/...) are not served by Weir")
    if match := ARM_ASSET.match(value):
        found = match["kind"].lower()
        if found != kind:
            raise ValueError(f"'{value}' refers to {found}, not {kind}")
        return AssetRef(
            kind, match["name"], match["version"], match["ws"], match["sub"], match["rg"]
        )
    if match := AZUREML_URI.match(value):
        if match["kind"].lower() != kind:
            raise ValueError(f"'{value}' refers to {match['kind'].lower()}, not {kind}")
        return AssetRef(kind, match["name"], match["version"], match["ws"])
    if match := SHORT.match(value):
        return AssetRef(kind, match["name"], match["version"], None)
    raise ValueError(
        f"'{value}' is not an asset reference: use an ARM id or azureml:<name>:<version>"
    )


def resolve(workspace, value: str, kind: str):
    """Find the asset version ``value`` names in ``workspace``; raise ValueError if none."""
    from controlplane.core.services.asset import KINDS

    ref = parse(value, kind)
    if ref.workspace is not None and (
        ref.workspace.lower() != workspace.name.lower()
        or (ref.subscription and ref.subscription.lower() != workspace.subscription_id.lower())
        or (ref.resource_group and ref.resource_group.lower() != workspace.resource_group.lower())
    ):
        raise ValueError(f"'{value}' is in another workspace")
    asset_kind = KINDS[kind]
    label = asset_kind.label.lower()
    container = asset_kind.container_model.objects.filter(
        workspace=workspace, name__lower=ref.name.lower()
    ).first()
    if container is None:
        raise ValueError(f"{label} '{ref.name}' does not exist in this workspace")
    version = ref.version or container.latest_version
    found = container.versions.filter(name__lower=version.lower()).first() if version else None
    if found is None:
        raise ValueError(f"{label} '{ref.name}' has no version '{ref.version or 'latest'}'")
    return found
