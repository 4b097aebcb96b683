"""Azure Monitor's metrics routes under online endpoints and deployments (literal segments in
any case: controlplane.arm.middleware puts them in this case first)."""

from django.urls import path

from controlplane.core.urls import DEP, EP
from controlplane.metrics import views

INSIGHTS = "providers/Microsoft.Insights"

urlpatterns = [
    path(f"{EP}/{INSIGHTS}/metrics", views.EndpointMetricsView.as_view()),
    path(f"{EP}/{INSIGHTS}/metricDefinitions", views.EndpointMetricDefinitionsView.as_view()),
    path(f"{DEP}/{INSIGHTS}/metrics", views.DeploymentMetricsView.as_view()),
    path(f"{DEP}/{INSIGHTS}/metricDefinitions", views.DeploymentMetricDefinitionsView.as_view()),
]
