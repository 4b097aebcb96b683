"""Asset containers and versions: models, environments, codes, data (ARM proxy resources)."""

from __future__ import annotations

from rest_framework import serializers

from controlplane.arm.envelope import ArmResourceSerializer, string_map, tag_map
from controlplane.arm.fields import BooleanField, IntegerField
from controlplane.core.models.asset import DataType
from controlplane.core.serializers.fields import (
    CaseInsensitiveChoiceField,
    JsonDocumentSerializer,
)

PREFIX = "Microsoft.MachineLearningServices/workspaces"


class AssetBasePropertiesSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    properties = string_map(required=False, allow_null=True)
    tags = tag_map(required=False, allow_null=True)
    isArchived = BooleanField(source="is_archived", default=False)
    provisioningState = serializers.SerializerMethodField()

    def get_provisioningState(self, obj) -> str:
        # Asset writes are synchronous: a stored asset has always succeeded.
        return "Succeeded"


class AssetContainerPropertiesSerializer(AssetBasePropertiesSerializer):
    latestVersion = serializers.CharField(source="latest_version", read_only=True, allow_null=True)
    nextVersion = serializers.CharField(source="next_version", read_only=True)


class AssetVersionPropertiesSerializer(AssetBasePropertiesSerializer):
    isAnonymous = BooleanField(source="is_anonymous", default=False)


class ModelVersionPropertiesSerializer(AssetVersionPropertiesSerializer):
    modelUri = serializers.CharField(
        source="model_uri", required=False, allow_null=True, max_length=2048
    )
    modelType = serializers.CharField(
        source="model_type", required=False, allow_null=True, max_length=64
    )
    flavors = serializers.DictField(required=False, allow_null=True)
    jobName = serializers.CharField(
        source="job_name", required=False, allow_null=True, max_length=255
    )
    stage = serializers.CharField(required=False, allow_null=True, max_length=64)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # Azure answers {} for a model without flavors; its SDK iterates them.
        if data.get("flavors") is None:
            data["flavors"] = {}
        return data


class BuildContextSerializer(JsonDocumentSerializer):
    contextUri = serializers.CharField(min_length=1)
    dockerfilePath = serializers.CharField(default="Dockerfile")


class RouteSerializer(JsonDocumentSerializer):
    path = serializers.CharField(min_length=1)
    port = IntegerField(min_value=1, max_value=65535)


class InferenceContainerPropertiesSerializer(JsonDocumentSerializer):
    livenessRoute = RouteSerializer(required=False, allow_null=True)
    readinessRoute = RouteSerializer(required=False, allow_null=True)
    scoringRoute = RouteSerializer(required=False, allow_null=True)


class EnvironmentVersionPropertiesSerializer(AssetVersionPropertiesSerializer):
    image = serializers.CharField(required=False, allow_null=True, max_length=1024)
    condaFile = serializers.CharField(source="conda_file", required=False, allow_null=True)
    build = BuildContextSerializer(required=False, allow_null=True)
    inferenceConfig = InferenceContainerPropertiesSerializer(
        source="inference_config", required=False, allow_null=True
    )
    osType = serializers.ChoiceField(
        source="os_type", choices=["Linux", "Windows"], default="Linux"
    )
    autoRebuild = serializers.ChoiceField(
        source="auto_rebuild", choices=["Disabled", "OnBaseImageUpdate"], default="Disabled"
    )
    environmentType = serializers.SerializerMethodField()
    stage = serializers.CharField(required=False, allow_null=True, max_length=64)

    def get_environmentType(self, obj) -> str:
        return "UserCreated"

    def validate(self, attrs):
        if not attrs.get("image") and not attrs.get("build"):
            raise serializers.ValidationError(
                {"image": ["an environment needs an image or a build context"]}
            )
        return attrs


class CodeVersionPropertiesSerializer(AssetVersionPropertiesSerializer):
    codeUri = serializers.CharField(
        source="code_uri", required=False, allow_null=True, max_length=2048
    )


class DataContainerPropertiesSerializer(AssetContainerPropertiesSerializer):
    dataType = CaseInsensitiveChoiceField(source="data_type", choices=DataType.choices)


class DataVersionPropertiesSerializer(AssetVersionPropertiesSerializer):
    dataType = CaseInsensitiveChoiceField(source="data_type", choices=DataType.choices)
    dataUri = serializers.CharField(source="data_uri", min_length=1, max_length=2048)
    referencedUris = serializers.ListField(
        source="referenced_uris",
        child=serializers.CharField(max_length=2048),
        required=False,
        allow_null=True,
        help_text="Only for mltable: the URIs its MLTable file names.",
    )

    def validate(self, attrs):
        # Only MLTable versions have referencedUris (Azure's MLTableData).
        if attrs.get("data_type") != DataType.MLTABLE:
            attrs["referenced_uris"] = None
        return attrs

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data["dataType"] != DataType.MLTABLE:
            del data["referencedUris"]
        return data


def _resource_serializer(name: str, type_suffix: str, properties_class):
    return type(
        name,
        (ArmResourceSerializer,),
        {
            "resource_type": f"{PREFIX}/{type_suffix}",
            "properties": properties_class(source="*"),
            "__module__": __name__,
        },
    )


ModelContainerSerializer = _resource_serializer(
    "ModelContainerSerializer", "models", AssetContainerPropertiesSerializer
)
ModelVersionSerializer = _resource_serializer(
    "ModelVersionSerializer", "models/versions", ModelVersionPropertiesSerializer
)
EnvironmentContainerSerializer = _resource_serializer(
    "EnvironmentContainerSerializer", "environments", AssetContainerPropertiesSerializer
)
EnvironmentVersionSerializer = _resource_serializer(
    "EnvironmentVersionSerializer", "environments/versions", EnvironmentVersionPropertiesSerializer
)
CodeContainerSerializer = _resource_serializer(
    "CodeContainerSerializer", "codes", AssetContainerPropertiesSerializer
)
CodeVersionSerializer = _resource_serializer(
    "CodeVersionSerializer", "codes/versions", CodeVersionPropertiesSerializer
)
DataContainerSerializer = _resource_serializer(
    "DataContainerSerializer", "data", DataContainerPropertiesSerializer
)
DataVersionSerializer = _resource_serializer(
    "DataVersionSerializer", "data/versions", DataVersionPropertiesSerializer
)
