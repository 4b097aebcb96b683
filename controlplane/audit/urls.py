"""The audit log's routes (ARM paths are case-insensitive)."""

from django.urls import re_path

from controlplane.audit.views import ActivityLogView, AuditRecordListView

urlpatterns = [
    re_path(r"^(?i:providers/Weir\.Audit/auditRecords)$", AuditRecordListView.as_view()),
    re_path(
        r"^(?i:subscriptions)/(?P<subscriptionId>[^/]+)"
        r"/(?i:providers/Microsoft\.Insights/eventtypes/management/values)$",
        ActivityLogView.as_view(),
    ),
]
