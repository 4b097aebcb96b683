"""Batch routes: the ARM resources under a workspace, the scoring URI jobs are POSTed to,
and the data-plane services Azure's SDK reads jobs through (management front end, run
history, data)."""

from django.urls import path

from controlplane.batch import history, views
from controlplane.core.urls import WS

BEP = f"{WS}/batchEndpoints/<str:endpointName>"
MFE = "mferp/managementfrontend"

urlpatterns = [
    path(f"{WS}/batchEndpoints", views.BatchEndpointListView.as_view()),
    path(BEP, views.BatchEndpointView.as_view()),
    path(f"{BEP}/listKeys", views.BatchEndpointListKeysView.as_view()),
    path(f"{BEP}/deployments", views.BatchDeploymentListView.as_view()),
    path(f"{BEP}/deployments/<str:deploymentName>", views.BatchDeploymentView.as_view()),
    path(f"{WS}/jobs", views.JobListView.as_view()),
    path(f"{WS}/jobs/<str:jobName>", views.JobView.as_view()),
    path(f"{WS}/jobs/<str:jobName>/cancel", views.JobCancelView.as_view()),
    path(f"batch/{BEP}/jobs", views.InvokeView.as_view()),
    path(f"{MFE}/{BEP}/jobs", views.EndpointJobListView.as_view()),
    path(f"{MFE}/{BEP}/deployments/<str:deploymentName>/jobs", views.EndpointJobListView.as_view()),
    path(f"history/v1.0/{WS}/runs/<str:jobName>/details", history.RunDetailsView.as_view()),
    path(f"history/v1.0/{WS}/runs/<str:jobName>", history.RunDetailsView.as_view()),
    path(f"history/v1.0/{WS}/runs/<str:jobName>/children", history.RunChildrenView.as_view()),
    path(f"history/v1.0/{WS}/rundata", history.RunDataView.as_view()),
    path(f"data/v1.0/{WS}/dataversion/batchGetResolvedUris", history.ResolveUrisView.as_view()),
]
