"""Bodies of Weir.Access resources: the ARM envelope ``{id, name, type, properties}`` over
principals, groups and API tokens."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.access.models import PrincipalType
from controlplane.access.principals import principal_of

NAMESPACE = "Weir.Access"
SERVICE_PRINCIPALS = "servicePrincipals"
USERS = "users"
GROUPS = "groups"
TOKENS = "tokens"


def access_id(*segments: str) -> str:
    """The ARM id of a Weir.Access resource: /providers/Weir.Access/{type}/{name}/..."""
    return "/providers/" + "/".join([NAMESPACE, *segments])


class AccessResourceSerializer(serializers.Serializer):
    """id, name and type, read-only and derived from the row; ``properties`` is the
    resource's own."""

    collection: str = ""

    id = serializers.SerializerMethodField()
    name = serializers.SerializerMethodField()
    type = serializers.SerializerMethodField()

    def resource_name(self, obj) -> str:
        raise NotImplementedError

    def id_segments(self, obj) -> list[str]:
        return [self.collection, self.resource_name(obj)]

    @extend_schema_field(OpenApiTypes.STR)
    def get_id(self, obj) -> str:
        return access_id(*self.id_segments(obj))

    @extend_schema_field(OpenApiTypes.STR)
    def get_name(self, obj) -> str:
        return self.resource_name(obj)

    @extend_schema_field(OpenApiTypes.STR)
    def get_type(self, obj) -> str:
        return f"{NAMESPACE}/{self.collection}"


#
# Service principals and users
#
class PrincipalPropertiesSerializer(serializers.Serializer):
    principalId = serializers.UUIDField(source="object_id", read_only=True)
    principalType = serializers.CharField(source="kind", read_only=True)
    displayName = serializers.CharField(
        source="display_name", max_length=255, required=False, allow_blank=True
    )
    createdAt = serializers.DateTimeField(source="user.date_joined", read_only=True)


class PrincipalSerializer(AccessResourceSerializer):
    def resource_name(self, obj) -> str:
        return obj.user.username


class ServicePrincipalSerializer(PrincipalSerializer):
    collection = SERVICE_PRINCIPALS
    properties = PrincipalPropertiesSerializer(source="*", required=False)


class UserPropertiesSerializer(PrincipalPropertiesSerializer):
    email = serializers.EmailField(
        source="user.email", max_length=254, required=False, allow_blank=True
    )
    signIn = serializers.SerializerMethodField()
    hasPassword = serializers.SerializerMethodField()
    lastSignInAt = serializers.DateTimeField(
        source="user.last_login", read_only=True, allow_null=True
    )

    def get_signIn(self, obj) -> str:
        """How the person signs in: with a password here, or with the identity provider."""
        return "OpenIdConnect" if obj.external_id else "Password"

    def get_hasPassword(self, obj) -> bool:
        return obj.user.has_usable_password()


class UserSerializer(PrincipalSerializer):
    collection = USERS
    properties = UserPropertiesSerializer(source="*", required=False)


class SetPasswordSerializer(serializers.Serializer):
    # Django's password validators judge it; the length cap only keeps hashing bounded.
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


#
# Groups
#
@extend_schema_field({"type": "array", "items": {"type": "string", "format": "uuid"}})
class MembersField(serializers.ListField):
    """The members' principal ids (users and service principals)."""

    child = serializers.UUIDField()

    def get_attribute(self, instance):
        return [principal_of(user).object_id for user in instance.members.all()]


class GroupPropertiesSerializer(serializers.Serializer):
    principalId = serializers.UUIDField(source="object_id", read_only=True)
    principalType = serializers.SerializerMethodField()
    externalId = serializers.CharField(
        source="external_id", max_length=512, required=False, allow_null=True
    )
    members = MembersField(required=False, max_length=10000)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    def get_principalType(self, obj) -> str:
        return PrincipalType.GROUP.value

    def validate_externalId(self, value):
        if value is not None and not value.strip():
            raise serializers.ValidationError("Must not be empty; use null for none.")
        return value

    def validate_members(self, value):
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Lists a principal more than once.")
        return value


class GroupSerializer(AccessResourceSerializer):
    collection = GROUPS
    properties = GroupPropertiesSerializer(source="*", required=False)

    def resource_name(self, obj) -> str:
        return obj.name


#
# API tokens
#
class TokenPropertiesSerializer(serializers.Serializer):
    label = serializers.CharField(source="name", max_length=255, required=False, allow_blank=True)
    # When the token stops working (at most WEIR_API_TOKEN_DAYS away; that far by default).
    # (Tokens made by `manage.py create_api_token --days 0` have none.)
    expiresOn = serializers.DateTimeField(source="expires_at", required=False, allow_null=True)
    prefix = serializers.CharField(read_only=True)
    state = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", read_only=True, allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked_at", read_only=True, allow_null=True)
    principalId = serializers.SerializerMethodField()

    def get_state(self, obj) -> str:
        if obj.revoked_at is not None:
            return "Revoked"
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return "Expired"
        return "Active"

    @extend_schema_field(OpenApiTypes.UUID)
    def get_principalId(self, obj) -> str:
        """The principal the token acts as."""
        return str(principal_of(obj.user).object_id)

    def validate_expiresOn(self, value):
        if value is None:
            raise serializers.ValidationError("Every token expires; leave it out for the default.")
        now = timezone.now()
        longest = settings.WEIR_API_TOKEN_DAYS
        if value <= now:
            raise serializers.ValidationError("Must be in the future.")
        if value > now + timezone.timedelta(days=longest):
            raise serializers.ValidationError(f"Must be at most {longest} days from now.")
        return value


class TokenSerializer(AccessResourceSerializer):
    collection = TOKENS
    properties = TokenPropertiesSerializer(source="*", required=False)

    def resource_name(self, obj) -> str:
        return str(obj.pk)

    def id_segments(self, obj) -> list[str]:
        owner = principal_of(obj.user)
        kind = USERS if owner.kind == PrincipalType.USER else SERVICE_PRINCIPALS
        return [kind, obj.user.username, TOKENS, str(obj.pk)]

    @extend_schema_field(OpenApiTypes.STR)
    def get_type(self, obj) -> str:
        owner = principal_of(obj.user)
        kind = USERS if owner.kind == PrincipalType.USER else SERVICE_PRINCIPALS
        return f"{NAMESPACE}/{kind}/{TOKENS}"


class NewTokenPropertiesSerializer(TokenPropertiesSerializer):
    # The secret, in the answer to the POST that made the token and nowhere else.
    token = serializers.SerializerMethodField()

    def get_token(self, obj) -> str:
        return self.context["plaintext"]


class NewTokenSerializer(TokenSerializer):
    properties = NewTokenPropertiesSerializer(source="*", required=False)
