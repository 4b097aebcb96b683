"""Name rules for resources created by PUT (checked against the URL's name)."""

import re

from controlplane.arm.errors import bad_request

# Azure ML: begins with a letter, 3-32 characters, letters/digits and single inner dashes.
ENDPOINT_NAME = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9]|-(?=[a-zA-Z0-9])){2,31}$")
WORKSPACE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
ASSET_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,254}$")
ASSET_VERSION = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,99}$")
# Azure ML computes: begins with a letter, 2-16 characters, letters, digits and dashes.
COMPUTE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,15}$")
RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}$")

ENDPOINT_RULE = (
    "3 to 32 characters, starting with a letter; letters, digits and single dashes, "
    "not ending with a dash"
)


def check(pattern: re.Pattern, value: str, what: str, target: str, rule: str) -> None:
    if not pattern.match(value):
        raise bad_request(f"{what} name '{value}' is invalid: {rule}.", target)


def check_endpoint_name(value: str) -> None:
    check(ENDPOINT_NAME, value, "Endpoint", "endpointName", ENDPOINT_RULE)


def check_deployment_name(value: str) -> None:
    check(ENDPOINT_NAME, value, "Deployment", "deploymentName", ENDPOINT_RULE)


def check_workspace_name(value: str, resource_group: str) -> None:
    check(
        WORKSPACE_NAME,
        value,
        "Workspace",
        "workspaceName",
        "3 to 33 characters: letters, digits, '-' and '_', starting with a letter or digit",
    )
    check(
        RESOURCE_GROUP,
        resource_group,
        "Resource group",
        "resourceGroupName",
        "1 to 90 characters: letters, digits, '-', '_', '.', '(' and ')'",
    )


def check_compute_name(value: str) -> None:
    check(
        COMPUTE_NAME,
        value,
        "Compute",
        "computeName",
        "2 to 16 characters: letters, digits and '-', starting with a letter",
    )


def check_asset_name(value: str) -> None:
    check(
        ASSET_NAME,
        value,
        "Asset",
        "name",
        "up to 255 characters: letters, digits, '-', '_' and '.', starting with a letter or digit",
    )


def check_asset_version(value: str) -> None:
    check(
        ASSET_VERSION,
        value,
        "Asset version",
        "version",
        "up to 100 characters: letters, digits, '-', '_' and '.', starting with a letter or digit",
    )
