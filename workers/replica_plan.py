"""What every backend's replica plan is made of: the resolved assets, the revision, the
placed model and code files, probes, limits. The steps are idempotent: a re-run finds its
files in place."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

from django.conf import settings

from controlplane.blobstore import storage
from controlplane.blobstore.backends import blob_backend, read_chunks
from controlplane.blobstore.models import Blob
from controlplane.core import references
from controlplane.core.durations import parse_seconds
from controlplane.core.quantities import parse_quantity
from dataplane.agent.spec import Probe
from dataplane.inference import collector
from dataplane.inference.mlflow_model import MLMODEL
from workers.builds import environment
from workers.errors import PermanentError

PLACED_MARKER = ".weir-placed"
# What an MLflow model folder says about the environment it needs.
MLFLOW_FILES = (MLMODEL, "conda.yaml", "python_env.yaml", "requirements.txt")
# Where Azure's data collector writes in the workspace's default datastore.
COLLECTOR_ROOT = "modelDataCollector"


class Assets:
    """The registered versions a deployment runs. An MLflow model deployed with neither code
    nor environment (Azure's no-code deployment) has neither: the inference server's
    built-in MLflow script runs it, in an environment made from the model's own files."""

    def __init__(self, deployment):
        workspace = deployment.endpoint.workspace
        code = deployment.code_configuration or {}
        self._take(
            workspace,
            _resolve(workspace, deployment.model, "models") if deployment.model else None,
            deployment.environment_id,
            code.get("codeId"),
            code.get("scoringScript"),
        )

    @classmethod
    def named(cls, workspace, model, environment_id, code_id, scoring_script) -> Assets:
        """The assets a batch job runs: its model version and the ids it was invoked with."""
        assets = cls.__new__(cls)
        assets._take(workspace, model, environment_id, code_id, scoring_script)
        return assets

    def _take(self, workspace, model, environment_id, code_id, scoring_script) -> None:
        self.workspace, self.model = workspace, model
        self.no_code = (
            self.model is not None and self.model.is_mlflow and not environment_id and not code_id
        )
        self.environment = self.code = self.scoring_script = None
        if self.no_code:
            return
        # The API refuses these; rows written before it did still reach here.
        if not environment_id:
            raise PermanentError(
                "EnvironmentRequired", "the deployment names no environment (environmentId)"
            )
        if not code_id:
            raise PermanentError(
                "CodeRequired", "the deployment names no code (codeConfiguration.codeId)"
            )
        self.environment = _resolve(workspace, environment_id, "environments")
        self.code = _resolve(workspace, code_id, "codes")
        self.scoring_script = scoring_script

    def __str__(self) -> str:
        if self.no_code:
            return f"model {self.model} (MLflow, no-code: built-in scoring script and environment)"
        return f"code: {self.code}; environment: {self.environment}"


def _resolve(workspace, value: str, kind: str):
    try:
        return references.resolve(workspace, value, kind)
    except ValueError as exc:
        raise PermanentError("AssetNotFound", str(exc)) from None


def environment_spec(assets: Assets, say) -> environment.EnvironmentSpec:
    """What the deployment's environment is built from: the registered environment, or an
    MLflow model's own files (MLmodel, conda.yaml, python_env.yaml, requirements.txt)."""
    if not assets.no_code:
        return environment.spec_for(assets.environment)
    files = mlflow_files(assets.workspace, assets.model.model_uri)
    say(f"environment from the MLflow model's {', '.join(sorted(files))}")
    return environment.spec_for_mlflow_model(files)


def mlflow_files(workspace, uri: str) -> dict[str, str]:
    """The environment files of the MLflow model stored at ``uri``: name -> text, read from
    the blob store, from the folder holding its MLmodel file (the top-most one)."""
    blobs, path = _stored(workspace, uri)
    prefix = f"{path}/" if path else ""
    names = blobs.filter(name__startswith=prefix, name__endswith=MLMODEL).values_list(
        "name", flat=True
    )
    candidates = [name for name in names if name.rsplit("/", 1)[-1] == MLMODEL]
    if not candidates:
        raise PermanentError(
            "MLflowModelInvalid",
            f"the model at '{uri}' has no {MLMODEL} file: a model of type mlflow_model is a "
            "folder saved by MLflow (mlflow.<flavor>.save_model)",
        )
    folder = min(candidates, key=lambda name: (name.count("/"), name))[: -len(MLMODEL)]
    found = {}
    store = blob_backend()
    for blob in blobs.filter(name__in=[folder + name for name in MLFLOW_FILES]):
        with store.open(blob.digest) as source:
            content = b"".join(read_chunks(source))
        try:
            found[blob.name[len(folder) :]] = content.decode("utf-8")
        except UnicodeDecodeError:
            raise PermanentError(
                "MLflowModelInvalid", f"the model's {blob.name[len(folder) :]} is not UTF-8 text"
            ) from None
    return found


def revision(deployment, assets: Assets, environment_hash: str) -> str:
    """Identifies what replicas run: any change here rolls them; instance count does not."""
    document = {
        "model": assets.model.arm_id if assets.model else None,
        "code": assets.code.arm_id if assets.code else None,
        "environment": environment_hash,
        "script": assets.scoring_script,
        "variables": deployment.environment_variables,
        "requests": deployment.request_settings,
        "liveness": deployment.liveness_probe,
        "readiness": deployment.readiness_probe,
        "resources": deployment.container_resource_requirements,
    }
    if collector.collections_of(deployment.data_collector):
        # Only then: the revisions of deployments that collect nothing stay what they were.
        document["dataCollector"] = deployment.data_collector
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def place(assets: Assets, directory: Path, say) -> tuple[Path, Path]:
    """Fetch the model and code files from the blob store into ``directory`` (once). A
    no-code deployment's code directory stays empty."""
    model_dir, code_dir = directory / "model", directory / "code"
    if (directory / PLACED_MARKER).exists():
        say("model and code files are in place")
        return model_dir, code_dir
    shutil.rmtree(directory, ignore_errors=True)
    if assets.model is not None:
        count = download(assets.workspace, assets.model.model_uri, model_dir, keep_name=True)
        say(f"placed {count} model file(s) from {assets.model.model_uri}")
    model_dir.mkdir(parents=True, exist_ok=True)
    code_dir.mkdir(parents=True, exist_ok=True)
    if assets.code is not None:
        count = download(assets.workspace, assets.code.code_uri, code_dir, keep_name=False)
        say(f"placed {count} code file(s) from {assets.code.code_uri}")
        script = (code_dir / assets.scoring_script).resolve()
        if not script.is_relative_to(code_dir.resolve()) or not script.is_file():
            raise PermanentError(
                "ScoringScriptNotFound",
                f"the code has no scoring script '{assets.scoring_script}'",
            )
    (directory / PLACED_MARKER).write_text("")
    return model_dir, code_dir


def _stored(workspace, uri: str):
    """The blobs of the container ``uri`` names, and its path in it (no trailing slash)."""
    try:
        location = storage.resolve(workspace, uri)
    except ValueError as exc:
        raise PermanentError("AssetNotFound", str(exc)) from None
    blobs = Blob.objects.filter(account=location.account, container=location.container)
    return blobs, location.path.rstrip("/")


def download(workspace, uri: str, target: Path, keep_name: bool) -> int:
    """Copy a blob, or every blob under a directory, to ``target``. A directory's own name is
    kept (``keep_name``) the way Azure lays out AZUREML_MODEL_DIR."""
    blobs, path = _stored(workspace, uri)
    single = blobs.filter(name=path).first() if path else None
    if single is not None:
        entries = [(single, Path(path).name)]
    else:
        prefix = f"{path}/" if path else ""
        base = Path(path).name if keep_name and path else ""
        entries = [
            (blob, str(Path(base, blob.name[len(prefix) :])))
            for blob in blobs.filter(name__startswith=prefix)
        ]
    if not entries:
        raise PermanentError("AssetNotFound", f"nothing is stored at '{uri}'")
    target = target.resolve()
    store = blob_backend()
    for blob, relative in entries:
        destination = (target / relative).resolve()
        if not destination.is_relative_to(target):  # blob names are checked; stay sure
            raise PermanentError("UnsafePath", f"'{blob.name}' would leave the target directory")
        destination.parent.mkdir(parents=True, exist_ok=True)
        with store.open(blob.digest) as source, destination.open("wb") as out:
            for chunk in read_chunks(source):
                out.write(chunk)
    return len(entries)


def probe(settings_: dict | None, path: str) -> Probe:
    settings_ = settings_ or {}
    delay = settings_.get("initialDelay")
    return Probe(
        path=path,
        initial_delay=parse_seconds(delay) if delay else 0.0,
        period=parse_seconds(settings_.get("period") or "PT10S"),
        timeout=parse_seconds(settings_.get("timeout") or "PT2S"),
        success_threshold=settings_.get("successThreshold") or 1,
        failure_threshold=settings_.get("failureThreshold") or 30,
    )


def probes(deployment, assets: Assets) -> tuple[Probe, Probe]:
    """Liveness and readiness from the deployment's ProbeSettings, on the routes the
    environment's inferenceConfig names (or the inference server's own)."""
    inference = (assets.environment.inference_config if assets.environment else None) or {}
    liveness_path = (inference.get("livenessRoute") or {}).get("path") or "/"
    readiness_path = (inference.get("readinessRoute") or {}).get("path") or "/readiness"
    return (
        probe(deployment.liveness_probe, liveness_path),
        probe(deployment.readiness_probe, readiness_path),
    )


def _limit(requirements: dict | None, resource: str):
    """containerResourceLimits[resource] in base units, None when unset. The serializer
    checked it at PUT with the same parser; a row written before that check may still hold
    one that does not read."""
    value = ((requirements or {}).get("containerResourceLimits") or {}).get(resource)
    if not value:
        return None
    try:
        return parse_quantity(value)
    except ValueError as exc:
        raise PermanentError("InvalidResourceLimit", f"{resource} limit: {exc}") from None


def cpu_limit(requirements: dict | None) -> int | None:
    """Whole CPUs from containerResourceLimits.cpu ("2", "1500m" -> 2); None when unset."""
    cores = _limit(requirements, "cpu")
    return None if cores is None else max(1, math.ceil(cores))


def memory_limit(requirements: dict | None) -> int | None:
    """Bytes from containerResourceLimits.memory ("512Mi", "1.5G"); None when unset."""
    amount = _limit(requirements, "memory")
    return None if amount is None else math.ceil(amount)


def request_timeout(deployment) -> float:
    """Seconds the router waits for one answer (requestTimeout, Azure's default 5 s)."""
    return parse_seconds((deployment.request_settings or {}).get("requestTimeout") or "PT5S")


def concurrency(deployment) -> int:
    """Requests one replica runs at once (maxConcurrentRequestsPerInstance)."""
    return (deployment.request_settings or {}).get("maxConcurrentRequestsPerInstance") or 1


def collector_setting(deployment, assets: Assets, ca_bundle: str | None) -> str | None:
    """The replica's WEIR_DATA_COLLECTOR (dataplane.inference.collector.Config), or None when
    the deployment's dataCollector enables no payload collection (request/response, or
    model_inputs/model_outputs), whatever API wrote it. It holds a SAS that may create and
    write blobs under modelDataCollector/{endpoint}/{deployment}/ in the workspace's default
    container, and nothing else."""
    if not collector.collections_of(deployment.data_collector):
        return None
    account = storage.account_for(deployment.endpoint.workspace)
    container = account.default_container
    directory = f"{COLLECTOR_ROOT}/{deployment.endpoint.name}/{deployment.name}"
    token = storage.sas_token(
        account,
        container,
        directory,
        "cw",
        "d",
        seconds=settings.WEIR_DATA_COLLECTOR_SAS_LIFETIME,
    )
    return json.dumps(
        {
            "url": f"{storage.blob_url(account, container, directory)}?{token}",
            "source": deployment.arm_id,
            "dataCollector": deployment.data_collector,
            "modelVersion": assets.model.name if assets.model is not None else "default",
            "caBundle": ca_bundle,
        }
    )
