"""Azure ML CLI v2 YAML for batch work (batchEndpoint, modelBatchDeployment and the legacy
batchDeployment form with its settings at the root, amlCompute) to ARM bodies; batch
endpoints, deployments, computes and jobs back to the snake_case objects ``az ml`` prints.

As in cli/specs.py, an unknown key is an error naming the key and the file, before anything
is sent. Durations in YAML are seconds (retry_settings.timeout, idle_time_before_scale_down);
ARM takes ISO 8601 durations, written as Azure's SDK writes them (300 -> PT5M).
"""

from __future__ import annotations

import re

from cli.errors import CliError
from cli.specs import (
    DEPLOYMENT_NAME,
    ENDPOINT_NAME,
    ENVIRONMENT_KEYS,
    MODEL_KEYS,
    Spec,
    check_keys,
    check_local_files,
    require,
)

# Read-only keys Azure's schemas still load (so `show -o yaml` can be sent back): ignored.
READ_ONLY = {"id", "provisioning_state", "scoring_uri", "openapi_uri", "creation_context"}
BATCH_ENDPOINT_KEYS = {
    "$schema": None,
    "name": None,
    "description": None,
    "tags": None,
    "auth_mode": None,
    "defaults": {"deployment_name"},
    "properties": None,
    "identity": None,
    "location": None,
    **dict.fromkeys(READ_ONLY),
}
RETRY_KEYS = {"max_retries", "timeout"}
# modelBatchDeployment's settings; the legacy form has them (but instance_count) at the root.
SETTINGS_KEYS = {
    "mini_batch_size": None,
    "max_concurrency_per_instance": None,
    "instance_count": None,
    "output_action": None,
    "output_file_name": None,
    "retry_settings": RETRY_KEYS,
    "error_threshold": None,
    "logging_level": None,
    "environment_variables": None,
}
LEGACY_SETTINGS = {k: v for k, v in SETTINGS_KEYS.items() if k != "instance_count"}
BATCH_DEPLOYMENT_KEYS = {
    "$schema": None,
    "name": None,
    "endpoint_name": None,
    "type": None,
    "description": None,
    "tags": None,
    "properties": None,
    "model": MODEL_KEYS,
    "code_configuration": {"code", "scoring_script"},
    "environment": ENVIRONMENT_KEYS,
    "environment_variables": None,
    "compute": None,
    "resources": {"instance_count", "instance_type", "properties"},
    "settings": SETTINGS_KEYS,
    **dict.fromkeys(READ_ONLY),
}
# With no type: the legacy keys at the root, or settings: as type: model takes them.
UNTYPED_DEPLOYMENT_KEYS = {**BATCH_DEPLOYMENT_KEYS, **LEGACY_SETTINGS}
AML_COMPUTE_KEYS = {
    "$schema": None,
    "name": None,
    "type": None,
    "description": None,
    "location": None,
    "tags": None,
    "size": None,
    "tier": None,
    "min_instances": None,
    "max_instances": None,
    "idle_time_before_scale_down": None,
    "ssh_public_access_enabled": None,
    "enable_node_public_ip": None,
    "identity": None,
    **dict.fromkeys(READ_ONLY),
}
OUTPUT_ACTIONS = {"append_row": "AppendRow", "summary_only": "SummaryOnly"}
LOGGING_LEVELS = {"info": "Info", "warning": "Warning", "debug": "Debug"}
TIERS = {"dedicated": "Dedicated", "low_priority": "LowPriority"}
# Azure's defaults for an amlCompute YAML that leaves them out (reference-yaml-compute-aml).
COMPUTE_DEFAULTS = {
    "size": "Standard_DS3_v2",
    "tier": "dedicated",
    "min_instances": 0,
    "max_instances": 1,
    "idle_time_before_scale_down": 120,
}
COMPUTE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,31}$")
# What jobs.stream and jobs.download wait through (Azure's run-history constants).
TERMINAL_STATUSES = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}


# ---- durations -----------------------------------------------------------------------------
ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def iso_duration(value, field: str) -> str:
    """Seconds as ISO 8601, the way Azure's SDK (isodate) writes them: 300 -> PT5M,
    90 -> PT1M30S, 86400 -> P1D."""
    if isinstance(value, bool):
        value = None
    try:
        total = float(value)
    except (TypeError, ValueError):
        raise CliError(f"{field} must be a number of seconds, not '{value}'") from None
    if total < 0:
        raise CliError(f"{field} must not be negative, not {value}")
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days:g}D" if days else ""
    time = "".join(
        f"{amount:g}{unit}"
        for amount, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))
        if amount
    )
    if not date and not time:
        time = "0S"
    return f"P{date}" + (f"T{time}" if time else "")


def duration_seconds(value) -> int | float | None:
    """An ISO 8601 duration (as ARM answers it) in seconds; None if it is not one."""
    match = ISO_DURATION.match(value or "") if isinstance(value, str) else None
    if not match or value in ("P", "PT"):
        return None
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    total = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    return int(total) if total.is_integer() else total


def _enum(value, choices: dict, field: str) -> str:
    found = choices.get(str(value).lower())
    if found is None:
        raise CliError(f"{field} must be one of {', '.join(choices)}, not '{value}'")
    return found


def _snake(value, choices: dict) -> str | None:
    """An ARM enum value back as the YAML spells it."""
    back = {v.lower(): k for k, v in choices.items()}
    return back.get(str(value).lower(), value) if value is not None else None


def _strings(mapping, field: str, spec: Spec) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise CliError(f"{field} must be a mapping of names to values{spec.where()}")
    return {str(k): str(v) for k, v in mapping.items()}


# ---- batch endpoints -----------------------------------------------------------------------
def batch_endpoint_body(spec: Spec, location: str) -> dict:
    check_keys(spec, BATCH_ENDPOINT_KEYS, "batchEndpoint")
    name = str(require(spec, "name", "the endpoint's name"))
    if not ENDPOINT_NAME.match(name):
        raise CliError(
            f"endpoint name '{name}' is invalid: 2-32 characters, a letter first, then "
            "letters, digits and '-'"
        )
    auth_mode = str(spec.get("auth_mode") or "aad_token")
    if auth_mode.lower() != "aad_token":
        raise CliError(f"batch endpoints take auth_mode aad_token only, not '{auth_mode}'")
    properties: dict = {"authMode": "AADToken"}
    if spec.get("description") is not None:
        properties["description"] = spec["description"]
    if spec.get("properties") is not None:
        properties["properties"] = _strings(spec["properties"], "properties", spec)
    default = (spec.get("defaults") or {}).get("deployment_name")
    if default:
        properties["defaults"] = {"deploymentName": default}
    body = {"location": spec.get("location") or location, "properties": properties}
    if spec.get("tags") is not None:
        body["tags"] = _strings(spec["tags"], "tags", spec)
    if spec.get("identity") is not None:
        body["identity"] = spec["identity"]
    return body


def batch_endpoint_entity(resource: dict) -> dict:
    properties = resource.get("properties") or {}
    entity = {
        "name": resource.get("name"),
        "id": resource.get("id"),
        "location": resource.get("location"),
        "tags": resource.get("tags") or {},
        "description": properties.get("description"),
        "auth_mode": "aad_token",
        "defaults": {"deployment_name": (properties.get("defaults") or {}).get("deploymentName")},
        "scoring_uri": properties.get("scoringUri"),
        "openapi_uri": properties.get("swaggerUri"),
        "provisioning_state": properties.get("provisioningState"),
        "properties": properties.get("properties") or {},
    }
    if resource.get("identity"):
        entity["identity"] = resource["identity"]
    return entity


def batch_endpoint_spec(entity: dict) -> Spec:
    """What of a shown endpoint can be sent back (``update`` without a file)."""
    keys = ("name", "description", "tags", "auth_mode", "defaults", "properties", "identity")
    return Spec({k: entity[k] for k in keys if entity.get(k) not in (None, {})}, None)


# ---- batch deployments ---------------------------------------------------------------------
def _is_model_form(spec: Spec) -> bool:
    return str(spec.get("type") or "").lower() == "model"


def deployment_settings(spec: Spec) -> dict:
    """The settings wherever the form puts them: under ``settings`` (modelBatchDeployment)
    or at the root (the legacy batchDeployment form)."""
    nested = spec.get("settings") or {}
    if not isinstance(nested, dict):
        raise CliError(f"settings must be a mapping{spec.where()}")
    root = {k: spec[k] for k in LEGACY_SETTINGS if k in spec and k != "environment_variables"}
    both = sorted(set(root) & set(nested))
    if both:
        raise CliError(f"'{both[0]}' is given both at the root and under settings{spec.where()}")
    return {**root, **nested}


def check_batch_deployment(spec: Spec) -> None:
    """Everything that can be known wrong before any upload."""
    kind = str(spec.get("type") or "")
    if kind.lower() == "pipeline" or "component" in spec or "job_definition" in spec:
        raise CliError(
            f"pipeline component deployments are not served by Weir{spec.where()}: deploy a "
            "model (type: model)"
        )
    if kind and kind.lower() != "model":
        raise CliError(f"type must be model, not '{kind}'{spec.where()}")
    if _is_model_form(spec):
        misplaced = next(
            (k for k in LEGACY_SETTINGS if k in spec and k != "environment_variables"), None
        )
        if misplaced:
            raise CliError(
                f"unknown key '{misplaced}'{spec.where()}: with type: model it goes under "
                "settings (modelBatchDeployment schema)"
            )
        check_keys(spec, BATCH_DEPLOYMENT_KEYS, "modelBatchDeployment")
    else:
        check_keys(spec, UNTYPED_DEPLOYMENT_KEYS, "batchDeployment")
    name = str(require(spec, "name", "the deployment's name"))
    if not DEPLOYMENT_NAME.match(name):
        raise CliError(
            f"deployment name '{name}' is invalid: 3-32 characters, a letter first, then "
            "letters, digits and '-'"
        )
    require(spec, "endpoint_name", "the endpoint it belongs to; or --endpoint-name")
    require(spec, "model", "a batch deployment deploys a model: azureml:name:version or a path")
    model = spec["model"]
    if isinstance(model, dict) and not (
        model.get("path") or (model.get("name") and model.get("version"))
    ):
        raise CliError(f"model needs a path (a local model) or a name and version{spec.where()}")
    require(spec, "compute", "the cluster its jobs run on: azureml:<compute name>")
    settings = deployment_settings(spec)
    if settings.get("instance_count") is not None and spec.get("resources"):
        raise CliError(
            f"settings.instance_count and resources are both given{spec.where()}: set "
            "resources.instance_count"
        )
    action = _enum(settings.get("output_action", "append_row"), OUTPUT_ACTIONS, "output_action")
    if action == "SummaryOnly" and settings.get("output_file_name"):
        raise CliError(
            f"output_file_name is for output_action append_row; with summary_only the "
            f"script writes its own files{spec.where()}"
        )
    if settings.get("logging_level") is not None:
        _enum(settings["logging_level"], LOGGING_LEVELS, "logging_level")
    timeout = (settings.get("retry_settings") or {}).get("timeout")
    if timeout is not None:
        iso_duration(timeout, "retry_settings.timeout")
    check_local_files(spec)


def compute_id(reference: str, workspace_path: str) -> str:
    """``azureml:name`` or a bare name as the compute's ARM id (as Azure's SDK sends it)."""
    value = str(reference)
    if value.startswith("/subscriptions/"):
        return value
    return f"{workspace_path}/computes/{value.removeprefix('azureml:')}"


def batch_deployment_body(spec: Spec, location: str, references: dict, workspace_path: str) -> dict:
    """``references``: the model, code and environment ids, registered beforehand when the
    YAML gave local paths (cli/assets.py)."""
    settings = deployment_settings(spec)
    properties: dict = {
        "model": {"referenceType": "Id", "assetId": references["model"]},
        "compute": compute_id(spec["compute"], workspace_path),
    }
    if references.get("code"):
        properties["codeConfiguration"] = {
            "codeId": references["code"],
            "scoringScript": spec["code_configuration"]["scoring_script"],
        }
    if references.get("environment"):
        properties["environmentId"] = references["environment"]
    if spec.get("description") is not None:
        properties["description"] = spec["description"]
    if spec.get("properties") is not None:
        properties["properties"] = _strings(spec["properties"], "properties", spec)
    variables = {
        **_strings(spec.get("environment_variables"), "environment_variables", spec),
        **_strings(settings.get("environment_variables"), "settings.environment_variables", spec),
    }
    if variables:
        properties["environmentVariables"] = variables
    resources = dict(spec.get("resources") or {})
    if settings.get("instance_count") is not None:
        resources["instance_count"] = settings["instance_count"]
    if resources:
        properties["resources"] = {
            field: resources[key]
            for key, field in (
                ("instance_count", "instanceCount"),
                ("instance_type", "instanceType"),
                ("properties", "properties"),
            )
            if resources.get(key) is not None
        }
    for key, field in (
        ("mini_batch_size", "miniBatchSize"),
        ("max_concurrency_per_instance", "maxConcurrencyPerInstance"),
        ("output_file_name", "outputFileName"),
        ("error_threshold", "errorThreshold"),
    ):
        if settings.get(key) is not None:
            properties[field] = settings[key]
    if settings.get("output_action") is not None:
        properties["outputAction"] = _enum(
            settings["output_action"], OUTPUT_ACTIONS, "output_action"
        )
    if settings.get("logging_level") is not None:
        properties["loggingLevel"] = _enum(
            settings["logging_level"], LOGGING_LEVELS, "logging_level"
        )
    retry = settings.get("retry_settings") or {}
    if retry:
        properties["retrySettings"] = {}
        if retry.get("max_retries") is not None:
            properties["retrySettings"]["maxRetries"] = retry["max_retries"]
        if retry.get("timeout") is not None:
            properties["retrySettings"]["timeout"] = iso_duration(
                retry["timeout"], "retry_settings.timeout"
            )
    body = {"location": location, "properties": properties}
    if spec.get("tags") is not None:
        body["tags"] = _strings(spec["tags"], "tags", spec)
    return body


def batch_deployment_entity(resource: dict, endpoint_name: str) -> dict:
    properties = resource.get("properties") or {}
    code = properties.get("codeConfiguration") or {}
    resources = properties.get("resources") or {}
    retry = properties.get("retrySettings") or {}
    action = _snake(properties.get("outputAction"), OUTPUT_ACTIONS)
    settings = {
        "mini_batch_size": properties.get("miniBatchSize"),
        "max_concurrency_per_instance": properties.get("maxConcurrencyPerInstance"),
        "output_action": action,
        "output_file_name": properties.get("outputFileName"),
        "retry_settings": {
            "max_retries": retry.get("maxRetries"),
            "timeout": duration_seconds(retry.get("timeout")),
        },
        "error_threshold": properties.get("errorThreshold"),
        "logging_level": _snake(properties.get("loggingLevel"), LOGGING_LEVELS),
    }
    if action == "summary_only":
        # The script writes its own files; Azure's schema refuses a file name with it.
        settings.pop("output_file_name")
    entity = {
        "name": resource.get("name"),
        "id": resource.get("id"),
        "endpoint_name": endpoint_name,
        "type": "model",
        "description": properties.get("description"),
        "tags": resource.get("tags") or {},
        "properties": properties.get("properties") or {},
        "model": (properties.get("model") or {}).get("assetId"),
        "code_configuration": (
            {"code": code.get("codeId"), "scoring_script": code.get("scoringScript")}
            if code
            else None
        ),
        "environment": properties.get("environmentId"),
        "environment_variables": properties.get("environmentVariables") or {},
        "compute": properties.get("compute"),
        "resources": {
            key: resources[field]
            for key, field in (
                ("instance_count", "instanceCount"),
                ("instance_type", "instanceType"),
                ("properties", "properties"),
            )
            if resources.get(field) not in (None, {})
        },
        "settings": settings,
        "provisioning_state": properties.get("provisioningState"),
    }
    return entity


def batch_deployment_spec(entity: dict) -> Spec:
    """What of a shown deployment can be sent back (``update`` without a file)."""
    data = {k: v for k, v in entity.items() if k not in READ_ONLY and v not in (None, {})}
    settings = {k: v for k, v in (data.get("settings") or {}).items() if v is not None}
    retry = {k: v for k, v in (settings.get("retry_settings") or {}).items() if v is not None}
    if retry:
        settings["retry_settings"] = retry
    else:
        settings.pop("retry_settings", None)
    data["settings"] = settings
    return Spec(data, None)


# ---- computes ------------------------------------------------------------------------------
def compute_body(spec: Spec, location: str) -> dict:
    check_keys(spec, AML_COMPUTE_KEYS, "amlCompute")
    name = str(require(spec, "name", "the compute's name"))
    if not COMPUTE_NAME.match(name):
        raise CliError(
            f"compute name '{name}' is invalid: 2-32 characters, a letter first, then "
            "letters, digits and '-'"
        )
    kind = str(require(spec, "type", "amlcompute"))
    if kind.lower() != "amlcompute":
        raise CliError(f"weir compute create makes amlcompute clusters, not '{kind}'{spec.where()}")
    values = {**COMPUTE_DEFAULTS, **{k: v for k, v in spec.items() if v is not None}}
    scale = {
        "maxNodeCount": values["max_instances"],
        "minNodeCount": values["min_instances"],
        "nodeIdleTimeBeforeScaleDown": iso_duration(
            values["idle_time_before_scale_down"], "idle_time_before_scale_down"
        ),
    }
    aml: dict = {
        "vmSize": values["size"],
        "vmPriority": _enum(values["tier"], TIERS, "tier"),
        "scaleSettings": scale,
    }
    if spec.get("ssh_public_access_enabled") is not None:
        aml["remoteLoginPortPublicAccess"] = (
            "Enabled" if spec["ssh_public_access_enabled"] else "Disabled"
        )
    if spec.get("enable_node_public_ip") is not None:
        aml["enableNodePublicIp"] = bool(spec["enable_node_public_ip"])
    properties = {"computeType": "AmlCompute", "properties": aml}
    if spec.get("description") is not None:
        properties["description"] = spec["description"]
    body = {"location": spec.get("location") or location, "properties": properties}
    if spec.get("tags") is not None:
        body["tags"] = _strings(spec["tags"], "tags", spec)
    if spec.get("identity") is not None:
        body["identity"] = spec["identity"]
    return body


def compute_entity(resource: dict) -> dict:
    properties = resource.get("properties") or {}
    entity = {
        "name": resource.get("name"),
        "id": resource.get("id"),
        "type": str(properties.get("computeType") or "").lower(),
        "location": resource.get("location"),
        "description": properties.get("description"),
        "tags": resource.get("tags") or {},
        "provisioning_state": properties.get("provisioningState"),
    }
    inner = properties.get("properties") or {}
    if properties.get("computeType") == "AmlCompute":
        scale = inner.get("scaleSettings") or {}
        entity.update(
            size=inner.get("vmSize"),
            tier=_snake(inner.get("vmPriority"), TIERS),
            min_instances=scale.get("minNodeCount"),
            max_instances=scale.get("maxNodeCount"),
            idle_time_before_scale_down=duration_seconds(scale.get("nodeIdleTimeBeforeScaleDown")),
        )
    else:
        entity["namespace"] = inner.get("namespace")
    return entity


# ---- jobs ----------------------------------------------------------------------------------
INPUT_TYPES = {"uri_folder": "UriFolder", "uri_file": "UriFile"}


def invocation_body(
    input_uri: str,
    input_type: str,
    *,
    job_name: str | None = None,
    mini_batch_size: int | None = None,
    output_path: str | None = None,
    output_file_name: str | None = None,
) -> dict:
    """What ``batch_endpoints.invoke`` POSTs to the scoring URI."""
    kind = _enum(input_type, INPUT_TYPES, "--input-type")
    # Named by its type, as az ml names the one input (the name is not used).
    properties: dict = {"inputData": {kind: {"jobInputType": kind, "uri": input_uri}}}
    if job_name:
        properties["name"] = job_name
    if mini_batch_size is not None:
        properties["miniBatchSize"] = mini_batch_size
    if output_path:
        properties["outputData"] = {"score": {"jobOutputType": "UriFolder", "uri": output_path}}
    if output_file_name:
        properties["outputFileName"] = output_file_name
    return {"properties": properties}


def _data(spec: dict, kind_key: str) -> dict:
    kind = str(spec.get(kind_key) or "")
    # UriFolder / uri_folder -> uri_folder
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower() if "_" not in kind else kind.lower()
    return {"type": snake, "path": spec.get("uri")}


def job_entity(resource: dict) -> dict:
    """A batch job as ``az ml job show`` prints it, from ARM's job (``workspaces/{w}/jobs``)
    or from an invocation's answer and the endpoint job lists."""
    properties = resource.get("properties") or {}
    system = resource.get("systemData") or {}
    tags = properties.get("tags") or {}
    inner = properties.get("properties") or {}
    inputs = properties.get("inputs") or properties.get("inputData") or {}
    outputs = properties.get("outputs") or properties.get("outputData") or {}
    return {
        "name": resource.get("name"),
        "id": resource.get("id"),
        "type": "pipeline",
        "display_name": properties.get("displayName") or resource.get("name"),
        "status": properties.get("status"),
        "experiment_name": properties.get("experimentName"),
        "endpoint_name": inner.get("azureml.endpointname"),
        "deployment_name": tags.get("azureml.deploymentname")
        or inner.get("azureml.deploymentname"),
        "tags": tags,
        "inputs": {name: _data(spec, "jobInputType") for name, spec in inputs.items()},
        "outputs": {name: _data(spec, "jobOutputType") for name, spec in outputs.items()},
        "creation_context": {
            "created_at": system.get("createdAt"),
            "created_by": system.get("createdBy"),
            "last_modified_at": system.get("lastModifiedAt"),
        },
    }
