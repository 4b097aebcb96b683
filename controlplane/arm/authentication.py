"""Control-plane authentication: ``Authorization: Bearer <API token>``."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from controlplane.core.models import ApiToken
from controlplane.core.models.apitoken import digest

# Writing last_used_at on every request would make every read a write; once a minute is enough.
LAST_USED_RESOLUTION = timezone.timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise exceptions.AuthenticationFailed("The Authorization header is not a bearer token.")
        token = (
            ApiToken.objects.usable()
            .select_related("user")
            .filter(token_digest=digest(credential))
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("The access token is invalid or has expired.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="weir"'
