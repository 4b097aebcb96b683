"""Endpoint scoring keys and AMLToken scoring tokens."""

from __future__ import annotations

import secrets
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import IntegrityError, transaction

from contracts.routing import TOKEN_ISSUER
from controlplane.core.models import SigningKey
from controlplane.core.services import routing

TOKEN_TYPE = "Bearer"


def generate_key() -> str:
    return secrets.token_urlsafe(32)


def active_signing_key() -> SigningKey:
    """The key that signs new tokens; the first call makes one (Ed25519)."""
    key = SigningKey.objects.filter(active=True).order_by("-created_at").first()
    if key is not None:
        return key
    private = Ed25519PrivateKey.generate()
    try:
        with transaction.atomic():
            key = SigningKey.objects.create(
                kid=uuid.uuid4().hex,
                private_key_pem=private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                public_key_pem=private.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode(),
            )
        # After the key exists (at once outside a transaction): the router needs it to
        # verify the token about to be issued.
        transaction.on_commit(routing.publish_signing_keys)
        return key
    except IntegrityError:  # pragma: no cover - a concurrent first call won; use its key
        return SigningKey.objects.filter(active=True).order_by("-created_at").first()


def issue_token(endpoint, principal: str) -> dict:
    """A signed, expiring scoring token for an AMLToken endpoint (EndpointAuthToken)."""
    key = active_signing_key()
    now = int(time.time())
    lifetime = settings.WEIR_AML_TOKEN_LIFETIME
    claims = {
        "iss": TOKEN_ISSUER,
        "aud": endpoint.token_audience,
        "sub": principal,
        "endpoint": str(endpoint.id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, key.private_key_pem, algorithm="EdDSA", headers={"kid": key.kid})
    return {
        "accessToken": token,
        "tokenType": TOKEN_TYPE,
        "expiryTimeUtc": now + lifetime,
        "refreshAfterTimeUtc": now + lifetime // 2,
    }


def verify_token(token: str, endpoint) -> dict:
    """Decode and check a scoring token for ``endpoint``; raise jwt.InvalidTokenError."""
    kid = jwt.get_unverified_header(token).get("kid")
    key = SigningKey.objects.filter(kid=kid).first()
    if key is None:
        raise jwt.InvalidTokenError("unknown signing key")
    return jwt.decode(
        token,
        key.public_key_pem,
        algorithms=["EdDSA"],
        audience=endpoint.token_audience,
        issuer=TOKEN_ISSUER,
    )
