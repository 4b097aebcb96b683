"""Registered assets: local paths uploaded through the asset API (startPendingUpload, then the
Blob API with the SAS it returns), and references resolved for deployments.

Local paths in a deployment YAML become anonymous assets named by their content, as Azure's
CLI does: the same folder uploaded twice is registered once and reused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from cli.client import Client
from cli.errors import CliError
from cli.specs import Spec

ANONYMOUS_ENVIRONMENT = "CliV2AnonymousEnvironment"
HASH_VERSION = "weir-sha256-1"


def is_reference(value: str) -> bool:
    return value.startswith("azureml:") or value.startswith("/subscriptions/")


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        relative = file.relative_to(path) if path.is_dir() else Path(file.name)
        digest.update(str(relative).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def upload(client: Client, collection: str, name: str, version: str, local: Path) -> str:
    """Upload a file or folder for ``collection/name/version``; the blob URI of it."""
    path = f"{client.workspace_path()}/{collection}/{name}/versions/{version}/startPendingUpload"
    pending = client.call("POST", path, {}).json()["blobReferenceForConsumption"]
    sas = urlsplit(pending["credential"]["sasUri"])
    account, container_name = sas.path.lstrip("/").split("/")[:2]
    container = client.blob_container(
        f"{sas.scheme}://{sas.netloc}/{account}", container_name, sas.query
    )
    directory = pending["blobUri"].split(f"/{container_name}/", 1)[1]
    files = [p for p in local.rglob("*") if p.is_file()] if local.is_dir() else [local]
    for file in files:
        if local.is_dir():
            blob = f"{directory}/{local.name}/{file.relative_to(local)}"
        else:
            blob = f"{directory}/{file.name}"
        with file.open("rb") as handle:
            container.upload_blob(blob, handle, overwrite=True)
    return f"{pending['blobUri']}/{local.name}"


def register_code(client: Client, local: Path, name: str | None = None, version=None) -> str:
    digest = content_hash(local)
    name, version = name or f"code-{digest[:20]}", str(version or 1)
    path = f"{client.workspace_path()}/codes/{name}/versions/{version}"
    if not client.exists(path):
        uri = upload(client, "codes", name, version, local)
        properties = {"hash_sha256": digest, "hash_version": HASH_VERSION}
        client.call("PUT", path, {"properties": {"codeUri": uri, "properties": properties}})
    return f"azureml:{name}:{version}"


def register_model(client: Client, spec: dict, base: Path) -> str:
    local = (base / spec["path"]).resolve()
    digest = content_hash(local)
    name, version = spec.get("name") or f"model-{digest[:20]}", str(spec.get("version") or 1)
    path = f"{client.workspace_path()}/models/{name}/versions/{version}"
    if not client.exists(path):
        uri = upload(client, "models", name, version, local)
        properties = {"modelUri": uri}
        for key, field in (("description", "description"), ("tags", "tags")):
            if spec.get(key) is not None:
                properties[field] = spec[key]
        if spec.get("type"):
            properties["modelType"] = spec["type"]
        client.call("PUT", path, {"properties": properties})
    return f"azureml:{name}:{version}"


def register_environment(client: Client, spec: dict, base: Path) -> str:
    properties = {}
    if spec.get("image"):
        properties["image"] = spec["image"]
    if spec.get("conda_file"):
        conda = spec["conda_file"]
        # A mapping inline, or a path to the file.
        if isinstance(conda, dict):
            import yaml

            properties["condaFile"] = yaml.safe_dump(conda)
        else:
            properties["condaFile"] = (base / conda).read_text()
    if spec.get("build"):
        properties["build"] = {"contextUri": spec["build"].get("path")}
    for key in ("description", "tags"):
        if spec.get(key) is not None:
            properties[key] = spec[key]
    if not properties.get("image") and not properties.get("build"):
        raise CliError("an environment needs an image (or a build context)")
    digest = hashlib.sha256(
        (properties.get("image", "") + "\0" + properties.get("condaFile", "")).encode()
    ).hexdigest()
    name = spec.get("name") or ANONYMOUS_ENVIRONMENT
    version = str(spec.get("version") or digest[:32])
    path = f"{client.workspace_path()}/environments/{name}/versions/{version}"
    if not client.exists(path):
        client.call("PUT", path, {"properties": properties})
    return f"azureml:{name}:{version}"


def deployment_references(client: Client, spec: Spec) -> dict:
    """Register what the deployment YAML gives as local paths; the ids it refers to."""
    references = {}
    model = spec.get("model")
    if isinstance(model, str):
        references["model"] = model
    elif isinstance(model, dict):
        if model.get("path"):
            references["model"] = register_model(client, model, spec.base)
        elif model.get("name") and model.get("version"):
            references["model"] = f"azureml:{model['name']}:{model['version']}"
    code = (spec.get("code_configuration") or {}).get("code")
    if isinstance(code, str):
        references["code"] = (
            code if is_reference(code) else register_code(client, (spec.base / code).resolve())
        )
    environment = spec.get("environment")
    if isinstance(environment, str):
        references["environment"] = environment
    elif isinstance(environment, dict):
        references["environment"] = register_environment(client, environment, spec.base)
    return references
