"""Weir's resources, one module each."""

from controlplane.core.models.apitoken import ApiToken
from controlplane.core.models.asset import (
    CodeContainer,
    CodeVersion,
    DataContainer,
    DataVersion,
    EnvironmentContainer,
    EnvironmentVersion,
    ModelContainer,
    ModelVersion,
)
from controlplane.core.models.compute import Compute
from controlplane.core.models.deployment import OnlineDeployment
from controlplane.core.models.endpoint import OnlineEndpoint
from controlplane.core.models.operation import Operation
from controlplane.core.models.scaleevent import ScaleEvent
from controlplane.core.models.signingkey import SigningKey
from controlplane.core.models.workspace import Workspace

__all__ = [
    "ApiToken",
    "CodeContainer",
    "CodeVersion",
    "Compute",
    "DataContainer",
    "DataVersion",
    "EnvironmentContainer",
    "EnvironmentVersion",
    "ModelContainer",
    "ModelVersion",
    "OnlineDeployment",
    "OnlineEndpoint",
    "Operation",
    "ScaleEvent",
    "SigningKey",
    "Workspace",
]
