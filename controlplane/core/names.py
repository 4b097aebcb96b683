"""Name rules for resources created by PUT: each checks the URL's name and is stated as the
path parameter's pattern in the PUT's OpenAPI operation."""

from __future__ import annotations

import re
from dataclasses import dataclass

from controlplane.arm.errors import bad_request


@dataclass(frozen=True)
class NameRule:
    what: str  # "Endpoint name '...' is invalid"
    parameter: str  # the URL parameter: the error's target and the OpenAPI parameter
    pattern: str  # also valid as an ECMAScript pattern (OpenAPI's)
    rule: str  # the rule in words, for the error message

    def check(self, value: str) -> None:
        if not re.match(self.pattern, value):
            raise bad_request(
                f"{self.what} name '{value}' is invalid: {self.rule}.", self.parameter
            )


# Azure ML: begins with a letter, 3-32 characters, letters/digits and single inner dashes.
_ENDPOINT_PATTERN = r"^[a-zA-Z](?:[a-zA-Z0-9]|-(?=[a-zA-Z0-9])){2,31}$"
_ENDPOINT_RULE = (
    "3 to 32 characters, starting with a letter; letters, digits and single dashes, "
    "not ending with a dash"
)
ENDPOINT = NameRule("Endpoint", "endpointName", _ENDPOINT_PATTERN, _ENDPOINT_RULE)
DEPLOYMENT = NameRule("Deployment", "deploymentName", _ENDPOINT_PATTERN, _ENDPOINT_RULE)
WORKSPACE = NameRule(
    "Workspace",
    "workspaceName",
    r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$",
    "3 to 33 characters: letters, digits, '-' and '_', starting with a letter or digit",
)
RESOURCE_GROUP = NameRule(
    "Resource group",
    "resourceGroupName",
    r"^[-\w._()]{1,90}$",
    "1 to 90 characters: letters, digits, '-', '_', '.', '(' and ')'",
)
# Azure ML computes: begins with a letter, 2-16 characters, letters, digits and dashes.
COMPUTE = NameRule(
    "Compute",
    "computeName",
    r"^[a-zA-Z][a-zA-Z0-9-]{1,15}$",
    "2 to 16 characters: letters, digits and '-', starting with a letter",
)
ASSET = NameRule(
    "Asset",
    "name",
    r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,254}$",
    "up to 255 characters: letters, digits, '-', '_' and '.', starting with a letter or digit",
)
ASSET_VERSION = NameRule(
    "Asset version",
    "version",
    r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,99}$",
    "up to 100 characters: letters, digits, '-', '_' and '.', starting with a letter or digit",
)
