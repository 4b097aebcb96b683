"""Control-plane API tokens: bearer secrets, stored only as a SHA-256 digest."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "weir_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A token belongs to a user; the user is the principal that RBAC will grant roles to."""

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
    def issue(cls, user, name: str, days: int | None) -> tuple["ApiToken", str]:
        """Create a token and return it with its plaintext, which is never stored."""
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = timezone.now() + timezone.timedelta(days=days) if days else None
        token = cls.objects.create(
            user=user,
            name=name,
            token_digest=digest(plaintext),
            prefix=plaintext[: len(TOKEN_PREFIX) + 6],
            expires_at=expires_at,
        )
        return token, plaintext
