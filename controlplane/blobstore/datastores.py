"""Datastores (the workspace's default ``workspaceblobstore``) and pending uploads."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.response import Response

from controlplane.arm import pagination
from controlplane.arm.errors import bad_request, not_found
from controlplane.arm.resources import ArmListView
from controlplane.arm.views import ArmView
from controlplane.blobstore import storage
from controlplane.blobstore.serializers import (
    DatastoreSerializer,
    PendingUploadRequestSerializer,
    PendingUploadResponseSerializer,
    SasDatastoreSecretsSerializer,
)
from controlplane.core.views.lookups import get_workspace


class Datastore:
    """The workspace's default datastore: its storage account's default container."""

    name = storage.DEFAULT_DATASTORE

    def __init__(self, workspace, account):
        self.workspace, self.account = workspace, account
        self.arm_id = f"{workspace.arm_id}/datastores/{self.name}"
        self.created_at = self.modified_at = account.created_at
        self.created_by = self.modified_by = "weir"
        self.datastoreType, self.protocol, self.isDefault = "AzureBlob", "https", True
        self.description = "The workspace's default blob store."
        self.credentials = {"credentialsType": "Sas"}
        self.properties, self.tags = {}, {}
        self.accountName = account.name
        self.containerName = account.default_container
        self.endpoint = urlsplit(settings.WEIR_BLOB_URL).netloc
        self.subscriptionId = workspace.subscription_id
        self.resourceGroup = workspace.resource_group


def get_datastore(kwargs) -> Datastore:
    workspace = get_workspace(kwargs)
    if kwargs.get("name", storage.DEFAULT_DATASTORE).lower() != storage.DEFAULT_DATASTORE:
        raise not_found("Datastore", kwargs["name"])
    return Datastore(workspace, storage.account_for(workspace))


class DatastoreListView(ArmListView):
    serializer_class = DatastoreSerializer
    operation_id = "Datastores_List"
    list_parameters = [pagination.SKIP, pagination.COUNT]

    def rows(self):
        return [get_datastore(self.kwargs)]


class DatastoreView(ArmView):
    @extend_schema(operation_id="Datastores_Get", responses=DatastoreSerializer)
    def get(self, request, **kwargs):
        return Response(DatastoreSerializer(get_datastore(kwargs)).data)


class ListSecretsView(ArmView):
    @extend_schema(
        operation_id="Datastores_ListSecrets", request=None, responses=SasDatastoreSecretsSerializer
    )
    def post(self, request, **kwargs):
        """An expiring SAS for the whole default container (read, write, list, delete)."""
        datastore = get_datastore(kwargs)
        token = storage.sas_token(datastore.account, datastore.containerName, "", "racwdl", "c")
        return Response({"secretsType": "Sas", "sasToken": token})


class StartPendingUploadView(ArmView):
    collection = ""  # the URL segment of the asset kind: "codes" or "models"

    @extend_schema(
        request=PendingUploadRequestSerializer, responses=PendingUploadResponseSerializer
    )
    def post(self, request, **kwargs):
        """An upload directory and a SAS to write into it, for a code or model version: a new
        one, or again the one whose ``pendingUploadId`` Weir issued for this version."""
        workspace = get_workspace(kwargs)
        serializer = PendingUploadRequestSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        try:
            pending = storage.start_pending_upload(
                workspace,
                self.collection,
                kwargs["name"],
                kwargs["version"],
                serializer.validated_data.get("pendingUploadId"),
            )
        except storage.UnknownPendingUpload as exc:
            raise bad_request(str(exc), "pendingUploadId") from None
        return Response(pending)


def start_pending_upload_view(collection: str, label: str) -> type:
    """The startPendingUpload view of code or model versions, with Azure's operation id."""
    operation = extend_schema(operation_id=f"{label}Versions_CreateOrGetStartPendingUpload")
    return extend_schema_view(post=operation)(
        type(
            f"{label}StartPendingUploadView",
            (StartPendingUploadView,),
            {"__module__": __name__, "collection": collection},
        )
    )
