"""Datastores and pending uploads (the storage side of assets)."""

from rest_framework import serializers

from controlplane.arm.envelope import ArmResourceSerializer, string_map
from controlplane.arm.fields import BooleanField


class DatastoreCredentialsSerializer(serializers.Serializer):
    credentialsType = serializers.CharField()


class DatastorePropertiesSerializer(serializers.Serializer):
    datastoreType = serializers.CharField()
    accountName = serializers.CharField()
    containerName = serializers.CharField()
    endpoint = serializers.CharField()
    protocol = serializers.CharField()
    isDefault = BooleanField()
    credentials = DatastoreCredentialsSerializer()
    description = serializers.CharField(allow_null=True)
    properties = string_map()
    tags = string_map()
    subscriptionId = serializers.CharField()
    resourceGroup = serializers.CharField()


class DatastoreSerializer(ArmResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces/datastores"

    properties = DatastorePropertiesSerializer(source="*")


class SasDatastoreSecretsSerializer(serializers.Serializer):
    secretsType = serializers.CharField()
    sasToken = serializers.CharField()


class IssuedIdField(serializers.UUIDField):
    """A UUID sent as a string. DRF's UUIDField also takes integers (and so ``false``, the
    all-zero UUID); an id Weir issued is always a string."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class PendingUploadRequestSerializer(serializers.Serializer):
    # Weir issues the id; a client sends one only to ask again for an upload it was given.
    pendingUploadId = IssuedIdField(required=False, allow_null=True, format="hex_verbose")
    pendingUploadType = serializers.ChoiceField(
        choices=["None", "TemporaryBlobReference"], default="TemporaryBlobReference"
    )


class SasCredentialSerializer(serializers.Serializer):
    credentialType = serializers.CharField()
    sasUri = serializers.CharField()


class BlobReferenceForConsumptionSerializer(serializers.Serializer):
    blobUri = serializers.CharField()
    storageAccountArmId = serializers.CharField()
    credential = SasCredentialSerializer()


class PendingUploadResponseSerializer(serializers.Serializer):
    blobReferenceForConsumption = BlobReferenceForConsumptionSerializer()
    pendingUploadId = serializers.CharField()
    pendingUploadType = serializers.CharField()
