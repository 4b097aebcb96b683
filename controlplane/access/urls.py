"""Weir.Access routes (/providers/Weir.Access/{type}/{name}[/{childType}/{childName}][/{action}])
and Microsoft.Authorization's collections under any scope (or none: the root)."""

from django.urls import path, re_path

from controlplane.access import role_views, views

AUTHORIZATION = r"^(?:(?P<scope>.+)/)?providers/Microsoft\.Authorization"
NAME = r"(?P<name>[^/]+)$"

ACCESS = "providers/Weir.Access"
SP = f"{ACCESS}/servicePrincipals/<str:servicePrincipalName>"
USER = f"{ACCESS}/users/<str:userName>"

urlpatterns = [
    path(f"{ACCESS}/servicePrincipals", views.ServicePrincipalListView.as_view()),
    path(SP, views.ServicePrincipalView.as_view()),
    path(f"{ACCESS}/users", views.UserListView.as_view()),
    path(USER, views.UserView.as_view()),
    path(f"{USER}/setPassword", views.SetPasswordView.as_view()),
    path(f"{ACCESS}/groups", views.GroupListView.as_view()),
    path(f"{ACCESS}/groups/<str:groupName>", views.GroupView.as_view()),
]

for owner, token_views in ((SP, views.SERVICE_PRINCIPAL_TOKENS), (USER, views.USER_TOKENS)):
    urlpatterns += [
        path(f"{owner}/tokens", token_views["list"].as_view()),
        path(f"{owner}/tokens/<str:tokenName>", token_views["one"].as_view()),
        path(f"{owner}/tokens/<str:tokenName>/revoke", token_views["revoke"].as_view()),
    ]

urlpatterns += [
    re_path(rf"{AUTHORIZATION}/roleDefinitions/?$", role_views.RoleDefinitionListView.as_view()),
    re_path(rf"{AUTHORIZATION}/roleDefinitions/{NAME}", role_views.RoleDefinitionView.as_view()),
    re_path(rf"{AUTHORIZATION}/roleAssignments/?$", role_views.RoleAssignmentListView.as_view()),
    re_path(rf"{AUTHORIZATION}/roleAssignments/{NAME}", role_views.RoleAssignmentView.as_view()),
]
