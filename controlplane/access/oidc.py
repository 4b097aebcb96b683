"""The organisation's OpenID Connect provider, as configured (WEIR_OIDC_ISSUER,
WEIR_OIDC_CLIENT_ID, WEIR_OIDC_CLIENT_SECRET): an Authlib client that finds the provider's
endpoints and keys by discovery and signs people in with the authorization code flow, PKCE
(S256), state and nonce."""

from __future__ import annotations

from authlib.integrations.django_client import OAuth
from django.conf import settings

# One client per configuration: Authlib keeps the provider's metadata and keys in it.
_clients: dict[tuple, object] = {}


class NotConfigured(Exception):
    pass


class WrongIssuer(Exception):
    """The discovery document names another issuer than the one configured."""


def configured() -> bool:
    return bool(settings.WEIR_OIDC_ISSUER and settings.WEIR_OIDC_CLIENT_ID)


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def client():
    """The provider's client, its discovery document loaded and its issuer checked."""
    if not configured():
        raise NotConfigured()
    issuer = settings.WEIR_OIDC_ISSUER
    key = (
        issuer,
        settings.WEIR_OIDC_CLIENT_ID,
        settings.WEIR_OIDC_CLIENT_SECRET,
        settings.WEIR_OIDC_SCOPES,
    )
    if key not in _clients:
        oauth = OAuth()
        _clients[key] = oauth.register(
            name="weir",
            client_id=settings.WEIR_OIDC_CLIENT_ID,
            client_secret=settings.WEIR_OIDC_CLIENT_SECRET or None,
            server_metadata_url=discovery_url(issuer),
            client_kwargs={
                "scope": settings.WEIR_OIDC_SCOPES,
                "code_challenge_method": "S256",
                "default_timeout": 10,
            },
        )
    provider = _clients[key]
    # OpenID Connect Discovery 1.0, 4.3: the document's issuer must be the one asked for
    # (Authlib then holds ID tokens' ``iss`` to it).
    if provider.load_server_metadata().get("issuer") != issuer:
        raise WrongIssuer(issuer)
    return provider
