"""Sign-in for people, in Django sessions that the API then accepts (DRF's
SessionAuthentication, which holds unsafe methods to CSRF): a small password form for local
users, and the authorization code flow with the organisation's OpenID Connect provider."""

from __future__ import annotations

import logging

import requests
from authlib.common.errors import AuthlibBaseError
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.contrib.auth.signals import user_login_failed
from django.http import HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET
from joserfc.errors import JoseError

from controlplane.access import oidc
from controlplane.access.models import Group
from controlplane.access.principals import principal_of
from controlplane.arm.errors import error_body

log = logging.getLogger(__name__)

# Where the page the sign-in started from is kept while the person is at the provider.
NEXT_KEY = "weir_oidc_next"


class LoginView(auth_views.LoginView):
    """The password form (CSRF-protected; failures send ``user_login_failed``), with a link
    to the identity provider when one is configured."""

    template_name = "access/login.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "oidc": oidc.configured()}


class LogoutView(auth_views.LogoutView):
    next_page = "/auth/login"


@never_cache
@ensure_csrf_cookie
@require_GET
def session_view(request):
    """Who this session is signed in as, and the CSRF token its unsafe API calls send (as
    ``X-CSRFToken``)."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"signedIn": False, "csrfToken": get_token(request)})
    principal = principal_of(user)
    groups = Group.objects.filter(members=user).order_by("name")
    return JsonResponse(
        {
            "signedIn": True,
            "name": user.get_username(),
            "principalId": str(principal.object_id),
            "principalType": principal.kind,
            "displayName": principal.display_name,
            "groups": [{"name": g.name, "principalId": str(g.object_id)} for g in groups],
            "expiresAt": request.session.get_expiry_date().isoformat(),
            "csrfToken": get_token(request),
        }
    )


def _refusal(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def _safe_next(request, target: str | None) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return settings.LOGIN_REDIRECT_URL


@never_cache
@require_GET
def oidc_login(request):
    """Send the person to the provider's authorization endpoint (state, nonce and the PKCE
    verifier stay in this session)."""
    try:
        provider = oidc.client()
    except oidc.NotConfigured:
        return _refusal(404, "NotFound", "Single sign-on is not configured (WEIR_OIDC_ISSUER).")
    except (requests.RequestException, ValueError, oidc.WrongIssuer):
        log.warning("The identity provider's discovery document could not be read", exc_info=1)
        return _refusal(503, "IdentityProviderUnavailable", "The identity provider is unavailable.")
    request.session[NEXT_KEY] = _safe_next(request, request.GET.get("next"))
    callback = request.build_absolute_uri(reverse("oidc-callback"))
    return provider.authorize_redirect(request, callback)


@never_cache
@require_GET
def oidc_callback(request):
    """The provider's answer: exchange the code (with the PKCE verifier), verify the ID token
    (signature by the provider's published keys, issuer, audience, expiry, nonce), then sign
    the person in."""
    issuer = settings.WEIR_OIDC_ISSUER
    try:
        provider = oidc.client()
        token = provider.authorize_access_token(request)
        claims = token.get("userinfo")
        if not claims or not claims.get("sub"):
            raise ValueError("the provider answered without an ID token")
    except oidc.NotConfigured:
        return _refusal(404, "NotFound", "Single sign-on is not configured (WEIR_OIDC_ISSUER).")
    except (
        AuthlibBaseError,
        JoseError,
        requests.RequestException,
        ValueError,
        oidc.WrongIssuer,
    ) as exc:
        # The reason's name only: messages may quote what the provider or the caller sent.
        log.warning("Single sign-on refused: %s", type(exc).__name__)
        user_login_failed.send(sender=__name__, credentials={"issuer": issuer}, request=request)
        return _refusal(401, "AuthenticationFailed", "Single sign-on failed; sign in again.")
    user = auth.authenticate(
        request,
        oidc_claims=dict(claims),
        issuer=issuer,
        groups_claim=settings.WEIR_OIDC_GROUPS_CLAIM,
    )
    if user is None:
        return _refusal(403, "AuthorizationFailed", "This account may not sign in.")
    target = request.session.pop(NEXT_KEY, None)
    # login() starts a new session (a new key) and sends user_logged_in.
    auth.login(request, user)
    return HttpResponseRedirect(_safe_next(request, target))
