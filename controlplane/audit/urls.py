"""The audit log's routes: as Azure spells them, and in any case (ARM paths are
case-insensitive)."""

from django.urls import path, re_path

from controlplane.audit import views

ACTIVITY_LOG = "providers/Microsoft.Insights/eventtypes/management/values"

urlpatterns = [
    path("providers/Weir.Audit/auditRecords", views.AuditRecordListView.as_view()),
    path(f"subscriptions/<str:subscriptionId>/{ACTIVITY_LOG}", views.ActivityLogView.as_view()),
    re_path(
        r"^(?i:providers/Weir\.Audit/auditRecords)$", views.AuditRecordListAnyCaseView.as_view()
    ),
    re_path(
        r"^(?i:subscriptions)/(?P<subscriptionId>[^/]+)/(?i:providers/Microsoft\.Insights"
        r"/eventtypes/management/values)$",
        views.ActivityLogAnyCaseView.as_view(),
    ),
]
