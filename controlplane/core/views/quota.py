"""Beyond Azure: an online endpoint's scoring quotas by credential, and their usage."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from controlplane.arm.views import ArmView
from controlplane.core.serializers.quota import KeyQuotasSerializer, KeyUsageSerializer
from controlplane.core.services import quota as quota_service
from controlplane.core.views.lookups import get_endpoint


class KeyQuotasView(ArmView):
    @extend_schema(operation_id="OnlineEndpoints_GetKeyQuotas", responses=KeyQuotasSerializer)
    def get(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        return Response(KeyQuotasSerializer(endpoint.key_quotas).data)

    @extend_schema(
        operation_id="OnlineEndpoints_SetKeyQuotas",
        request=KeyQuotasSerializer,
        responses=KeyQuotasSerializer,
    )
    def put(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        serializer = KeyQuotasSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = quota_service.set_quotas(endpoint, serializer.validated_data)
        return Response(KeyQuotasSerializer(endpoint.key_quotas).data)


class KeyUsageView(ArmView):
    @extend_schema(operation_id="OnlineEndpoints_GetKeyUsage", responses=KeyUsageSerializer)
    def get(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        return Response(KeyUsageSerializer(quota_service.usage(endpoint)).data)
