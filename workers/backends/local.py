"""The local backend: replicas are processes on this machine, run by ``dataplane.agent``.

The worker and the agent share a state directory: the backend writes the desired spec, the
agent reconciles and writes the status (see dataplane.agent). The environment is a virtual
environment built once per content hash; model and code files are placed under
WEIR_DEPLOYMENT_DIR, one directory per revision.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections import deque
from dataclasses import replace
from pathlib import Path

from django.conf import settings

from dataplane.agent.spec import DeploymentSpec, StateDir
from dataplane.inference.collector import ENV as COLLECTOR_ENV
from dataplane.inference.collector import METRICS_SUFFIX
from dataplane.inference.command import MLFLOW_SCRIPT, server_command
from workers import replica_plan
from workers.backends.base import Backend, BackendStatus, Say
from workers.builds import environment
from workers.errors import PermanentError

WEIR_ROOT = Path(__file__).resolve().parents[2]
POLL = 0.25
STOP_TIMEOUT = 60.0


class LocalBackend(Backend):
    unavailable_hint = "is the agent, python -m dataplane.agent, running?"
    status_poll = 0.05  # one small file read

    def __init__(self, root: Path | None = None):
        self.state = StateDir(root or settings.WEIR_AGENT_DIR)

    # ---- writes ---------------------------------------------------------------------------
    def prepare(self, deployment, assets, say: Say) -> DeploymentSpec:
        """Build or reuse the venv, place model and code files, write nothing yet."""
        spec = replica_plan.environment_spec(assets, say)
        environment_dir = environment.ensure(spec, say)
        revision = replica_plan.revision(deployment, assets, spec.content_hash())
        model_dir, code_dir = replica_plan.place(assets, files_dir(deployment.id) / revision, say)
        liveness, readiness = replica_plan.probes(deployment, assets)
        requirements = deployment.container_resource_requirements
        # A no-code MLflow deployment runs the inference server's own MLflow script.
        entry_script = (
            code_dir / assets.scoring_script if assets.scoring_script else WEIR_ROOT / MLFLOW_SCRIPT
        )
        variables = {
            **deployment.environment_variables,
            "AZUREML_MODEL_DIR": str(model_dir),
            "AZUREML_ENTRY_SCRIPT": assets.scoring_script or str(entry_script),
            "PYTHONPATH": str(WEIR_ROOT),
        }
        command = server_command(
            python=str(environment_dir / "bin" / "python"),
            entry_script=str(entry_script),
            model_dir=str(model_dir),
            socket="{socket}",
            concurrency=replica_plan.concurrency(deployment),
        )
        # The blob store's certificate is this server's own (self-signed unless given).
        collecting = replica_plan.collector_setting(deployment, assets, settings.WEIR_TLS_CERT)
        if collecting:
            variables[COLLECTOR_ENV] = collecting
            # The collector's counters, beside the replica's socket (see dataplane.inference).
            command += ["--metrics-socket", "{socket}" + METRICS_SUFFIX]
        return DeploymentSpec(
            id=str(deployment.id),
            revision=revision,
            generation=uuid.uuid4().hex,
            replicas=deployment.instance_count,
            command=command,
            cwd=str(code_dir),
            env=variables,
            liveness=liveness,
            readiness=readiness,
            memory_limit_bytes=replica_plan.memory_limit(requirements),
            cpu_limit=replica_plan.cpu_limit(requirements),
            request_timeout=replica_plan.request_timeout(deployment),
        )

    def apply(self, plan: DeploymentSpec) -> None:
        self.state.put_spec(plan)

    def scale(self, deployment_id: str, replicas: int) -> str | None:
        current = self.state.read_spec(deployment_id)
        if current is None:
            return None
        # A new generation: replicas that failed before are tried again at the new count.
        self.state.put_spec(replace(current, replicas=replicas, generation=uuid.uuid4().hex))
        return current.revision

    def delete(self, deployment_id: str) -> None:
        self.state.remove_spec(deployment_id)
        deadline = time.monotonic() + STOP_TIMEOUT
        while (
            self.state.desired(deployment_id).exists() or self.state.status(deployment_id).exists()
        ):
            if time.monotonic() > deadline:
                raise PermanentError(
                    "StopTimeout", f"replicas still running after {STOP_TIMEOUT:.0f}s"
                )
            time.sleep(POLL)
        shutil.rmtree(files_dir(deployment_id), ignore_errors=True)

    def rolled_out(self, deployment_id: str, revision: str) -> None:
        # Replicas of an older revision may still be draining from its files: those go at
        # the next rollout, or with the deployment.
        status = self.state.read_status(deployment_id) or {}
        running = {r["revision"] for r in status.get("replicas", [])}
        for directory in files_dir(deployment_id).glob("*"):
            if directory.name != revision and directory.name not in running:
                shutil.rmtree(directory, ignore_errors=True)

    # ---- reads ----------------------------------------------------------------------------
    def status(self, deployment_id: str) -> BackendStatus | None:
        data = self.state.read_status(deployment_id)
        if data is None:
            return None
        return BackendStatus(
            revision=data["revision"],
            desired=data["desired"],
            ready=data["ready"],
            replicas=data["replicas"],
            failure=data["failure"],
        )

    def logs(self, deployment_id: str, tail: int | None) -> str:
        directory = self.state.logs(deployment_id)
        status = self.state.read_status(deployment_id) or {}
        current = {r["name"] for r in status.get("replicas", [])}
        failed = (status.get("failure") or {}).get("replica")
        names = sorted(current | ({failed} if failed else set())) or sorted(
            p.stem for p in directory.glob("*.log")
        )
        parts = []
        for name in names:
            path = directory / f"{name}.log"
            if not path.exists():
                continue
            with path.open(errors="replace") as fh:
                lines = deque(fh, maxlen=tail) if tail is not None else fh.readlines()
            parts.append(f"--- replica {name} ---\n" + "".join(lines))
        return "".join(parts)


def files_dir(deployment_id) -> Path:
    """Where a deployment's model and code files are placed, one directory per revision."""
    return Path(settings.WEIR_DEPLOYMENT_DIR) / str(deployment_id)
