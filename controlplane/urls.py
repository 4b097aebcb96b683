"""Root URL configuration."""

from django.http import JsonResponse
from django.urls import include, path

from controlplane.arm.metadata import CloudMetadataView
from controlplane.core.views.workspace import DiscoveryView


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("healthz", healthz),
    path("metadata/endpoints", CloudMetadataView.as_view()),
    path("discovery/workspaces/<uuid:workspaceId>", DiscoveryView.as_view()),
    path("auth/", include("controlplane.access.signin_urls")),
    path("portal/", include("controlplane.portal.urls")),
    path("", include("controlplane.access.urls")),
    path("", include("controlplane.audit.urls")),
    path("", include("controlplane.batch.urls")),
    path("", include("controlplane.core.urls")),
    path("", include("controlplane.metrics.urls")),
    path("", include("controlplane.rollout.urls")),
    path("", include("controlplane.v1.urls")),
]

handler400 = "controlplane.arm.errors.bad_request_view"
handler404 = "controlplane.arm.errors.not_found_view"
handler500 = "controlplane.arm.errors.server_error_view"
