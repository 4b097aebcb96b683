"""SDK v1 routes: artifact uploads and model management, each under its own prefix and the
workspace's ARM path."""

from django.urls import path

from controlplane.core.urls import WS
from controlplane.v1 import views

ARTIFACTS = f"artifact/v2.0/{WS}/artifacts"
MMS = f"modelmanagement/v1.0/{WS}"

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
]
