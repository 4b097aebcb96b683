"""SDK v1 routes: artifact uploads, model management (models, services, operations) and the
compute GET under ``rp/workspaces``, each under its own prefix and the workspace's ARM path."""

from django.urls import path

from controlplane.core.urls import WS
from controlplane.v1 import views
from controlplane.v1 import webservice_views as services

ARTIFACTS = f"artifact/v2.0/{WS}/artifacts"
MMS = f"modelmanagement/v1.0/{WS}"
SERVICE = f"{MMS}/services/<str:name>"

urlpatterns = [
    path(
        f"{ARTIFACTS}/batch/metadata/<str:origin>/<str:container>",
        views.ArtifactBatchView.as_view(),
    ),
    path(
        f"{ARTIFACTS}/contentinfo/<str:origin>/<str:container>/<path:path>",
        views.ArtifactContentView.as_view(),
    ),
    path(
        f"{ARTIFACTS}/prefix/contentinfo/<str:origin>/<str:container>/<path:path>",
        views.ArtifactPrefixContentView.as_view(),
    ),
    path(f"{MMS}/assets", views.AssetListView.as_view()),
    path(f"{MMS}/assets/<str:id>", views.AssetView.as_view()),
    path(f"{MMS}/models", views.ModelListView.as_view()),
    path(f"{MMS}/models/<str:id>", views.ModelView.as_view()),
    # The validate calls first: "validate" is not a service's name.
    path(f"{MMS}/services/validate", services.ValidateView.as_view()),
    path(f"{MMS}/services/validate/name/<str:name>", services.ValidateView.as_view(check="name")),
    path(f"{MMS}/services/validate/resource", services.ValidateView.as_view(check="resource")),
    path(f"{MMS}/services", services.ServiceListView.as_view()),
    path(SERVICE, services.ServiceView.as_view()),
    # The SDK says listkeys; ARM paths are canonicalized (controlplane.arm.middleware).
    path(f"{SERVICE}/listKeys", services.ListKeysView.as_view()),
    path(f"{SERVICE}/regenerateKeys", services.RegenerateKeysView.as_view()),
    path(f"{SERVICE}/token", services.TokenView.as_view()),
    path(f"{SERVICE}/logs", services.LogsView.as_view()),
    path(f"{MMS}/operations/<str:id>", services.OperationView.as_view()),
    path(f"rp/workspaces/{WS}/computes/<str:computeName>", services.ComputeView.as_view()),
]
