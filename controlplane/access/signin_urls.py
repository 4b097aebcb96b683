"""Sign-in routes, under /auth/."""

from django.urls import path

from controlplane.access import signin

urlpatterns = [
    path("login", signin.LoginView.as_view(), name="login"),
    path("logout", signin.LogoutView.as_view(), name="logout"),
    path("session", signin.session_view, name="session"),
    path("oidc/login", signin.oidc_login, name="oidc-login"),
    path("oidc/callback", signin.oidc_callback, name="oidc-callback"),
]
