"""ARM's cloud-metadata document, ``GET /metadata/endpoints?api-version=...``: where Azure's
SDKs learn a cloud's resource manager, sign-in endpoint, token audience and storage suffix.

Setting ``ARM_CLOUD_METADATA_URL`` to this URL points azure-ai-ml (and the Azure CLI's
``az cloud register --cloud-config``) at Weir with no other change. Like Azure's, the
document is public: clients fetch it before they hold a token.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.arm.views import check_api_version

CLOUD_NAME = "Weir"
METADATA_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
# From this version on ARM answers with the one cloud it serves; before it, with a list.
SINGLE_CLOUD_FROM = "2022-09-01"


def cloud(request) -> dict:
    """Weir as a cloud, in the fields Azure's clients read."""
    base = request.build_absolute_uri("/")
    return {
        "name": CLOUD_NAME,
        "portal": base,
        "resourceManager": base,
        "authentication": {
            "loginEndpoint": base,
            "audiences": [base],
            "tenant": "common",
            "identityProvider": CLOUD_NAME,
        },
        # Blob accounts are addressed as https://{account}.blob.{storage suffix}.
        "suffixes": {"storage": urlsplit(settings.WEIR_BLOB_URL).netloc},
    }


@extend_schema(exclude=True)
class CloudMetadataView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        version = check_api_version(request, METADATA_API_VERSION)
        document = cloud(request)
        return Response(document if version >= SINGLE_CLOUD_FROM else [document])
