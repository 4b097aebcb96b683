"""Django authentication backends for people: local passwords and the identity provider's
verified ID tokens. Service principals never sign in; they hold API tokens."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from controlplane.access import accounts
from controlplane.access.models import Principal, PrincipalType
from controlplane.access.principals import principal_of

EXTERNAL_ID_LENGTH = Principal._meta.get_field("external_id").max_length


class PasswordBackend(ModelBackend):
    """A local user's password (Django's hashers). People of the identity provider and
    service principals have none that works."""

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and principal_of(user).kind == PrincipalType.USER


class OpenIdConnectBackend(ModelBackend):
    """The person an ID token names, once the view has verified it (signature, issuer,
    audience, expiry, nonce): found by ``iss`` and ``sub``, made on first sign-in, with the
    groups its groups claim maps."""

    def authenticate(self, request, oidc_claims=None, issuer=None, groups_claim="groups"):
        if oidc_claims is None or issuer is None:
            return None
        if len(accounts.external_id_of(issuer, oidc_claims)) > EXTERNAL_ID_LENGTH:
            return None
        user, _ = accounts.person_from_claims(issuer, oidc_claims, groups_claim)
        return user if self.user_can_authenticate(user) else None
