"""The audit log's routes: Weir's own, and Azure's activity log (literal segments in any case:
controlplane.arm.middleware puts them in this case first)."""

from django.urls import path

from controlplane.audit import views

ACTIVITY_LOG = "providers/Microsoft.Insights/eventtypes/management/values"

urlpatterns = [
    path("providers/Weir.Audit/auditRecords", views.AuditRecordListView.as_view()),
    path(f"subscriptions/<str:subscriptionId>/{ACTIVITY_LOG}", views.ActivityLogView.as_view()),
]
