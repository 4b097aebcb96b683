"""Built-in roles, as Azure defines them for Machine Learning (same names and ids), plus Weir's
AzureML Endpoint Invoker. Actions are matched as Azure matches them: case-insensitive, ``*``
standing for any characters; a role allows an action that one of its ``actions`` matches and
none of its ``notActions`` does."""

from __future__ import annotations

import uuid

ML = "Microsoft.MachineLearningServices"

OWNER = uuid.UUID("8e3af657-a8ff-443c-a75c-2fe8c4bcb635")
CONTRIBUTOR = uuid.UUID("b24988ac-6180-42a0-ab88-20f7382dd24c")
READER = uuid.UUID("acdd72a7-3385-48ef-bd42-f606fba81ae7")
DATA_SCIENTIST = uuid.UUID("f6c7c914-8db3-469d-8ca1-694a8f32e121")
ENDPOINT_INVOKER = uuid.uuid5(uuid.NAMESPACE_URL, "weir:role:AzureML Endpoint Invoker")


def permissions(actions, not_actions=()) -> list[dict]:
    return [
        {
            "actions": list(actions),
            "notActions": list(not_actions),
            "dataActions": [],
            "notDataActions": [],
        }
    ]


BUILT_IN = {
    OWNER: (
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles.",
        permissions(["*"]),
    ),
    CONTRIBUTOR: (
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles.",
        permissions(
            ["*"],
            [
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                # Weir's principals, groups and tokens: making a token for an Owner, or
                # joining an Owner's group, would be assigning oneself a role.
                "Weir.Access/*/write",
                "Weir.Access/*/delete",
                "Weir.Access/*/action",
            ],
        ),
    ),
    READER: (
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        permissions(["*/read"]),
    ),
    DATA_SCIENTIST: (
        "AzureML Data Scientist",
        "Can perform all actions within an Azure Machine Learning workspace, except for "
        "creating or deleting compute resources and modifying the workspace itself.",
        permissions(
            [
                f"{ML}/workspaces/*/read",
                f"{ML}/workspaces/*/action",
                f"{ML}/workspaces/*/delete",
                f"{ML}/workspaces/*/write",
            ],
            [
                f"{ML}/workspaces/delete",
                f"{ML}/workspaces/write",
                f"{ML}/workspaces/computes/*/write",
                f"{ML}/workspaces/computes/*/delete",
                "Microsoft.Authorization/*",
                f"{ML}/workspaces/listKeys/action",
            ],
        ),
    ),
    ENDPOINT_INVOKER: (
        "AzureML Endpoint Invoker",
        "Can read online endpoints and get their scoring keys and tokens, and nothing else.",
        permissions(
            [
                f"{ML}/workspaces/read",
                f"{ML}/workspaces/onlineEndpoints/read",
                f"{ML}/workspaces/onlineEndpoints/listKeys/action",
                f"{ML}/workspaces/onlineEndpoints/token/action",
                f"{ML}/workspaces/onlineEndpoints/score/action",
                f"{ML}/workspaces/batchEndpoints/read",
                f"{ML}/workspaces/batchEndpoints/listKeys/action",
                f"{ML}/workspaces/services/read",
                f"{ML}/workspaces/services/listKeys/action",
                f"{ML}/workspaces/services/token/action",
            ]
        ),
    ),
}
