"""ARM routes. Literal segments are matched in canonical case (see arm.middleware)."""

from django.urls import path

from contracts.arm import PROVIDER
from controlplane.blobstore import datastores
from controlplane.core.services.asset import KINDS
from controlplane.core.views import (
    asset,
    compute,
    deployment,
    endpoint,
    operation,
    quota,
    workspace,
)

SUB = "subscriptions/<str:subscriptionId>"
PROVIDERS = f"providers/{PROVIDER}"
RG = f"{SUB}/resourceGroups/<str:resourceGroupName>"
WS = f"{RG}/{PROVIDERS}/workspaces/<str:workspaceName>"
EP = f"{WS}/onlineEndpoints/<str:endpointName>"
DEP = f"{EP}/deployments/<str:deploymentName>"

urlpatterns = [
    path(f"{SUB}/{PROVIDERS}/workspaces", workspace.SubscriptionWorkspaceListView.as_view()),
    path(f"{RG}/{PROVIDERS}/workspaces", workspace.WorkspaceListView.as_view()),
    path(WS, workspace.WorkspaceView.as_view()),
    path(f"{WS}/computes", compute.ComputeListView.as_view()),
    path(f"{WS}/computes/<str:computeName>", compute.ComputeView.as_view()),
    path(f"{WS}/onlineEndpoints", endpoint.OnlineEndpointListView.as_view()),
    path(EP, endpoint.OnlineEndpointView.as_view()),
    path(f"{EP}/listKeys", endpoint.ListKeysView.as_view()),
    path(f"{EP}/regenerateKeys", endpoint.RegenerateKeysView.as_view()),
    path(f"{EP}/token", endpoint.TokenView.as_view()),
    path(f"{EP}/keyQuotas", quota.KeyQuotasView.as_view()),
    path(f"{EP}/keyUsage", quota.KeyUsageView.as_view()),
    path(f"{EP}/deployments", deployment.OnlineDeploymentListView.as_view()),
    path(DEP, deployment.OnlineDeploymentView.as_view()),
    path(f"{DEP}/getLogs", deployment.GetLogsView.as_view()),
    path(f"{DEP}/skus", deployment.SkusView.as_view()),
    path(f"{DEP}/scaleEvents", deployment.ScaleEventsView.as_view()),
    path(
        f"{SUB}/{PROVIDERS}/locations/<str:location>/mfeOperationsStatus/<str:operationId>",
        operation.OperationStatusView.as_view(),
    ),
    path(
        f"{SUB}/{PROVIDERS}/locations/<str:location>/mfeOperationResults/<str:operationId>",
        operation.OperationResultView.as_view(),
    ),
]

urlpatterns += [
    path(f"{WS}/datastores", datastores.DatastoreListView.as_view()),
    path(f"{WS}/datastores/<str:name>", datastores.DatastoreView.as_view()),
    path(f"{WS}/datastores/<str:name>/listSecrets", datastores.ListSecretsView.as_view()),
]
# Azure has no startPendingUpload for a workspace's data: azure-ai-ml uploads a data
# asset's local files through the workspace's datastore.
for collection, label in (("codes", "Code"), ("models", "Model")):
    urlpatterns.append(
        path(
            f"{WS}/{collection}/<str:name>/versions/<str:version>/startPendingUpload",
            datastores.start_pending_upload_view(collection, label).as_view(),
        )
    )

for collection, kind in KINDS.items():
    views = asset.views_for(kind)
    urlpatterns += [
        path(f"{WS}/{collection}", views["containers"].as_view()),
        path(f"{WS}/{collection}/<str:name>", views["container"].as_view()),
        path(f"{WS}/{collection}/<str:name>/versions", views["versions"].as_view()),
        path(f"{WS}/{collection}/<str:name>/versions/<str:version>", views["version"].as_view()),
    ]
