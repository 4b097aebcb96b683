"""Workspace (Microsoft.MachineLearningServices/workspaces)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.arm.envelope import (
    ProvisioningStateMixin,
    SkuSerializer,
    TrackedResourceSerializer,
    tag_map,
)
from controlplane.arm.fields import BooleanField
from controlplane.arm.responses import api_url


def _setting(**kwargs):
    return serializers.CharField(required=False, allow_null=True, allow_blank=True, **kwargs)


class WorkspacePropertiesSerializer(ProvisioningStateMixin):
    friendlyName = serializers.CharField(
        source="friendly_name", required=False, allow_null=True, allow_blank=True, max_length=255
    )
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    workspaceId = serializers.UUIDField(source="workspace_id", read_only=True)
    tenantId = serializers.SerializerMethodField()
    mlFlowTrackingUri = serializers.SerializerMethodField()
    storageAccount = _setting(source="settings.storageAccount")
    keyVault = _setting(source="settings.keyVault")
    applicationInsights = _setting(source="settings.applicationInsights")
    containerRegistry = _setting(source="settings.containerRegistry")
    discoveryUrl = _setting(source="settings.discoveryUrl")
    imageBuildCompute = _setting(source="settings.imageBuildCompute")
    primaryUserAssignedIdentity = _setting(source="settings.primaryUserAssignedIdentity")
    publicNetworkAccess = serializers.ChoiceField(
        source="settings.publicNetworkAccess",
        choices=["Enabled", "Disabled"],
        required=False,
        allow_null=True,
    )
    hbiWorkspace = BooleanField(source="settings.hbiWorkspace", required=False)
    v1LegacyMode = BooleanField(source="settings.v1LegacyMode", required=False)

    @extend_schema_field(serializers.CharField())
    def get_tenantId(self, obj) -> str:
        return settings.WEIR_TENANT_ID

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_mlFlowTrackingUri(self, obj) -> str | None:
        return None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not data.get("discoveryUrl"):
            data["discoveryUrl"] = discovery_url(self.context.get("request"), instance)
        return data


def discovery_url(request, workspace) -> str:
    """The workspace's discovery document (where Azure's SDKs find its data-plane APIs)."""
    return api_url(request, f"/discovery/workspaces/{workspace.workspace_id}")


class WorkspaceSerializer(TrackedResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces"

    sku = SkuSerializer(required=False, allow_null=True)
    properties = WorkspacePropertiesSerializer(source="*", required=False)


class WorkspaceUpdateSerializer(serializers.Serializer):
    """PATCH body (WorkspaceUpdateParameters): tags replace, properties merge."""

    tags = tag_map(required=False, allow_null=True)
    sku = SkuSerializer(required=False, allow_null=True)
    properties = WorkspacePropertiesSerializer(source="*", required=False, partial=True)
