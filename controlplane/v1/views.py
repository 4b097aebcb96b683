"""SDK v1's services on a workspace's ARM path: artifact uploads (run history's
``artifact/v2.0``) and model management (``modelmanagement/v1.0``: assets and models).

Authenticated like the API; no api-version (the version is in the path). Model management
answers errors as ModelErrorResponse ``{code, statusCode, message, correlation}``: the SDK
reads ``statusCode`` to tell a missing model (ModelNotFound) from other failures.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from controlplane.arm.errors import ArmError, arm_exception_handler, bad_request
from controlplane.arm.parsers import ArmJSONParser, JsonPatchMediaTypeParser
from controlplane.arm.views import ScopedView, principal_name
from controlplane.core.views.lookups import get_workspace
from controlplane.v1 import services
from controlplane.v1.services import ModelQuery, V1Error

MAX_PAGE = 255


class V1View(ScopedView):
    parser_classes = [ArmJSONParser, JsonPatchMediaTypeParser]


@extend_schema(exclude=True)
class ArtifactBatchView(V1View):
    """POST batch/metadata/{origin}/{container}: SAS URLs to write new artifacts."""

    def post(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        paths = request.data.get("paths") if isinstance(request.data, dict) else None
        if not isinstance(paths, list) or not all(
            isinstance(p, dict) and isinstance(p.get("path"), str) and p["path"] for p in paths
        ):
            raise bad_request("A batch of artifacts names their paths (paths: [{path}]).", "paths")
        try:
            body = services.create_empty_artifacts(
                workspace, kwargs["origin"], kwargs["container"], [p["path"] for p in paths]
            )
        except V1Error as exc:
            raise ArmError(exc.status_code, exc.code, exc.message) from None
        return Response(body)


@extend_schema(exclude=True)
class ArtifactContentView(V1View):
    """GET contentinfo/{origin}/{container}/{path}: a SAS URL to read one artifact."""

    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        try:
            body = services.artifact_content(
                workspace, kwargs["origin"], kwargs["container"], kwargs["path"]
            )
        except V1Error as exc:
            raise ArmError(exc.status_code, exc.code, exc.message) from None
        return Response(body)


@extend_schema(exclude=True)
class ArtifactPrefixContentView(V1View):
    """GET prefix/contentinfo/{origin}/{container}/{path}: SAS URLs to read the artifacts
    under a prefix, a page at a time (``continuationToken``)."""

    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        try:
            body = services.artifacts_under(
                workspace,
                kwargs["origin"],
                kwargs["container"],
                kwargs["path"],
                request.query_params.get("continuationToken") or None,
            )
        except V1Error as exc:
            raise ArmError(exc.status_code, exc.code, exc.message) from None
        return Response(body)


def model_management_exception_handler(exc, context):
    """Errors as the model management service writes them (ModelErrorResponse)."""
    if isinstance(exc, V1Error):
        status_code, code, message = exc.status_code, exc.code, exc.message
    else:
        if isinstance(exc, Http404):
            exc = exceptions.NotFound()
        response = arm_exception_handler(exc, context)
        if response is None:
            return None
        error = response.data["error"]
        status_code, code, message = response.status_code, error["code"], error["message"]
    request = context["request"]
    body = {
        "code": code,
        "statusCode": status_code,
        "message": message,
        "details": [],
        "correlation": {"RequestId": getattr(request, "request_id", "")},
    }
    return Response(body, status=status_code)


class ModelManagementView(V1View):
    def get_exception_handler(self):
        return model_management_exception_handler


@extend_schema(exclude=True)
class AssetListView(ModelManagementView):
    def post(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        data = request.data if isinstance(request.data, dict) else {}
        asset = services.create_asset(workspace, data, principal_name(request))
        return Response(services.asset_dto(asset))


@extend_schema(exclude=True)
class AssetView(ModelManagementView):
    def get(self, request, **kwargs):
        return Response(services.asset_by_id(get_workspace(kwargs), kwargs["id"]))


@extend_schema(exclude=True)
class ModelListView(ModelManagementView):
    def post(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        data = request.data if isinstance(request.data, dict) else {}
        version = services.register_model(workspace, data, principal_name(request))
        return Response(services.model_dto(version))

    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        params = request.query_params
        query = ModelQuery(
            name=params.get("name"),
            tags=params.get("tags"),
            properties=params.get("properties"),
            latest_only=params.get("latestVersionOnly", "").lower() == "true",
        )
        count = number(params.get("count"), MAX_PAGE, "count")
        offset = number(params.get("$skipToken"), 0, "$skipToken")
        count = min(max(count, 1), MAX_PAGE)
        rows = list(services.model_versions(workspace, query)[offset : offset + count + 1])
        next_link = None
        if len(rows) > count:
            rows = rows[:count]
            query_string = params.copy()
            query_string["$skipToken"] = str(offset + count)
            next_link = request.build_absolute_uri(f"{request.path}?{query_string.urlencode()}")
        return Response(
            {
                "value": [services.model_dto(row) for row in rows],
                "nextLink": next_link,
                "continuationToken": None,
            }
        )


def number(text: str | None, default: int, name: str) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit():
        raise V1Error(400, "BadRequest", f"{name} must be a whole number.")
    return int(text)


@extend_schema(exclude=True)
class ModelView(ModelManagementView):
    def get(self, request, **kwargs):
        version = self.model(get_workspace(kwargs), kwargs["id"])
        return Response(services.model_dto(version))

    def patch(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        version = self.model(workspace, kwargs["id"])
        patched = services.patch_model(workspace, version, request.data, principal_name(request))
        return Response(services.model_dto(patched))

    def delete(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        services.delete_model(self.model(workspace, kwargs["id"]), principal_name(request))
        return Response(status=200)

    @staticmethod
    def model(workspace, model_id: str):
        version = services.find_model(workspace, model_id)
        if version is None:
            raise V1Error(404, "ModelNotFound", f"Model '{model_id}' was not found.")
        return version
