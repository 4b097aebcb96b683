"""The portal's pages, under /portal/."""

from django.urls import path

from controlplane.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("endpoints/<uuid:pk>", views.endpoint_page, name="endpoint"),
    path("endpoints/<uuid:pk>/traffic", views.traffic, name="traffic"),
    path("endpoints/<uuid:pk>/keys", views.keys, name="keys"),
    path("endpoints/<uuid:pk>/test", views.test_request, name="test"),
    path("endpoints/<uuid:pk>/deployments/<str:deployment>/scale", views.scale, name="scale"),
    path("endpoints/<uuid:pk>/deployments/<str:deployment>/logs", views.logs, name="logs"),
    path(
        "endpoints/<uuid:pk>/rollouts/<str:name>/<str:action>",
        views.rollout_action,
        name="rollout-action",
    ),
    path("operations", views.operations, name="operations"),
    path("operations/<uuid:pk>", views.operation, name="operation"),
    path("batch", views.batch_jobs, name="batch-jobs"),
    path("batch/<uuid:pk>", views.batch_job, name="batch-job"),
    path("assets", views.assets, name="assets"),
    path("people", views.people, name="people"),
    path("audit", views.audit, name="audit"),
]
