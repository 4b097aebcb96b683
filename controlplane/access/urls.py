"""Microsoft.Authorization's collections under any scope (or none: the root)."""

from django.urls import re_path

from controlplane.access import views

SCOPE = r"^(?:(?P<scope>.+)/)?providers/Microsoft\.Authorization"
NAME = r"(?P<name>[^/]+)$"

urlpatterns = [
    re_path(rf"(?i){SCOPE}/roleDefinitions/?$", views.RoleDefinitionListView.as_view()),
    re_path(rf"(?i){SCOPE}/roleDefinitions/{NAME}", views.RoleDefinitionView.as_view()),
    re_path(rf"(?i){SCOPE}/roleAssignments/?$", views.RoleAssignmentListView.as_view()),
    re_path(rf"(?i){SCOPE}/roleAssignments/{NAME}", views.RoleAssignmentView.as_view()),
]
