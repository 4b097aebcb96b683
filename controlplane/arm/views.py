"""ArmView: the base of every ARM view (api-version, scope, ETag preconditions)."""

from __future__ import annotations

import re

from rest_framework.views import APIView

from controlplane.arm.errors import ArmError
from controlplane.arm.parsers import check_text
from controlplane.arm.responses import quote_etag

# Real clients send dated versions from 2018 on (azureml-core, SDK v1, still sends
# 2018-03-01-preview), with or without -preview.
API_VERSION = re.compile(r"^20(1[89]|[2-9]\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(-preview)?$")


class ScopedView(APIView):
    """A view on a path that names an ARM scope (a workspace's, for the data-plane services
    Azure's SDKs address by it: run history, batch scoring). URL kwargs use Azure's
    parameter names (subscriptionId, resourceGroupName, workspaceName, ...)."""

    def initial(self, request, *args, **kwargs):
        check_url_text(request, kwargs)
        super().initial(request, *args, **kwargs)

    def check_preconditions(self, current_etag: str | None) -> None:
        """Honour If-Match (412 unless it names the current ETag or is ``*`` and the resource
        exists) and If-None-Match: * (412 if the resource exists)."""
        if_match = self.request.headers.get("If-Match")
        if if_match:
            wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
            if current_etag is None or not (
                "*" in wanted or quote_etag(current_etag) in wanted or current_etag in wanted
            ):
                raise ArmError(
                    412, "PreconditionFailed", "The If-Match condition does not match.", "If-Match"
                )
        if_none_match = self.request.headers.get("If-None-Match")
        if if_none_match and if_none_match.strip() == "*" and current_etag is not None:
            raise ArmError(
                412, "PreconditionFailed", "The resource already exists.", "If-None-Match"
            )


class ArmView(ScopedView):
    """A view on an ARM path: it also takes an api-version."""

    def initial(self, request, *args, **kwargs):
        check_api_version(request)
        super().initial(request, *args, **kwargs)


def principal_name(request) -> str:
    """Who a write is recorded as (systemData's createdBy and lastModifiedBy)."""
    return request.user.get_username() if request.user else ""


def check_url_text(request, kwargs: dict) -> None:
    """Path segments and query parameters reach Postgres as names and filters: refuse the
    text it cannot store (a NUL, sent as %00) before authorization reads the scope."""
    for name, value in kwargs.items():
        check_text(value, name)
    for name, values in request.query_params.lists():
        check_text(name, None, what="A query parameter name")
        for value in values:
            check_text(value, name)


def check_api_version(request, pattern: re.Pattern = API_VERSION) -> str:
    """The request's api-version; a 400 when it is missing or does not match ``pattern``."""
    version = request.GET.get("api-version")
    if version is None or version == "":
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
            "api-version",
        )
    if not pattern.match(version):
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. It must look like 2024-04-01 or "
            "2024-04-01-preview.",
            "api-version",
        )
    return version
