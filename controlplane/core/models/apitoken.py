"""Control-plane API tokens: bearer secrets, stored only as a SHA-256 digest.

A token is a JWT, because Azure's SDKs read claims from the bearer token they hold (azureml-core
refuses one that is not three dot-separated parts, and reads ``exp``, ``tid`` and ``oid``).
The server never trusts those claims: it finds the token by its digest, so revoking the row
revokes the token. The JWT is signed (HS256, a key derived from the server's secret key) so a
token's claims are Weir's own.
"""

import hashlib
import hmac
import secrets
import uuid

import jwt
from django.conf import settings
from django.db import models
from django.utils import timezone

from contracts.routing import TOKEN_ISSUER

# What the claims name the API as (the audience Azure's clients ask tokens for is ARM's).
AUDIENCE = "weir-api"
# A token made without an expiry still carries one, as SDKs expect: this far ahead.
NO_EXPIRY_YEARS = 100


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A token belongs to a user account: a service principal, or a person (their principal,
    controlplane.access), and acts with that principal's roles."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=255)
    # 256 bits of randomness: a plain SHA-256 digest is enough, no slow hash needed.
    token_digest = models.CharField(max_length=64, unique=True)
    # The first characters, so an operator can tell tokens apart without seeing one.
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user, name: str, days: int | None, expires_at=None) -> tuple["ApiToken", str]:
        """Create a token and return it with its plaintext, which is never stored. Its
        ``jti`` holds 256 random bits: the token is as hard to guess as that. It expires
        ``days`` from now, or at ``expires_at``; with neither, never."""
        token_id = secrets.token_urlsafe(32)
        now = timezone.now()
        if expires_at is None and days:
            expires_at = now + timezone.timedelta(days=days)
        ends = expires_at or now + timezone.timedelta(days=365 * NO_EXPIRY_YEARS)
        principal = user.get_username()
        claims = {
            "iss": TOKEN_ISSUER,
            "aud": AUDIENCE,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(ends.timestamp()),
            "tid": settings.WEIR_TENANT_ID,
            "oid": str(object_id(user)),
            "sub": str(object_id(user)),
            "upn": principal,
            "unique_name": principal,
            "name": principal,
            "jti": token_id,
        }
        plaintext = jwt.encode(claims, _signing_key(), algorithm="HS256")
        token = cls.objects.create(
            user=user,
            name=name,
            token_digest=digest(plaintext),
            prefix=token_id[:8],
            expires_at=expires_at,
        )
        return token, plaintext


def object_id(user) -> uuid.UUID:
    """The principal's object id (``oid``): the one role assignments name."""
    from controlplane.access.principals import principal_of

    return principal_of(user).object_id


def _signing_key() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"weir api tokens", hashlib.sha256).digest()
