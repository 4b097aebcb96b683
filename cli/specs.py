"""Azure ML CLI v2 YAML files (managedOnlineEndpoint, managedOnlineDeployment,
kubernetesOnlineDeployment, model, environment, code) to ARM bodies, and ARM resources back
to the snake_case objects ``az ml`` prints.

Keys follow Azure's schemas; an unknown key is an error naming the key and the file, before
anything is sent. Durations in YAML are seconds (probes, polling_interval) or milliseconds
(request_settings), as in Azure's schemas; ARM takes ISO 8601.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cli.errors import CliError

ENDPOINT_KEYS = {
    "$schema",
    "name",
    "description",
    "tags",
    "auth_mode",
    "identity",
    "traffic",
    "mirror_traffic",
    "public_network_access",
    "properties",
    "kind",
    "compute",
    "location",
}
PROBE_KEYS = {"initial_delay", "period", "timeout", "success_threshold", "failure_threshold"}
DEPLOYMENT_KEYS = {
    "$schema": None,
    "name": None,
    "endpoint_name": None,
    "type": None,
    "description": None,
    "tags": None,
    "properties": None,
    "model": None,
    "model_mount_path": None,
    "code_configuration": {"code", "scoring_script"},
    "environment": None,
    "environment_variables": None,
    "instance_type": None,
    "instance_count": None,
    "app_insights_enabled": None,
    "egress_public_network_access": None,
    "data_collector": None,
    "scale_settings": {
        "type",
        "min_instances",
        "max_instances",
        "polling_interval",
        "target_utilization_percentage",
    },
    "request_settings": {
        "request_timeout_ms",
        "max_concurrent_requests_per_instance",
        "max_queue_wait_ms",
    },
    "liveness_probe": PROBE_KEYS,
    "readiness_probe": PROBE_KEYS,
    "resources": {"requests", "limits"},
}
MODEL_KEYS = {"$schema", "name", "version", "path", "type", "description", "tags", "properties"}
ENVIRONMENT_KEYS = {
    "$schema",
    "name",
    "version",
    "image",
    "conda_file",
    "build",
    "description",
    "tags",
    "os_type",
    "inference_config",
    "properties",
}
CODE_KEYS = {"$schema", "name", "version", "path", "description", "tags", "properties"}
AUTH_MODES = {"key": "Key", "aml_token": "AMLToken", "aad_token": "AADToken"}
# Azure's rules for deployment names (3-32 characters, a letter first, letters, digits, -).
DEPLOYMENT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{2,31}$")
ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,31}$")


class Spec(dict):
    """A YAML document, remembering its file (relative paths resolve against its folder)."""

    def __init__(self, data: dict, source: Path | None):
        super().__init__(data)
        self.source = source

    @property
    def base(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def where(self) -> str:
        return f" in {self.source}" if self.source else ""


def load(file: str | None, overrides: list[str] | None = None, **fields) -> Spec:
    """The YAML ``file`` (if any), ``--set key=value`` overrides applied, then the
    ``fields`` given as options (those that are not None)."""
    data: dict = {}
    source = None
    if file:
        source = Path(file)
        try:
            data = yaml.safe_load(source.read_text()) or {}
        except OSError as exc:
            raise CliError(f"cannot read {file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise CliError(f"{file} is not valid YAML: {exc}".splitlines()[0]) from None
        if not isinstance(data, dict):
            raise CliError(f"{file} must hold a mapping of keys")
    spec = Spec(data, source)
    for assignment in overrides or []:
        apply_set(spec, assignment)
    for key, value in fields.items():
        if value is not None:
            spec[key] = value
    return spec


def apply_set(data: dict, assignment: str) -> None:
    """``--set a.b=value``: the value parsed as a YAML scalar."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise CliError(f"--set takes key=value, not '{assignment}'")
    value = yaml.safe_load(raw) if raw else ""
    parts = key.split(".")
    target = data
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[parts[-1]] = value


def check_keys(spec: Spec, allowed, kind: str) -> None:
    """Refuse a key ``allowed`` does not name. ``allowed`` maps a key to None (any value), to
    the set of keys its mapping may hold, or to a mapping of the same shape (checked again)."""
    _check_level(spec, spec, allowed, kind, "")


def _check_level(spec: Spec, data: dict, allowed, kind: str, prefix: str) -> None:
    for key, value in data.items():
        if key not in allowed:
            raise CliError(
                f"unknown key '{prefix}{key}'{spec.where()} (not in Azure's {kind} schema)"
            )
        nested = allowed.get(key) if isinstance(allowed, dict) else None
        if nested and isinstance(value, dict):
            _check_level(spec, value, nested, kind, f"{prefix}{key}.")


def require(spec: Spec, key: str, what: str):
    value = spec.get(key)
    if value in (None, ""):
        raise CliError(f"'{key}' is required{spec.where()} ({what})")
    return value


def seconds(value, field: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CliError(f"{field} must be a number of seconds, not '{value}'") from None
    return f"PT{number:g}S"


def _enum(value, choices: dict, field: str) -> str:
    found = choices.get(str(value).lower())
    if found is None:
        raise CliError(f"{field} must be one of {', '.join(choices)}, not '{value}'")
    return found


def traffic_map(text: str, option: str) -> dict[str, int]:
    """``"blue=90 green=10"`` (spaces or commas) -> {"blue": 90, "green": 10}."""
    weights = {}
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise CliError(f"{option} takes name=percent pairs, not '{item}'")
        weights[name] = int(value)
    return weights


# ---- endpoints ---------------------------------------------------------------------------
def endpoint_body(spec: Spec, location: str) -> dict:
    check_keys(spec, ENDPOINT_KEYS, "managedOnlineEndpoint")
    name = require(spec, "name", "the endpoint's name")
    if not ENDPOINT_NAME.match(str(name)):
        raise CliError(
            f"endpoint name '{name}' is invalid: 2-32 characters, a letter first, then "
            "letters, digits and '-'"
        )
    properties = {"authMode": _enum(spec.get("auth_mode", "key"), AUTH_MODES, "auth_mode")}
    for key, field in (
        ("description", "description"),
        ("traffic", "traffic"),
        ("mirror_traffic", "mirrorTraffic"),
        ("properties", "properties"),
        ("compute", "compute"),
    ):
        if spec.get(key) is not None:
            properties[field] = spec[key]
    if spec.get("public_network_access"):
        properties["publicNetworkAccess"] = _enum(
            spec["public_network_access"],
            {"enabled": "Enabled", "disabled": "Disabled"},
            "public_network_access",
        )
    body = {"location": spec.get("location") or location, "properties": properties}
    if spec.get("tags") is not None:
        body["tags"] = {k: str(v) for k, v in spec["tags"].items()}
    if spec.get("identity") is not None:
        body["identity"] = spec["identity"]
    if spec.get("kind"):
        body["kind"] = spec["kind"]
    return body


def endpoint_entity(resource: dict) -> dict:
    properties = resource.get("properties", {})
    auth = {v: k for k, v in AUTH_MODES.items()}.get(properties.get("authMode"), "key")
    return {
        "name": resource.get("name"),
        "id": resource.get("id"),
        "type": "online_endpoint",
        "location": resource.get("location"),
        "tags": resource.get("tags") or {},
        "description": properties.get("description"),
        "auth_mode": auth,
        "traffic": properties.get("traffic") or {},
        "mirror_traffic": properties.get("mirrorTraffic") or {},
        "scoring_uri": properties.get("scoringUri"),
        "openapi_uri": properties.get("swaggerUri"),
        "provisioning_state": properties.get("provisioningState"),
        "public_network_access": (properties.get("publicNetworkAccess") or "Enabled").lower(),
        "identity": resource.get("identity"),
        "properties": properties.get("properties") or {},
    }


def endpoint_spec(entity: dict) -> Spec:
    """What of a shown endpoint can be sent back (for ``update`` without a file)."""
    keys = ("name", "description", "tags", "auth_mode", "traffic", "mirror_traffic")
    return Spec({k: entity[k] for k in keys if entity.get(k) not in (None, {})}, None)


# ---- deployments -------------------------------------------------------------------------
def check_deployment(spec: Spec) -> None:
    """Everything that can be known wrong before any upload."""
    check_keys(spec, DEPLOYMENT_KEYS, "managedOnlineDeployment")
    name = str(require(spec, "name", "the deployment's name"))
    if not DEPLOYMENT_NAME.match(name):
        raise CliError(
            f"deployment name '{name}' is invalid: 3-32 characters, a letter first, then "
            "letters, digits and '-'"
        )
    require(spec, "endpoint_name", "the endpoint it belongs to; or --endpoint-name")
    check_local_files(spec)


def check_local_files(spec: Spec) -> None:
    """The scoring script, model and conda file a deployment YAML names on this machine."""
    code = spec.get("code_configuration")
    if code:
        script = code.get("scoring_script")
        if not script:
            raise CliError(f"code_configuration.scoring_script is required{spec.where()}")
        local = code.get("code")
        if isinstance(local, str) and not local.startswith("azureml:"):
            folder = (spec.base / local).resolve()
            if not (folder / script).is_file():
                raise CliError(
                    f"scoring script '{script}' not found in {folder} "
                    f"(code_configuration){spec.where()}"
                )
    model = spec.get("model")
    if isinstance(model, dict) and model.get("path"):
        if not (spec.base / model["path"]).exists():
            raise CliError(f"model path {model['path']} does not exist{spec.where()}")
    environment = spec.get("environment")
    if isinstance(environment, dict) and environment.get("conda_file"):
        conda = environment["conda_file"]
        if isinstance(conda, str) and not (spec.base / conda).is_file():
            raise CliError(f"environment.conda_file {conda} not found{spec.where()}")


def deployment_body(spec: Spec, location: str, references: dict) -> dict:
    """``references``: the registered ids of the model, code and environment (``azureml:
    name:version``), uploaded beforehand when the YAML gave local paths."""
    kubernetes = spec.get("type") == "kubernetes" or "kubernetesOnline" in str(
        spec.get("$schema", "")
    )
    properties: dict = {"endpointComputeType": "Kubernetes" if kubernetes else "Managed"}
    if references.get("model"):
        properties["model"] = references["model"]
    if references.get("code"):
        properties["codeConfiguration"] = {
            "codeId": references["code"],
            "scoringScript": spec["code_configuration"]["scoring_script"],
        }
    if references.get("environment"):
        properties["environmentId"] = references["environment"]
    simple = {
        "description": "description",
        "instance_type": "instanceType",
        "app_insights_enabled": "appInsightsEnabled",
        "model_mount_path": "modelMountPath",
        "data_collector": "dataCollector",
        "properties": "properties",
    }
    for key, field in simple.items():
        if spec.get(key) is not None:
            properties[field] = spec[key]
    if spec.get("environment_variables") is not None:
        properties["environmentVariables"] = {
            k: str(v) for k, v in spec["environment_variables"].items()
        }
    if spec.get("egress_public_network_access"):
        properties["egressPublicNetworkAccess"] = _enum(
            spec["egress_public_network_access"],
            {"enabled": "Enabled", "disabled": "Disabled"},
            "egress_public_network_access",
        )
    if spec.get("request_settings"):
        properties["requestSettings"] = _request_settings(spec["request_settings"])
    if spec.get("scale_settings"):
        properties["scaleSettings"] = _scale_settings(spec["scale_settings"])
    for key, field in (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe")):
        if spec.get(key):
            properties[field] = _probe(spec[key], key)
    if spec.get("resources"):
        resources = spec["resources"]
        properties["containerResourceRequirements"] = {
            "containerResourceRequests": resources.get("requests"),
            "containerResourceLimits": resources.get("limits"),
        }
    body = {
        "location": location,
        "sku": {"name": "Default", "capacity": int(spec.get("instance_count", 1))},
        "properties": properties,
    }
    if spec.get("tags") is not None:
        body["tags"] = {k: str(v) for k, v in spec["tags"].items()}
    return body


def _request_settings(settings: dict) -> dict:
    out = {}
    if "max_concurrent_requests_per_instance" in settings:
        out["maxConcurrentRequestsPerInstance"] = settings["max_concurrent_requests_per_instance"]
    for key, field in (
        ("request_timeout_ms", "requestTimeout"),
        ("max_queue_wait_ms", "maxQueueWait"),
    ):
        if key in settings:
            out[field] = seconds(float(settings[key]) / 1000, f"request_settings.{key}")
    return out


def _scale_settings(settings: dict) -> dict:
    kinds = {"default": "Default", "target_utilization": "TargetUtilization"}
    out = {"scaleType": _enum(settings.get("type", "default"), kinds, "scale_settings.type")}
    for key, field in (
        ("min_instances", "minInstances"),
        ("max_instances", "maxInstances"),
        ("target_utilization_percentage", "targetUtilizationPercentage"),
    ):
        if key in settings:
            out[field] = settings[key]
    if "polling_interval" in settings:
        out["pollingInterval"] = seconds(settings["polling_interval"], "polling_interval")
    return out


def _probe(probe: dict, name: str) -> dict:
    out = {}
    for key, field in (
        ("initial_delay", "initialDelay"),
        ("period", "period"),
        ("timeout", "timeout"),
    ):
        if key in probe:
            out[field] = seconds(probe[key], f"{name}.{key}")
    for key, field in (
        ("success_threshold", "successThreshold"),
        ("failure_threshold", "failureThreshold"),
    ):
        if key in probe:
            out[field] = probe[key]
    return out


ISO_DURATION = re.compile(r"PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?")


def _iso_seconds(value) -> float | None:
    match = ISO_DURATION.fullmatch(value or "")
    if not match:
        return None
    hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def _number(value: float):
    return int(value) if float(value).is_integer() else value


def deployment_entity(resource: dict, endpoint_name: str) -> dict:
    properties = resource.get("properties", {})
    code = properties.get("codeConfiguration") or {}
    request = properties.get("requestSettings") or {}
    scale = properties.get("scaleSettings") or {}
    entity = {
        "name": resource.get("name"),
        "id": resource.get("id"),
        "type": (properties.get("endpointComputeType") or "Managed").lower(),
        "endpoint_name": endpoint_name,
        "description": properties.get("description"),
        "tags": resource.get("tags") or {},
        "model": properties.get("model"),
        "code_configuration": (
            {"code": code.get("codeId"), "scoring_script": code.get("scoringScript")}
            if code
            else None
        ),
        "environment": properties.get("environmentId"),
        "environment_variables": properties.get("environmentVariables") or {},
        "instance_type": properties.get("instanceType"),
        "instance_count": (resource.get("sku") or {}).get("capacity"),
        "app_insights_enabled": properties.get("appInsightsEnabled", False),
        "provisioning_state": properties.get("provisioningState"),
    }
    if request:
        entity["request_settings"] = {
            "request_timeout_ms": _number(
                (_iso_seconds(request.get("requestTimeout")) or 0) * 1000
            ),
            "max_concurrent_requests_per_instance": request.get("maxConcurrentRequestsPerInstance"),
            "max_queue_wait_ms": _number((_iso_seconds(request.get("maxQueueWait")) or 0) * 1000),
        }
    if scale:
        kind = "target_utilization" if scale.get("scaleType") == "TargetUtilization" else "default"
        entity["scale_settings"] = {"type": kind}
        if kind == "target_utilization":
            entity["scale_settings"].update(
                min_instances=scale.get("minInstances"),
                max_instances=scale.get("maxInstances"),
                polling_interval=_number(_iso_seconds(scale.get("pollingInterval")) or 1),
                target_utilization_percentage=scale.get("targetUtilizationPercentage"),
            )
    for key, field in (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe")):
        probe = properties.get(field)
        if probe:
            entity[key] = {
                "initial_delay": _number(_iso_seconds(probe.get("initialDelay")) or 0),
                "period": _number(_iso_seconds(probe.get("period")) or 10),
                "timeout": _number(_iso_seconds(probe.get("timeout")) or 2),
                "success_threshold": probe.get("successThreshold"),
                "failure_threshold": probe.get("failureThreshold"),
            }
    return entity


def deployment_spec(entity: dict) -> Spec:
    """What of a shown deployment can be sent back (``update`` without a file)."""
    readonly = {"id", "provisioning_state"}
    return Spec({k: v for k, v in entity.items() if k not in readonly and v is not None}, None)


# ---- assets ------------------------------------------------------------------------------
def asset_entity(resource: dict, kind: str) -> dict:
    properties = resource.get("properties", {})
    entity = {
        "name": resource.get("name") if kind == "container" else _version_parent(resource),
        "id": resource.get("id"),
        "description": properties.get("description"),
        "tags": properties.get("tags") or {},
    }
    if kind != "container":
        entity["version"] = resource.get("name")
    for field, key in (
        ("modelUri", "path"),
        ("codeUri", "path"),
        ("image", "image"),
        ("condaFile", "conda_file"),
        ("latestVersion", "latest_version"),
        ("provisioningState", "provisioning_state"),
    ):
        if properties.get(field) is not None:
            entity[key] = properties[field]
    return entity


def _version_parent(resource: dict) -> str | None:
    parts = (resource.get("id") or "").split("/")
    return parts[-3] if len(parts) >= 3 else None
