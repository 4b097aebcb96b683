"""OpenAPI generation: every ARM operation takes the required ``api-version`` query
parameter and may answer with an ARM error body."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

API_VERSION_PARAMETER = OpenApiParameter(
    name="api-version",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.QUERY,
    required=True,
    description="The API version, e.g. 2024-04-01.",
)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    target = serializers.CharField(allow_null=True, required=False)
    details = serializers.ListField(child=serializers.DictField(), required=False)
    additionalInfo = serializers.ListField(child=serializers.DictField(), required=False)


class ErrorResponseSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class ArmAutoSchema(AutoSchema):
    def get_override_parameters(self):
        return [*super().get_override_parameters(), API_VERSION_PARAMETER]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if "default" not in responses:
            responses["default"] = self._get_response_for_code(ErrorResponseSerializer, "default")
        return responses


_PAGED: dict[type, type] = {}


def paged(serializer_class: type) -> type:
    """The schema of a list response: ``{"value": [...], "nextLink": ...}``."""
    if serializer_class not in _PAGED:
        name = serializer_class.__name__.removesuffix("Serializer")
        _PAGED[serializer_class] = type(
            f"{name}ArmPaginatedResultSerializer",
            (serializers.Serializer,),
            {
                "value": serializer_class(many=True),
                "nextLink": serializers.URLField(allow_null=True, required=False),
                "__module__": __name__,
            },
        )
    return _PAGED[serializer_class]


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "controlplane.arm.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A Weir API token."}


ACCEPTED = OpenApiResponse(description="Accepted; poll the Location or Azure-AsyncOperation URL.")
ABSENT = OpenApiResponse(description="The resource did not exist.")
DELETED = {200: OpenApiResponse(description="Deleted."), 204: ABSENT}
ASYNC_DELETE = {202: ACCEPTED, 204: ABSENT}
