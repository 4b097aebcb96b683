"""Weir.Access: service principals, users, groups and API tokens, ARM-shaped.

Every path is under ``/providers/Weir.Access/`` and acts at the scope ``/``, so a call is
authorized by its action as any other ARM call (``Weir.Access/servicePrincipals/write``,
``Weir.Access/users/setPassword/action``, ``Weir.Access/servicePrincipals/tokens/read``...).
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.response import Response

from controlplane.access import accounts
from controlplane.access.models import Group, Principal, PrincipalType
from controlplane.access.serializers import (
    GroupSerializer,
    NewTokenSerializer,
    ServicePrincipalSerializer,
    SetPasswordSerializer,
    TokenSerializer,
    UserSerializer,
)
from controlplane.arm.errors import not_found
from controlplane.arm.pagination import SKIP, page
from controlplane.arm.schema import DELETED, paged
from controlplane.arm.views import ArmView
from controlplane.core.models import ApiToken
from controlplane.core.names import NameRule

PRINCIPAL_RULE = "1 to 150 characters: letters, digits and '@', '.', '+', '-', '_'"
SERVICE_PRINCIPAL_NAME = NameRule(
    "Service principal", "servicePrincipalName", accounts.NAME_PATTERN, PRINCIPAL_RULE
)
USER_NAME = NameRule("User", "userName", accounts.NAME_PATTERN, PRINCIPAL_RULE)
GROUP_NAME = NameRule(
    "Group",
    "groupName",
    r"^[\w.@+-][\w .@+-]{0,254}$",
    "1 to 255 characters: letters, digits, spaces and '@', '.', '+', '-', '_', not starting "
    "with a space",
)


class AccessView(ArmView):
    """A Weir.Access call: it acts on the whole install (its path's scope is under ``/``)."""


def listed(request, queryset, serializer_class) -> Response:
    context = {"request": request}
    return Response(
        page(
            request, queryset, lambda rows: serializer_class(rows, many=True, context=context).data
        )
    )


def validated(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


#
# Service principals and users
#
class PrincipalListView(AccessView):
    kind: str
    serializer_class: type

    def get(self, request, **kwargs):
        principals = (
            Principal.objects.select_related("user")
            .filter(kind=self.kind)
            .order_by("user__username")
        )
        return listed(request, principals, self.serializer_class)


class PrincipalView(AccessView):
    kind: str
    serializer_class: type
    name_rule: NameRule
    label: str

    @property
    def principal_name(self) -> str:
        return self.kwargs[self.name_rule.parameter]

    def get_principal(self) -> Principal:
        principal = accounts.find_principal(self.principal_name, self.kind)
        if principal is None:
            raise not_found(self.label, self.principal_name)
        return principal

    def get(self, request, **kwargs):
        return Response(self.serializer_class(self.get_principal()).data)

    def put(self, request, **kwargs):
        self.name_rule.check(self.principal_name)
        data = validated(self.serializer_class, request.data)
        principal, created = accounts.put_principal(
            self.principal_name,
            self.kind,
            data.get("display_name"),
            email=data.get("user", {}).get("email"),
        )
        return Response(self.serializer_class(principal).data, status=201 if created else 200)

    def delete(self, request, **kwargs):
        principal = accounts.find_principal(self.principal_name, self.kind)
        if principal is None:
            return Response(status=204)
        accounts.delete_principal(principal, request)
        return Response(status=200)


@extend_schema_view(
    get=extend_schema(
        operation_id="ServicePrincipals_List",
        parameters=[SKIP],
        responses=paged(ServicePrincipalSerializer),
    )
)
class ServicePrincipalListView(PrincipalListView):
    kind = PrincipalType.SERVICE_PRINCIPAL
    serializer_class = ServicePrincipalSerializer


@extend_schema_view(
    get=extend_schema(operation_id="ServicePrincipals_Get", responses=ServicePrincipalSerializer),
    put=extend_schema(
        operation_id="ServicePrincipals_CreateOrUpdate",
        request=ServicePrincipalSerializer,
        responses={200: ServicePrincipalSerializer, 201: ServicePrincipalSerializer},
    ),
    delete=extend_schema(operation_id="ServicePrincipals_Delete", responses=DELETED),
)
class ServicePrincipalView(PrincipalView):
    kind = PrincipalType.SERVICE_PRINCIPAL
    serializer_class = ServicePrincipalSerializer
    name_rule = SERVICE_PRINCIPAL_NAME
    label = "Service principal"


@extend_schema_view(
    get=extend_schema(operation_id="Users_List", parameters=[SKIP], responses=paged(UserSerializer))
)
class UserListView(PrincipalListView):
    kind = PrincipalType.USER
    serializer_class = UserSerializer


@extend_schema_view(
    get=extend_schema(operation_id="Users_Get", responses=UserSerializer),
    put=extend_schema(
        operation_id="Users_CreateOrUpdate",
        request=UserSerializer,
        responses={200: UserSerializer, 201: UserSerializer},
    ),
    delete=extend_schema(operation_id="Users_Delete", responses=DELETED),
)
class UserView(PrincipalView):
    """A person. PUT makes a local user (who signs in with a password, set by setPassword);
    people who sign in with the identity provider are made at their first sign-in."""

    kind = PrincipalType.USER
    serializer_class = UserSerializer
    name_rule = USER_NAME
    label = "User"


class SetPasswordView(PrincipalView):
    kind = PrincipalType.USER
    serializer_class = UserSerializer
    name_rule = USER_NAME
    label = "User"
    http_method_names = ["post", "options"]

    @extend_schema(
        operation_id="Users_SetPassword",
        request=SetPasswordSerializer,
        responses={200: UserSerializer},
    )
    def post(self, request, **kwargs):
        principal = self.get_principal()
        password = validated(SetPasswordSerializer, request.data)["password"]
        accounts.set_password(principal, password)
        return Response(self.serializer_class(principal).data)


#
# Groups
#
@extend_schema_view(
    get=extend_schema(
        operation_id="Groups_List", parameters=[SKIP], responses=paged(GroupSerializer)
    )
)
class GroupListView(AccessView):
    def get(self, request, **kwargs):
        groups = Group.objects.prefetch_related("members__principal").order_by("name")
        return listed(request, groups, GroupSerializer)


@extend_schema_view(
    get=extend_schema(operation_id="Groups_Get", responses=GroupSerializer),
    put=extend_schema(
        operation_id="Groups_CreateOrUpdate",
        request=GroupSerializer,
        responses={200: GroupSerializer, 201: GroupSerializer},
    ),
    delete=extend_schema(operation_id="Groups_Delete", responses=DELETED),
)
class GroupView(AccessView):
    """A group that role assignments can name. ``externalId`` is the identity provider's
    groups-claim value that makes a person who signs in a member; ``members`` (principal ids),
    when a PUT gives them, replaces the members."""

    @property
    def group_name(self) -> str:
        return self.kwargs["groupName"]

    def get(self, request, **kwargs):
        group = accounts.find_group(self.group_name)
        if group is None:
            raise not_found("Group", self.group_name)
        return Response(GroupSerializer(group).data)

    def put(self, request, **kwargs):
        GROUP_NAME.check(self.group_name)
        data = validated(GroupSerializer, request.data)
        group, created = accounts.put_group(
            self.group_name, data.get("external_id"), data.get("members")
        )
        return Response(GroupSerializer(group).data, status=201 if created else 200)

    def delete(self, request, **kwargs):
        group = accounts.find_group(self.group_name)
        if group is None:
            return Response(status=204)
        group.delete()
        return Response(status=200)


#
# API tokens of a principal
#
class TokenOwnerView(PrincipalView):
    def tokens(self):
        return ApiToken.objects.select_related("user__principal").filter(
            user=self.get_principal().user
        )

    def find_token(self) -> ApiToken | None:
        name = self.kwargs["tokenName"]
        # Names are row ids: digits, and no more of them than a bigint holds.
        if not (name.isascii() and name.isdigit() and len(name) <= 18):
            return None
        return self.tokens().filter(pk=int(name)).first()

    def get_token(self) -> ApiToken:
        token = self.find_token()
        if token is None:
            raise not_found("Token", self.kwargs["tokenName"])
        return token


class TokenListView(TokenOwnerView):
    http_method_names = ["get", "post", "options"]

    def get(self, request, **kwargs):
        return listed(request, self.tokens().order_by("created_at", "pk"), TokenSerializer)

    def post(self, request, **kwargs):
        owner = self.get_principal().user
        data = validated(TokenSerializer, request.data)
        expires_at = data.get("expires_at") or (
            timezone.now() + timezone.timedelta(days=settings.WEIR_API_TOKEN_DAYS)
        )
        token, plaintext = accounts.issue_token(request, owner, data.get("name", ""), expires_at)
        body = NewTokenSerializer(token, context={"plaintext": plaintext}).data
        return Response(body, status=201)


class TokenView(TokenOwnerView):
    http_method_names = ["get", "delete", "options"]

    def get(self, request, **kwargs):
        return Response(TokenSerializer(self.get_token()).data)

    def delete(self, request, **kwargs):
        """Revokes the token; it stays listed, as revoked."""
        token = self.find_token()
        if token is None:
            return Response(status=204)
        accounts.revoke_token(request, token)
        return Response(status=200)


class RevokeTokenView(TokenOwnerView):
    http_method_names = ["post", "options"]

    def post(self, request, **kwargs):
        token = self.get_token()
        accounts.revoke_token(request, token)
        return Response(TokenSerializer(token).data)


def token_views(group: str, owner: type) -> dict[str, type]:
    """The token views of one kind of principal (``owner``'s, the view of that kind), with
    their OpenAPI operations (``ServicePrincipalTokens_Create``...)."""
    attrs = {
        "__module__": __name__,
        **{a: getattr(owner, a) for a in ("kind", "serializer_class", "name_rule", "label")},
    }
    created = OpenApiResponse(NewTokenSerializer, description="The token, with its secret.")
    return {
        "list": extend_schema_view(
            get=extend_schema(
                operation_id=f"{group}_List", parameters=[SKIP], responses=paged(TokenSerializer)
            ),
            post=extend_schema(
                operation_id=f"{group}_Create", request=TokenSerializer, responses={201: created}
            ),
        )(type(f"{group}ListView", (TokenListView,), attrs)),
        "one": extend_schema_view(
            get=extend_schema(operation_id=f"{group}_Get", responses=TokenSerializer),
            delete=extend_schema(operation_id=f"{group}_Delete", responses=DELETED),
        )(type(f"{group}View", (TokenView,), attrs)),
        "revoke": extend_schema_view(
            post=extend_schema(
                operation_id=f"{group}_Revoke", request=None, responses={200: TokenSerializer}
            )
        )(type(f"{group}RevokeView", (RevokeTokenView,), attrs)),
    }


SERVICE_PRINCIPAL_TOKENS = token_views("ServicePrincipalTokens", ServicePrincipalView)
USER_TOKENS = token_views("UserTokens", UserView)
