"""Enumerations with Azure's spellings: these strings are stored and returned as they are."""

from django.db import models


class ProvisioningState(models.TextChoices):
    """provisioningState of endpoints and workspaces (EndpointProvisioningState)."""

    # A PUT created the resource; a worker is bringing it up.
    CREATING = "Creating"
    # A PUT or PATCH changed a live resource; a worker is applying the change.
    UPDATING = "Updating"
    # A DELETE was accepted; the resource disappears when the worker finishes.
    DELETING = "Deleting"
    # The last operation finished and the resource matches its desired state.
    SUCCEEDED = "Succeeded"
    # The last operation failed; the operation's error says why.
    FAILED = "Failed"
    # The last operation was abandoned before it finished.
    CANCELED = "Canceled"


class DeploymentProvisioningState(models.TextChoices):
    """provisioningState of deployments: the endpoint states plus Scaling."""

    CREATING = "Creating"
    UPDATING = "Updating"
    # A PATCH changed sku.capacity only; replicas are being added or removed.
    SCALING = "Scaling"
    DELETING = "Deleting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


TERMINAL_STATES = frozenset({"Succeeded", "Failed", "Canceled"})
ACTIVE_STATES = frozenset({"Creating", "Updating", "Scaling", "Deleting"})


class OperationStatus(models.TextChoices):
    """Status of an asynchronous operation (the Azure-AsyncOperation resource)."""

    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


OPERATION_TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Canceled"})


class OperationKind(models.TextChoices):
    """What an operation does; picks the worker task that carries it out."""

    CREATE_OR_UPDATE_ENDPOINT = "CreateOrUpdateEndpoint"
    UPDATE_ENDPOINT = "UpdateEndpoint"
    DELETE_ENDPOINT = "DeleteEndpoint"
    CREATE_OR_UPDATE_DEPLOYMENT = "CreateOrUpdateDeployment"
    SCALE_DEPLOYMENT = "ScaleDeployment"
    UPDATE_DEPLOYMENT = "UpdateDeployment"
    DELETE_DEPLOYMENT = "DeleteDeployment"
    # Batch endpoints and deployments are written synchronously, and a cancel is recorded
    # at once: their operations are finished when they are answered (no task runs).
    WRITE_BATCH_RESOURCE = "WriteBatchResource"
    DELETE_BATCH_RESOURCE = "DeleteBatchResource"
    CANCEL_BATCH_JOB = "CancelBatchJob"


class AuthMode(models.TextChoices):
    AML_TOKEN = "AMLToken"
    KEY = "Key"
    AAD_TOKEN = "AADToken"


class EndpointComputeType(models.TextChoices):
    MANAGED = "Managed"
    KUBERNETES = "Kubernetes"
    AZURE_ML_COMPUTE = "AzureMLCompute"


class PublicNetworkAccess(models.TextChoices):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class KeyType(models.TextChoices):
    PRIMARY = "Primary"
    SECONDARY = "Secondary"


class ContainerType(models.TextChoices):
    STORAGE_INITIALIZER = "StorageInitializer"
    INFERENCE_SERVER = "InferenceServer"


class ListViewType(models.TextChoices):
    ACTIVE_ONLY = "ActiveOnly"
    ARCHIVED_ONLY = "ArchivedOnly"
    ALL = "All"


class ScaleAction(models.TextChoices):
    """What the autoscaler decided for a TargetUtilization deployment."""

    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    # More replicas were wanted, but the deployment is at maxInstances: not scaled.
    AT_MAX_INSTANCES = "AtMaxInstances"
