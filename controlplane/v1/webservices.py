"""SDK v1's web services over Weir's online endpoints: one model, two views.

An AKS service is an online endpoint with one deployment named after it; an AKSENDPOINT
is an online endpoint whose versions are its deployments. Both are the rows the v2 API shows
(they are created, changed and deleted through the same services, with the same checks);
``Service`` and ``ServiceVersion`` keep only what v2 has no field for. The v1 settings map
onto deployment settings:

- ``numReplicas`` -> ``sku.capacity``; ``autoScaler`` -> ``scaleSettings`` TargetUtilization;
- ``containerResourceRequirements`` (cores, GB) -> requests and limits (``0.5``, ``1Gi``);
- ``livenessProbeRequirements`` -> ``livenessProbe``; ``scoringTimeoutMs``,
  ``maxConcurrentRequestsPerContainer``, ``maxQueueWaitMs`` -> ``requestSettings``;
- ``authEnabled`` -> authMode Key, ``aadAuthEnabled`` (token auth) -> AMLToken;
- ``dataCollection.storageEnabled`` -> ``dataCollector`` with the request and response
  collections; ``appInsightsEnabled`` as is.

Traffic: each version asks for ``trafficPercentile``; the default version takes what the
others leave. The first version is the default and the Control version unless another says
so; Control or Treatment is kept and shown, and means nothing more to routing. A version
gets live traffic only once it is ready: the operation (``ServiceOperation``) sets the
endpoint's traffic after the deployments it started have succeeded.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

import jsonpatch
import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from controlplane import tasks
from controlplane.arm.errors import ArmError
from controlplane.blobstore import storage
from controlplane.blobstore.backends import blob_backend
from controlplane.blobstore.models import Blob
from controlplane.blobstore.paths import UnsafePath, check_blob_name
from controlplane.core import names, references
from controlplane.core.choices import KeyType, OperationStatus
from controlplane.core.choices import ProvisioningState as State
from controlplane.core.durations import parse_seconds
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Operation
from controlplane.core.quantities import parse_quantity
from controlplane.core.serializers.asset import CodeVersionSerializer, EnvironmentVersionSerializer
from controlplane.core.serializers.deployment import OnlineDeploymentSerializer
from controlplane.core.serializers.endpoint import OnlineEndpointSerializer, scoring_base
from controlplane.core.services import asset as asset_service
from controlplane.core.services import compute as compute_service
from controlplane.core.services import deployment as deployment_service
from controlplane.core.services import endpoint as endpoint_service
from controlplane.core.services import keys
from controlplane.core.states import IllegalTransition
from controlplane.v1 import services
from controlplane.v1.models import Service, ServiceOperation, ServiceVersion
from controlplane.v1.services import V1Error, bad_request

AKS, AKS_ENDPOINT = "AKS", "AKSENDPOINT"
CONTROL, TREATMENT = "Control", "Treatment"
# Set by the SDK for its own driver; Weir runs the entry script as v2 code.
SDK_VARIABLES = frozenset({"AZUREML_ENTRY_SCRIPT", "AZUREML_SOURCE_DIRECTORY"})
ARTIFACT_URL = "aml://artifact/"
ARTIFACT_FORM = "aml://artifact/{origin}/{container}/{path}"
# Where the source directories of v1 deployments are unpacked, by content hash.
SOURCE_ROOT = "v1-sources"
ADVANCE_TASK = "weir.advance_service_operation"
# v1's own default base image, for an environment that names none.
DEFAULT_BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
STATES = {
    State.SUCCEEDED: "Healthy",
    State.FAILED: "Failed",
    State.DELETING: "Deleting",
    State.CANCELED: "Failed",
}


def no_precondition(_etag) -> None:
    """v1 sends no If-Match."""


def not_found(name: str) -> V1Error:
    return V1Error(404, "WebserviceNotFound", f"Service '{name}' was not found.")


# -- reading a create request


@dataclass
class Version:
    """One version as a v1 request gives it, read into what Weir stores."""

    name: str
    deployment: dict  # the v2 deployment body (ARM shape)
    traffic_percentile: float | None
    is_default: bool | None
    version_type: str | None


@dataclass
class Plan:
    name: str
    compute_type: str
    endpoint: dict  # the v2 endpoint body (ARM shape), traffic left out
    versions: list[Version] = field(default_factory=list)
    namespace: str | None = None


def read_create(workspace, body, principal: str) -> Plan:
    """Check a POST services body and read it into v2 bodies; changes nothing (the validate
    calls run it too). Raises V1Error naming the field."""
    if not isinstance(body, dict):
        raise bad_request("A service is a JSON object.")
    name = body.get("name")
    if not isinstance(name, str):
        raise bad_request("A service needs a name.")
    check_name(name, "name")
    compute_type = body.get("computeType")
    if compute_type not in (AKS, AKS_ENDPOINT):
        raise bad_request(
            f"computeType '{compute_type}' cannot be deployed here: Weir runs AKS and "
            "AKSENDPOINT services, on an attached Kubernetes compute."
        )
    if endpoint_service.find(workspace, name) is not None:
        raise V1Error(409, "Conflict", f"A service named '{name}' already exists.")
    compute = compute_service.find(workspace, body.get("computeName") or "")
    if compute is None or compute.compute_type != "Kubernetes":
        raise bad_request(
            f"computeName '{body.get('computeName')}' names no attached Kubernetes compute "
            "in this workspace."
        )
    plan = Plan(
        name=name,
        compute_type=compute_type,
        endpoint=endpoint_body(workspace, body, compute.name),
        namespace=body.get("namespace"),
    )
    if compute_type == AKS:
        versions = {name: body}
    else:
        versions = body.get("versions")
        if not isinstance(versions, dict) or not versions:
            raise bad_request("An AKSENDPOINT is created with at least one version (versions).")
    for version_name, version in versions.items():
        plan.versions.append(read_version(workspace, version_name, version, principal))
    traffic_of(plan_versions(plan.versions))  # a sum over 100 is refused before anything
    return plan


def check_name(name: str, target: str) -> None:
    if not re.match(names.ENDPOINT.pattern, name):
        raise bad_request(f"'{name}' is not a valid {target}: {names.ENDPOINT.rule}.")


def endpoint_body(workspace, body: dict, compute: str) -> dict:
    return {
        "location": workspace.location,
        "tags": string_map(body.get("kvTags"), "kvTags"),
        "properties": {
            "authMode": auth_mode(body.get("authEnabled"), body.get("aadAuthEnabled")),
            "compute": compute,
            "description": body.get("description"),
            "properties": string_map(body.get("properties"), "properties"),
        },
    }


def auth_mode(key_auth, token_auth) -> str:
    """authEnabled (keys; on unless turned off, as on AKS) or aadAuthEnabled (tokens)."""
    if token_auth:
        if key_auth:
            raise bad_request("authEnabled and aadAuthEnabled cannot both be true.")
        return "AMLToken"
    if key_auth is False:
        raise bad_request(
            "Weir authenticates every scoring request: set authEnabled (keys) or "
            "aadAuthEnabled (tokens)."
        )
    return "Key"


def string_map(value, target: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{target} is a map of names to values.")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def read_version(workspace, name: str, body, principal: str) -> Version:
    if not isinstance(body, dict):
        raise bad_request(f"Version '{name}' is a JSON object.")
    check_name(name, "version name")
    percentile = body.get("trafficPercentile")
    if percentile is not None and (
        not isinstance(percentile, int | float) or not 0 <= percentile <= 100
    ):
        raise bad_request(f"versions.{name}.trafficPercentile is a number from 0 to 100.")
    version_type = body.get("type")
    if version_type not in (None, CONTROL, TREATMENT):
        raise bad_request(f"versions.{name}.type is Control or Treatment.")
    return Version(
        name=name,
        deployment=deployment_body(workspace, name, body, principal),
        traffic_percentile=percentile,
        is_default=body.get("isDefault"),
        version_type=version_type,
    )


def deployment_body(
    workspace, name: str, body: dict, principal: str, base: dict | None = None
) -> dict:
    """The v2 deployment body for a v1 version: ``base`` (the current body) with the v1
    settings laid over it."""
    deployment = {"location": workspace.location, "properties": {}}
    if base:
        deployment = {**base, "properties": dict(base.get("properties") or {})}
    props = deployment["properties"]
    props["endpointComputeType"] = "Kubernetes"
    deployment["tags"] = string_map(body.get("kvTags"), "kvTags")
    props["description"] = body.get("description")
    props["properties"] = string_map(body.get("properties"), "properties")
    request = body.get("environmentImageRequest")
    if request is not None or base is None:
        props.update(image_request(workspace, name, request, principal))
    replicas = body.get("numReplicas")
    scaler = body.get("autoScaler") or {}
    if scaler.get("autoscaleEnabled"):
        props["scaleSettings"] = {
            "scaleType": "TargetUtilization",
            "minInstances": scaler.get("minReplicas") or 1,
            "maxInstances": scaler.get("maxReplicas") or 10,
            "targetUtilizationPercentage": scaler.get("targetUtilization") or 70,
            "pollingInterval": f"PT{scaler.get('refreshPeriodInSeconds') or 1}S",
        }
        replicas = replicas or props["scaleSettings"]["minInstances"]
    else:
        props["scaleSettings"] = {"scaleType": "Default"}
    deployment["sku"] = {"name": "Default", "capacity": replicas or 1}
    requirements = body.get("containerResourceRequirements") or {}
    props["containerResourceRequirements"] = {
        "containerResourceRequests": resources(
            requirements.get("cpu"), requirements.get("memoryInGB"), requirements.get("gpu")
        ),
        "containerResourceLimits": resources(
            requirements.get("cpuLimit"), requirements.get("memoryInGBLimit"), None
        ),
    }
    probe = body.get("livenessProbeRequirements") or {}
    props["livenessProbe"] = {
        "period": f"PT{given(probe, 'periodSeconds', 10)}S",
        "initialDelay": f"PT{given(probe, 'initialDelaySeconds', 310)}S",
        "timeout": f"PT{given(probe, 'timeoutSeconds', 2)}S",
        "failureThreshold": given(probe, "failureThreshold", 3),
        "successThreshold": given(probe, "successThreshold", 1),
    }
    props["requestSettings"] = {
        "requestTimeout": seconds(given(body, "scoringTimeoutMs", 60000)),
        "maxConcurrentRequestsPerInstance": given(body, "maxConcurrentRequestsPerContainer", 1),
        "maxQueueWait": seconds(given(body, "maxQueueWaitMs", 500)),
    }
    props["appInsightsEnabled"] = bool(body.get("appInsightsEnabled"))
    collection = (body.get("dataCollection") or {}).get("storageEnabled")
    props["dataCollector"] = (
        {
            "collections": {
                "request": {"dataCollectionMode": "Enabled"},
                "response": {"dataCollectionMode": "Enabled"},
            }
        }
        if collection
        else None
    )
    return deployment


def given(body: dict, key: str, default):
    """A v1 setting, or the default AKS gives one left out (None)."""
    value = body.get(key)
    return default if value is None else value


def seconds(milliseconds) -> str:
    if not isinstance(milliseconds, int | float) or milliseconds <= 0:
        raise bad_request("Times in milliseconds are positive numbers.")
    return f"PT{milliseconds / 1000:g}S"


def resources(cpu, memory_gb, gpu) -> dict | None:
    quantities = {}
    if cpu is not None:
        quantities["cpu"] = f"{cpu:g}" if isinstance(cpu, int | float) else str(cpu)
    if memory_gb is not None:
        if not isinstance(memory_gb, int | float):
            raise bad_request("memoryInGB is a number.")
        quantities["memory"] = f"{memory_gb:g}Gi"
    if gpu:
        quantities["gpu"] = str(gpu)
    return quantities or None


# -- the image request: model, code and environment


def image_request(workspace, version_name: str, request, principal: str) -> dict:
    """The deployment's model, code and environment from an environmentImageRequest: the
    model it names, the source directory (or entry script) it uploaded as code, and its
    environment registered as a Weir environment version."""
    if not isinstance(request, dict):
        raise bad_request(f"Version '{version_name}' needs an environmentImageRequest.")
    model_ids = request.get("modelIds") or []
    if len(model_ids) != 1:
        raise bad_request(
            "Weir deploys one model per version (environmentImageRequest.modelIds has "
            f"{len(model_ids)})."
        )
    model = services.find_model(workspace, model_ids[0])
    if model is None:
        raise V1Error(404, "ModelNotFound", f"Model '{model_ids[0]}' was not found.")
    environment = request.get("environment")
    if not isinstance(environment, dict):
        raise bad_request("environmentImageRequest.environment is required.")
    variables = environment.get("environmentVariables") or {}
    entry_script = variables.get("AZUREML_ENTRY_SCRIPT")
    source_directory = variables.get("AZUREML_SOURCE_DIRECTORY")
    assets = [a for a in request.get("assets") or [] if isinstance(a, dict)]
    driver = request.get("driverProgram")
    sources = [a for a in assets if a.get("id") != driver]
    if not entry_script or len(sources) != 1:
        raise bad_request(
            "environmentImageRequest names its entry script (AZUREML_ENTRY_SCRIPT) and one "
            "source asset besides the driver program."
        )
    code_id, scoring_script = code_from(
        workspace, sources[0], entry_script, source_directory, principal
    )
    return {
        "model": model.arm_id,
        "codeConfiguration": {"codeId": code_id, "scoringScript": scoring_script},
        "environmentId": environment_from(workspace, environment, principal),
        "environmentVariables": {
            str(k): str(v) for k, v in variables.items() if k not in SDK_VARIABLES
        },
    }


def artifact_blob(workspace, url) -> Blob:
    if not isinstance(url, str) or not url.startswith(ARTIFACT_URL):
        raise bad_request(f"An asset url reads {ARTIFACT_FORM}, not {url}.")
    parts = unquote(url.removeprefix(ARTIFACT_URL)).split("/", 2)
    if len(parts) != 3:
        raise bad_request(f"An asset url reads {ARTIFACT_FORM}, not {url}.")
    name = services.artifact_blob_name(*parts)
    account = storage.account_for(workspace)
    blob = Blob.objects.filter(
        account=account, container=account.default_container, name=name
    ).first()
    if blob is None:
        raise bad_request(f"No artifact was uploaded at {url}.")
    return blob


def code_from(
    workspace, asset: dict, entry_script: str, source_directory: str | None, principal: str
):
    """The source asset as a code version, by content: a tar.gz (unpack: the source
    directory, whose top folder becomes the code's root) or a single entry script."""
    blob = artifact_blob(workspace, asset.get("url"))
    with blob_backend().open(blob.digest) as handle:
        content = handle.read()
    digest = hashlib.sha256(content).hexdigest()
    if asset.get("unpack"):
        files = unpacked(content, source_directory)
        script = entry_script
        if source_directory and script.startswith(source_directory + "/"):
            script = script[len(source_directory) + 1 :]
    else:
        script = entry_script.rsplit("/", 1)[-1]
        files = {script: content}
    account = storage.account_for(workspace)
    directory = f"{SOURCE_ROOT}/{digest}"
    for path, data in files.items():
        storage.write_blob(account, account.default_container, f"{directory}/{path}", [data])
    version = register(
        CodeVersionSerializer,
        asset_service.CODE,
        workspace,
        "v1-source",
        digest[:16],
        {"properties": {"codeUri": f"azureml://datastores/workspaceblobstore/paths/{directory}/"}},
        principal,
    )
    return version.arm_id, script


def unpacked(content: bytes, top: str | None) -> dict[str, bytes]:
    """The regular files of a tar.gz, by path, without the top folder ``top``."""
    files = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as archive:
            total = 0
            for member in archive:
                if not member.isfile():
                    continue
                path = member.name.lstrip("./")
                if top and path.startswith(top + "/"):
                    path = path[len(top) + 1 :]
                try:
                    check_blob_name(f"{SOURCE_ROOT}/{path}")
                except UnsafePath as exc:
                    raise bad_request(f"The source archive holds an unsafe path: {exc}") from None
                total += member.size
                if total > settings.WEIR_BLOB_MAX_SIZE:
                    raise bad_request("The source archive is larger than the blob store takes.")
                files[path] = archive.extractfile(member).read()
    except (tarfile.TarError, gzip.BadGzipFile, EOFError):
        raise bad_request("The source asset is not a tar.gz archive.") from None
    return files


def environment_from(workspace, environment: dict, principal: str) -> str:
    """A v1 Environment as a Weir environment version, named by its content."""
    python = environment.get("python") or {}
    docker = environment.get("docker") or {}
    image = docker.get("baseImage") or DEFAULT_BASE_IMAGE
    conda = python.get("condaDependencies")
    conda_file = None
    if conda and not python.get("userManagedDependencies"):
        conda_file = yaml.safe_dump(conda, sort_keys=False)
    identity = hashlib.sha256(f"{image}\n{conda_file}".encode()).hexdigest()[:16]
    name = environment.get("name") or "v1-environment"
    if not re.match(names.ASSET.pattern, name):
        name = "v1-environment"
    version = register(
        EnvironmentVersionSerializer,
        asset_service.ENVIRONMENT,
        workspace,
        name,
        identity,
        {"properties": {"image": image, "condaFile": conda_file}},
        principal,
    )
    return version.arm_id


def register(serializer_class, kind, workspace, name: str, version: str, body: dict, principal):
    existing = asset_service.find_container(kind, workspace, name)
    found = existing and asset_service.find_version(existing, version)
    if found:
        return found
    serializer = serializer_class(data=body, context={"workspace": workspace})
    serializer.is_valid(raise_exception=True)
    row, _, _ = asset_service.put_version(
        kind, workspace, name, version, serializer.validated_data, principal, no_precondition
    )
    return row


# -- traffic


@dataclass
class VersionState:
    name: str
    traffic_percentile: float
    is_default: bool
    version_type: str


def plan_versions(versions: list[Version], existing: list[VersionState] = ()) -> list[VersionState]:
    """The versions' v1 fields after adding ``versions`` to ``existing``: the first version
    is the default and the Control one unless one is marked."""
    states = list(existing)
    for version in versions:
        states.append(
            VersionState(
                version.name,
                version.traffic_percentile or 0.0,
                bool(version.is_default),
                version.version_type or TREATMENT,
            )
        )
    return normalized(states)


def normalized(states: list[VersionState]) -> list[VersionState]:
    if states and not any(s.is_default for s in states):
        states[0].is_default = True
    defaults = [s for s in states if s.is_default]
    for extra in defaults[1:]:  # the last one marked wins, as the SDK unmarks the others
        extra.is_default = False
    if states and not any(s.version_type == CONTROL for s in states):
        next(s for s in states if s.is_default).version_type = CONTROL
    return states


def traffic_of(states: list[VersionState]) -> dict[str, int]:
    """The endpoint's traffic: each version its percentile, the default what is left."""
    traffic = {}
    for state in states:
        if state.is_default:
            continue
        percent = state.traffic_percentile
        if percent != int(percent):
            raise bad_request(
                f"versions.{state.name}.trafficPercentile is {percent}: Weir splits traffic in "
                "whole percents."
            )
        if percent:
            traffic[state.name] = int(percent)
    total = sum(traffic.values())
    if total > 100:
        raise bad_request(
            f"The versions' trafficPercentile add up to {total}, over 100 (the default version "
            "takes what the others leave)."
        )
    default = next((s for s in states if s.is_default), None)
    if default is not None and total < 100:
        traffic[default.name] = 100 - total
    return traffic


# -- writes


def validated_endpoint(workspace, body: dict, deployment_names) -> dict:
    serializer = OnlineEndpointSerializer(
        data=body, context={"workspace": workspace, "deployment_names": list(deployment_names)}
    )
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def validated_deployment(workspace, body: dict) -> dict:
    serializer = OnlineDeploymentSerializer(data=body, context={"workspace": workspace})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def create(workspace, body, principal: str) -> ServiceOperation:
    """POST services: the endpoint and its deployments, then traffic once they are ready."""
    with transaction.atomic():
        plan = read_create(workspace, body, principal)
        data = validated_endpoint(workspace, plan.endpoint, [])
        endpoint, _, endpoint_operation = endpoint_service.create_or_update(
            workspace, plan.name, data, principal, no_precondition
        )
        Service.objects.create(
            endpoint=endpoint, compute_type=plan.compute_type, namespace=plan.namespace
        )
        started = [endpoint_operation]
        states = {s.name: s for s in plan_versions(plan.versions)}
        for version in plan.versions:
            started.append(add_version(endpoint, version, states[version.name], principal))
        traffic = traffic_of(list(states.values()))
        return start(workspace, plan.name, "Create", started, traffic, principal)


def add_version(endpoint, version: Version, state: VersionState, principal: str) -> Operation:
    data = validated_deployment(endpoint.workspace, version.deployment)
    deployment, _, operation = deployment_service.create_or_update(
        endpoint, version.name, data, principal, no_precondition
    )
    ServiceVersion.objects.update_or_create(
        deployment=deployment,
        defaults={
            "traffic_percentile": state.traffic_percentile,
            "is_default": state.is_default,
            "version_type": state.version_type,
        },
    )
    return operation


def start(workspace, name, kind, started, traffic, principal: str) -> ServiceOperation:
    operation = ServiceOperation.objects.create(
        workspace=workspace,
        created_by=principal,
        service_name=name,
        operation_type=kind,
        waits_for=[str(op.pk) for op in started if op is not None],
        then_traffic=traffic,
    )
    transaction.on_commit(lambda: advance_later(operation.pk, 0))
    return operation


def finished(workspace, name: str, kind: str, principal: str) -> ServiceOperation:
    return ServiceOperation.objects.create(
        workspace=workspace,
        created_by=principal,
        service_name=name,
        operation_type=kind,
        state="Succeeded",
        ended_at=timezone.now(),
    )


def advance_later(operation_id, countdown: float) -> None:
    try:
        tasks.app.send_task(
            ADVANCE_TASK, kwargs={"operation_id": str(operation_id)}, countdown=countdown
        )
    except Exception:  # noqa: BLE001 - the reconciler re-drives it
        pass


def delete(endpoint: OnlineEndpoint, principal: str) -> ServiceOperation:
    operation = endpoint_service.delete(endpoint, principal, no_precondition)
    return start(endpoint.workspace, endpoint.name, "Delete", [operation], None, principal)


def regenerate_key(endpoint: OnlineEndpoint, body, principal: str) -> ServiceOperation:
    body = body if isinstance(body, dict) else {}
    key_type = str(body.get("keyType") or "").capitalize()
    if key_type not in (KeyType.PRIMARY, KeyType.SECONDARY):
        raise bad_request("keyType is Primary or Secondary.")
    endpoint_service.regenerate_key(endpoint, key_type, body.get("keyValue"))
    return finished(endpoint.workspace, endpoint.name, "RegenerateKeys", principal)


def token(endpoint: OnlineEndpoint, principal: str) -> dict:
    if endpoint.auth_mode != "AMLToken":
        raise bad_request(f"Service '{endpoint.name}' does not use token auth (aadAuthEnabled).")
    issued = keys.issue_token(endpoint, principal)
    return {
        "accessToken": issued["accessToken"],
        "tokenType": issued["tokenType"],
        "expiryOn": issued["expiryTimeUtc"],
        "refreshAfter": issued["refreshAfterTimeUtc"],
    }


# -- PATCH: a JSON patch to the service's v1 document


def patch(endpoint: OnlineEndpoint, patch_list, principal: str) -> ServiceOperation:
    with transaction.atomic():
        endpoint = OnlineEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        change = read_patch(endpoint, patch_list, principal)
        started = []
        if change.endpoint_changed:
            data = validated_endpoint(
                endpoint.workspace, change.endpoint_body, change.deployment_names
            )
            started.append(
                endpoint_service.create_or_update(
                    endpoint.workspace, endpoint.name, data, principal, no_precondition
                )[2]
            )
        states = {s.name: s for s in change.states}
        for version in change.added + change.changed:
            started.append(add_version(endpoint, version, states[version.name], principal))
        for name, state in states.items():
            ServiceVersion.objects.filter(
                deployment__endpoint=endpoint, deployment__name__iexact=name
            ).update(
                traffic_percentile=state.traffic_percentile,
                is_default=state.is_default,
                version_type=state.version_type,
            )
        traffic = change.traffic
        if change.removed:
            # Traffic leaves the removed versions now; they go once it has.
            data = validated_endpoint(
                endpoint.workspace,
                {**current_endpoint_body(endpoint), **traffic_body(endpoint, change.traffic_after)},
                change.deployment_names + change.removed,
            )
            started.append(
                endpoint_service.create_or_update(
                    endpoint.workspace, endpoint.name, data, principal, no_precondition
                )[2]
            )
            endpoint.refresh_from_db()
            for name in change.removed:
                deployment = deployment_service.find(endpoint, name)
                started.append(deployment_service.delete(deployment, principal, no_precondition))
            traffic = None
        return start(endpoint.workspace, endpoint.name, "Update", started, traffic, principal)


@dataclass
class Change:
    endpoint_body: dict
    endpoint_changed: bool
    deployment_names: list[str]
    added: list[Version]
    changed: list[Version]
    removed: list[str]
    states: list[VersionState]
    # The traffic to set once the started deployments are ready (None: nothing to wait for).
    traffic: dict | None
    # The traffic once the change is done, whatever sets it.
    traffic_after: dict


def read_patch(endpoint: OnlineEndpoint, patch_list, principal: str) -> Change:
    """Apply the patch to the service's v1 document and read what changed; changes
    nothing. Raises V1Error for a path the document does not have."""
    if not isinstance(patch_list, list) or not patch_list:
        raise bad_request("An update is a JSON patch: a list of operations.")
    service = getattr(endpoint, "v1", None)
    is_endpoint = service is None or service.compute_type == AKS_ENDPOINT
    before = document(endpoint)
    for op in patch_list:
        # JSON patch's add replaces a member that exists; a version is added once.
        path = op.get("path") if isinstance(op, dict) else None
        if isinstance(path, str) and op.get("op") == "add" and path.count("/") == 2:
            name = path.rsplit("/", 1)[1]
            if path.startswith("/versions/") and name in before.get("versions", {}):
                raise V1Error(
                    409, "Conflict", f"Version '{name}' already exists in '{endpoint.name}'."
                )
    try:
        after = jsonpatch.JsonPatch(patch_list).apply(before)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
        raise bad_request(
            f"The JSON patch does not apply to service '{endpoint.name}': {exc}"
        ) from None
    deployments = {d.name: d for d in endpoint.deployments.all()}
    if is_endpoint:
        versions_before, versions_after = before["versions"], after.get("versions")
        if not isinstance(versions_after, dict):
            raise bad_request("/versions is a map of version names to versions.")
    else:
        versions_before = {endpoint.name: before}
        versions_after = {endpoint.name: after}
    workspace = endpoint.workspace
    body = endpoint_body(workspace, after, endpoint.compute)
    current = current_endpoint_body(endpoint)
    endpoint_changed = body["tags"] != current["tags"] or any(
        body["properties"][k] != current["properties"].get(k)
        for k in ("authMode", "description", "properties")
    )
    new_body = {**current, "tags": body["tags"]}
    new_body["properties"] = {**current["properties"], **body["properties"]}
    added, changed, states = [], [], []
    for name, version in versions_after.items():
        if name not in versions_before:
            read = read_version(workspace, name, version, principal)
            added.append(read)
        else:
            old = versions_before[name]
            if not isinstance(version, dict):
                raise bad_request(f"/versions/{name} is a version.")
            deployment_fields = {k: v for k, v in version.items() if k not in VERSION_ONLY}
            if deployment_fields != {k: v for k, v in old.items() if k not in VERSION_ONLY}:
                base = current_deployment_body(deployments[name])
                if version.get("environmentImageRequest") == old.get("environmentImageRequest"):
                    version = {k: v for k, v in version.items() if k != "environmentImageRequest"}
                changed.append(
                    Version(
                        name,
                        deployment_body(workspace, name, version, principal, base),
                        version.get("trafficPercentile"),
                        version.get("isDefault"),
                        version.get("type"),
                    )
                )
        states.append(
            VersionState(
                name,
                version.get("trafficPercentile") or 0.0,
                bool(version.get("isDefault")),
                version.get("type") or TREATMENT,
            )
        )
    for state in states:
        if state.version_type not in (CONTROL, TREATMENT):
            raise bad_request(f"versions.{state.name}.type is Control or Treatment.")
    removed = [name for name in versions_before if name not in versions_after]
    if removed and (added or changed):
        raise bad_request("Remove versions in an update of their own.")
    if len(versions_after) > settings.WEIR_MAX_DEPLOYMENTS_PER_ENDPOINT:
        raise bad_request(
            f"A service has at most {settings.WEIR_MAX_DEPLOYMENTS_PER_ENDPOINT} versions."
        )
    states = normalized(states)
    traffic = traffic_after = traffic_of(states) if is_endpoint else {endpoint.name: 100}
    if traffic == endpoint.traffic and not added:
        traffic = None
    if traffic is not None and not (added or changed or removed):
        # Only traffic moves: the endpoint's update carries it, now.
        new_body["properties"] = {**new_body["properties"], "traffic": traffic}
        endpoint_changed, traffic = True, None
    return Change(
        endpoint_body=new_body,
        endpoint_changed=endpoint_changed,
        deployment_names=[n for n in versions_after if n not in [v.name for v in added]],
        added=added,
        changed=changed,
        removed=removed,
        states=states,
        traffic=traffic,
        traffic_after=traffic_after,
    )


def document(endpoint: OnlineEndpoint) -> dict:
    """The service as v1 shows it, in plain JSON types, for a patch to apply to."""
    return json.loads(json.dumps(dto(endpoint)))


# Version fields that are the endpoint's business (traffic), not the deployment's.
VERSION_ONLY = frozenset({"trafficPercentile", "isDefault", "type"})


def current_endpoint_body(endpoint: OnlineEndpoint) -> dict:
    data = OnlineEndpointSerializer(endpoint).data
    properties = {
        k: v
        for k, v in data["properties"].items()
        if k in ("authMode", "compute", "description", "properties", "traffic", "mirrorTraffic")
    }
    return {"location": data["location"], "tags": data["tags"], "properties": properties}


def traffic_body(endpoint: OnlineEndpoint, traffic: dict) -> dict:
    current = current_endpoint_body(endpoint)
    return {"properties": {**current["properties"], "traffic": traffic}}


def current_deployment_body(deployment: OnlineDeployment) -> dict:
    data = OnlineDeploymentSerializer(deployment).data
    return {k: data[k] for k in ("location", "tags", "sku", "properties") if k in data}


# -- advancing an operation (a worker)


def advance(operation_id) -> float | None:
    """Move the operation on: fail it when one of its Weir operations failed, set its
    traffic once they have all succeeded, finish it after. Returns seconds until it should
    be looked at again, or None when it has ended."""
    with transaction.atomic():
        operation = ServiceOperation.objects.select_for_update().filter(pk=operation_id).first()
        if operation is None or operation.state != "Running":
            return None
        waited = {str(op.pk): op for op in Operation.objects.filter(pk__in=operation.waits_for)}
        for op_id in operation.waits_for:
            op = waited.get(op_id)
            if op is None or op.status in (OperationStatus.FAILED, OperationStatus.CANCELED):
                error = (op.error if op else None) or {
                    "code": "OperationFailed",
                    "message": f"Operation {op_id} did not succeed.",
                }
                end(operation, "Failed", error)
                return None
        if any(op.status == OperationStatus.IN_PROGRESS for op in waited.values()):
            operation.save(update_fields=["updated_at"])
            return 2.0
        if operation.then_traffic is not None:
            endpoint = endpoint_service.find(operation.workspace, operation.service_name)
            if endpoint is None:
                end(operation, "Failed", {"code": "NotFound", "message": "The service is gone."})
                return None
            try:
                data = validated_endpoint(
                    endpoint.workspace,
                    traffic_body(endpoint, operation.then_traffic)
                    | {
                        "location": endpoint.location,
                        "tags": endpoint.tags,
                    },
                    endpoint.deployments.values_list("name", flat=True),
                )
                _, _, started = endpoint_service.create_or_update(
                    endpoint.workspace, endpoint.name, data, operation.created_by, no_precondition
                )
            except (IllegalTransition, ArmError, ValidationError) as exc:
                if isinstance(exc, IllegalTransition) or getattr(exc, "status_code", 0) == 409:
                    # The endpoint is busy with another change: try again shortly.
                    operation.save(update_fields=["updated_at"])
                    return 2.0
                # The traffic can no longer be set (a version went away meanwhile).
                end(operation, "Failed", {"code": "TrafficNotSet", "message": str(exc)})
                return None
            operation.then_traffic = None
            if started is not None:
                operation.waits_for = [*operation.waits_for, str(started.pk)]
            operation.save(update_fields=["then_traffic", "waits_for", "updated_at"])
            return 1.0
        end(operation, "Succeeded", None)
        return None


def end(operation: ServiceOperation, state: str, error) -> None:
    operation.state, operation.error, operation.ended_at = state, error, timezone.now()
    operation.save(update_fields=["state", "error", "ended_at", "updated_at"])


def stale_operations(seconds: float):
    cutoff = timezone.now() - timezone.timedelta(seconds=seconds)
    return ServiceOperation.objects.filter(state="Running", updated_at__lt=cutoff)


# -- the v1 view of an endpoint


def operation_dto(operation: ServiceOperation, mms_base: str) -> dict:
    return {
        "id": str(operation.pk),
        "operationType": operation.operation_type,
        "state": operation.state,
        "error": operation.error,
        "createdTime": operation.created_at.isoformat(),
        "endTime": operation.ended_at.isoformat() if operation.ended_at else None,
        "resourceLocation": f"{mms_base}/services/{operation.service_name}",
    }


def service_uri(endpoint: OnlineEndpoint, version: str | None = None) -> str:
    path = f"/api/v1/service/{endpoint.name}"
    if version:
        path += f"/{version}"
    return f"{scoring_base(endpoint)}{path}/score"


def dto(endpoint: OnlineEndpoint) -> dict:
    """The service GET (``?expand=true``): every key the SDK's _initialize reads."""
    service = getattr(endpoint, "v1", None)
    if service is not None and service.compute_type == AKS:
        deployment = endpoint.deployments.first()
        body = version_dto(endpoint, deployment, AKS) if deployment else common(endpoint, AKS)
        body.update(name=endpoint.name, scoringUri=service_uri(endpoint))
        body.update(state=state_of(endpoint, [deployment] if deployment else []))
        return body
    body = common(endpoint, AKS_ENDPOINT)
    deployments = list(endpoint.deployments.all().order_by("created_at"))
    body["versions"] = {d.name: version_dto(endpoint, d, AKS) for d in deployments}
    body["state"] = state_of(endpoint, deployments)
    return body


def common(endpoint: OnlineEndpoint, compute_type: str) -> dict:
    service = getattr(endpoint, "v1", None)
    return {
        "name": endpoint.name,
        "computeType": compute_type,
        "computeName": (endpoint.compute or "").rsplit("/", 1)[-1] or None,
        "createdTime": endpoint.created_at.isoformat(),
        "updatedTime": endpoint.modified_at.isoformat(),
        "createdBy": {"userName": endpoint.created_by},
        "description": endpoint.description,
        "kvTags": endpoint.tags,
        "properties": endpoint.properties,
        "state": STATES.get(endpoint.provisioning_state, "Transitioning"),
        "error": None,
        "authEnabled": endpoint.auth_mode == "Key",
        "aadAuthEnabled": endpoint.auth_mode == "AMLToken",
        "appInsightsEnabled": False,
        "scoringUri": service_uri(endpoint),
        "namespace": service.namespace if service else None,
    }


def state_of(endpoint, deployments) -> str:
    states = [endpoint.provisioning_state] + [d.provisioning_state for d in deployments]
    if State.DELETING in states:
        return "Deleting"
    if State.FAILED in states:
        return "Failed"
    if all(s == State.SUCCEEDED for s in states):
        return "Healthy"
    return "Transitioning"


def version_dto(endpoint: OnlineEndpoint, deployment: OnlineDeployment, compute_type) -> dict:
    body = common(endpoint, compute_type)
    version = getattr(deployment, "v1", None)
    traffic = endpoint.traffic.get(deployment.name, 0)
    scale = deployment.scale_settings or {}
    autoscaled = scale.get("scaleType") == "TargetUtilization"
    requests = (deployment.container_resource_requirements or {}).get(
        "containerResourceRequests"
    ) or {}
    limits = (deployment.container_resource_requirements or {}).get("containerResourceLimits") or {}
    probe = deployment.liveness_probe or {}
    request_settings = deployment.request_settings or {}
    collections = (deployment.data_collector or {}).get("collections") or {}
    model = model_of(endpoint.workspace, deployment.model)
    error = None
    if deployment.provisioning_state == State.FAILED:
        failed = deployment.operations.filter(status=OperationStatus.FAILED).order_by("-started_at")
        error = failed.values_list("error", flat=True).first()
    body.update(
        name=deployment.name,
        createdTime=deployment.created_at.isoformat(),
        updatedTime=deployment.modified_at.isoformat(),
        createdBy={"userName": deployment.created_by},
        description=deployment.description,
        kvTags=deployment.tags,
        properties=deployment.properties,
        state=state_of(endpoint, [deployment]),
        error=error,
        appInsightsEnabled=deployment.app_insights_enabled,
        scoringUri=service_uri(endpoint, deployment.name),
        trafficPercentile=float(version.traffic_percentile if version else traffic),
        isDefault=bool(version.is_default) if version else False,
        type=version.version_type if version else TREATMENT,
        numReplicas=deployment.instance_count,
        autoScaler={
            "autoscaleEnabled": autoscaled,
            "minReplicas": scale.get("minInstances", 1) if autoscaled else 1,
            "maxReplicas": scale.get("maxInstances", 10) if autoscaled else 10,
            "refreshPeriodInSeconds": int(seconds_of(scale.get("pollingInterval"), 1)),
            "targetUtilization": scale.get("targetUtilizationPercentage", 70),
        },
        containerResourceRequirements={
            "cpu": number(requests.get("cpu")),
            "cpuLimit": number(limits.get("cpu")),
            "memoryInGB": gigabytes(requests.get("memory")),
            "memoryInGBLimit": gigabytes(limits.get("memory")),
            "gpu": int(number(requests.get("gpu")) or 0),
        },
        livenessProbeRequirements={
            "periodSeconds": int(seconds_of(probe.get("period"), 10)),
            "initialDelaySeconds": int(seconds_of(probe.get("initialDelay"), 0)),
            "timeoutSeconds": int(seconds_of(probe.get("timeout"), 2)),
            "failureThreshold": probe.get("failureThreshold", 30),
            "successThreshold": probe.get("successThreshold", 1),
        },
        dataCollection={
            "eventHubEnabled": False,
            "storageEnabled": any(
                (c or {}).get("dataCollectionMode") == "Enabled" for c in collections.values()
            ),
        },
        maxConcurrentRequestsPerContainer=request_settings.get(
            "maxConcurrentRequestsPerInstance", 1
        ),
        maxQueueWaitMs=int(seconds_of(request_settings.get("maxQueueWait"), 0.5) * 1000),
        scoringTimeoutMs=int(seconds_of(request_settings.get("requestTimeout"), 5) * 1000),
        models=[services.model_dto(model)] if model else [],
        deploymentStatus={
            "desiredReplicas": deployment.instance_count,
            "availableReplicas": len((deployment.route or {}).get("replicas") or []),
        },
    )
    return body


def model_of(workspace, reference: str | None):
    if not reference:
        return None
    try:
        return references.resolve(workspace, reference, "models")
    except ValueError:
        return None


def seconds_of(duration, default: float) -> float:
    try:
        return parse_seconds(duration) if duration else default
    except ValueError:
        return default


def number(quantity) -> float | None:
    if quantity is None:
        return None
    try:
        return float(parse_quantity(str(quantity)))
    except (ValueError, TypeError):
        return None


def gigabytes(quantity) -> float | None:
    value = number(quantity)
    return None if value is None else round(value / 2**30, 3)


# -- the validate calls, lookups, the compute


class _DryRun(Exception):
    """Rolls back what a check wrote (assets read from artifacts)."""


def validate(workspace, check: str, kwargs: dict, body, principal: str) -> None:
    """The checks of a change, without the change: raises V1Error (or the v2 serializers'
    errors) for what the change itself would refuse."""
    if check == "name":
        if endpoint_service.find(workspace, kwargs["name"]) is not None:
            raise V1Error(409, "Conflict", f"A service named '{kwargs['name']}' already exists.")
        return
    if check != "request" or not isinstance(body, dict):
        return
    try:
        with transaction.atomic():
            if body.get("type") == "Create":
                read_create(workspace, body.get("createRequest"), principal)
            elif body.get("type") == "Update":
                endpoint = endpoint_service.find(workspace, body.get("serviceName") or "")
                if endpoint is None:
                    raise not_found(body.get("serviceName"))
                read_patch(endpoint, body.get("updateRequest"), principal)
            raise _DryRun
    except _DryRun:
        pass


def uuid_or_none(text: str):
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def default_deployment(endpoint: OnlineEndpoint) -> OnlineDeployment | None:
    deployments = list(endpoint.deployments.select_related("v1").order_by("created_at"))
    marked = [d for d in deployments if getattr(d, "v1", None) and d.v1.is_default]
    return (marked or deployments or [None])[0]


def compute_dto(compute) -> dict:
    """An attached Kubernetes compute in the shape AksCompute reads (computeType AKS)."""
    return {
        "id": compute.arm_id,
        "name": compute.name,
        "type": "Microsoft.MachineLearningServices/workspaces/computes",
        "location": compute.location,
        "tags": compute.tags,
        "properties": {
            "computeType": "AKS",
            "computeLocation": compute.location,
            "description": compute.description,
            "resourceId": compute.resource_id or None,
            "provisioningState": compute.provisioning_state,
            "provisioningErrors": None,
            "isAttachedCompute": True,
            "createdOn": compute.created_at.isoformat(),
            "modifiedOn": compute.modified_at.isoformat(),
            "properties": {
                "agentCount": None,
                "agentVmSize": None,
                "clusterFqdn": None,
                "clusterPurpose": "FastProd",
                "loadBalancerType": "PublicIp",
                "loadBalancerSubnet": None,
                "sslConfiguration": None,
                "systemServices": None,
            },
        },
    }
