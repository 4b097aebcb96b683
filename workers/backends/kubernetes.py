"""The Kubernetes backend: a deployment as a Deployment and a Service in its endpoint's
namespace, with the official ``kubernetes`` client.

Objects are applied with server-side apply (field manager ``weir``), so applying the same
plan again changes nothing; scaling patches ``replicas``; delete removes what apply made;
status and logs come from the pods. Pods carry labels (endpoint, deployment, revision) by
which their ready addresses are found. No HorizontalPodAutoscaler is made: the router's
autoscaler owns replica counts, as on Azure. Model and code reach the pod through an init
container that runs ``dataplane.fetch`` on Weir's blob store (SAS URLs).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

from django.conf import settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from controlplane.blobstore import storage
from dataplane.agent.spec import Probe
from dataplane.inference.collector import ENV as COLLECTOR_ENV
from workers import replica_plan
from workers.backends.base import Backend, BackendStatus, Say
from workers.builds import image
from workers.builds.image import APP_DIR, SERVER_PORT, replica_command

MANAGER = "weir"
LABEL_PREFIX = "ml.weir.dev"
ENDPOINT_LABEL = f"{LABEL_PREFIX}/endpoint"
DEPLOYMENT_LABEL = f"{LABEL_PREFIX}/deployment"
ID_LABEL = f"{LABEL_PREFIX}/deployment-id"
REVISION_LABEL = f"{LABEL_PREFIX}/revision"
APPLY = "application/apply-patch+yaml"
# The pods that run Weir's router (deploy/kubernetes/weir.yaml): the Weir pod, whose router
# serves the local backend, and the standalone routers.
ROUTER_PODS = ("weir", "weir-router")
# Seconds a stopping pod goes on serving (preStop) before its SIGTERM: the time Weir's
# router needs to see it leave (the worker polls its readiness) and the Service's endpoints.
DRAIN = 2


def probe_manifest(probe: Probe) -> dict:
    """A ProbeSettings-derived probe as Kubernetes takes it (whole seconds, at least 1 for
    period and timeout)."""
    return {
        "httpGet": {"path": probe.path, "port": SERVER_PORT},
        "initialDelaySeconds": int(probe.initial_delay),
        "periodSeconds": max(1, int(probe.period)),
        "timeoutSeconds": max(1, int(probe.timeout)),
        "successThreshold": probe.success_threshold,
        "failureThreshold": probe.failure_threshold,
    }


@dataclass
class KubernetesPlan:
    """What one deployment needs in the cluster."""

    deployment_id: str
    endpoint: str
    deployment: str
    namespace: str
    image: str
    replicas: int
    revision: str
    scoring_script: str | None  # None: an MLflow model's no-code deployment
    code_uri: str | None  # blob directory URL with a SAS; None without a scoring script
    model_uri: str | None = None
    environment_variables: dict[str, str] = field(default_factory=dict)
    liveness: Probe = field(default_factory=Probe)
    readiness: Probe = field(default_factory=Probe)
    requests: dict[str, str] = field(default_factory=dict)  # cpu, memory, gpu
    limits: dict[str, str] = field(default_factory=dict)
    request_timeout: float = 5.0  # seconds: how long a stopping pod may finish a request
    router_namespace: str = "weir"  # where Weir's routers run (the only clients of replicas)

    @property
    def name(self) -> str:
        return object_name(self.endpoint, self.deployment)


def object_name(endpoint: str, deployment: str) -> str:
    """A DNS-1035 label from the names: lower case, 63 characters at most (a hash keeps
    long names apart)."""
    name = re.sub(r"[^a-z0-9-]", "-", f"{endpoint}-{deployment}".lower()).strip("-")
    if len(name) > 63:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    if not name[0].isalpha():
        name = f"d-{name}"[:63]
    return name


def _resources(values: dict[str, str]) -> dict[str, str]:
    renamed = {"gpu": "nvidia.com/gpu"}
    return {renamed.get(key, key): str(value) for key, value in values.items() if value}


def manifests(plan: KubernetesPlan) -> list[dict]:
    """The Deployment, the Service and the NetworkPolicy for ``plan``."""
    selector = {ID_LABEL: plan.deployment_id}
    labels = {
        **selector,
        ENDPOINT_LABEL: plan.endpoint,
        DEPLOYMENT_LABEL: plan.deployment,
        "app.kubernetes.io/managed-by": MANAGER,
    }
    app = {"name": "app", "mountPath": APP_DIR}
    fetches = []
    if plan.code_uri:
        fetches.append(f"python -m dataplane.fetch '{plan.code_uri}' --to {APP_DIR}/code")
    if plan.model_uri:
        model_dir = plan.model_uri.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        models = f"{APP_DIR}/azureml-models/{model_dir}"
        fetches.append(f"python -m dataplane.fetch '{plan.model_uri}' --to {models}")
    environment = [{"name": k, "value": v} for k, v in sorted(plan.environment_variables.items())]
    environment.append({"name": "AZUREML_MODEL_DIR", "value": f"{APP_DIR}/azureml-models"})
    container = {
        "name": "inference-server",
        "image": plan.image,
        "args": replica_command(plan.scoring_script),
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "env": environment,
        "livenessProbe": probe_manifest(plan.liveness),
        "readinessProbe": probe_manifest(plan.readiness),
        # A pod being stopped keeps serving while Weir's router (and the Service) take it
        # out of rotation; then SIGTERM, and the server finishes what is in flight.
        "lifecycle": {
            "preStop": {"exec": {"command": ["python", "-c", f"import time; time.sleep({DRAIN})"]}}
        },
        "resources": {
            key: value
            for key, value in (
                ("requests", _resources(plan.requests)),
                ("limits", _resources(plan.limits)),
            )
            if value
        },
        "volumeMounts": [app],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": labels},
        "spec": {
            "replicas": plan.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": {**labels, REVISION_LABEL: plan.revision}},
                "spec": {
                    "initContainers": [
                        {
                            "name": "storage-initializer",
                            "image": plan.image,
                            "command": ["sh", "-c", " && ".join(fetches)],
                            "volumeMounts": [app],
                        }
                    ],
                    "containers": [container],
                    "volumes": [{"name": "app", "emptyDir": {}}],
                    "terminationGracePeriodSeconds": DRAIN + math.ceil(plan.request_timeout) + 5,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": labels},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http"}],
        },
    }
    # Replicas take connections from Weir's routers only (and the kubelet's probes, which
    # network policies do not govern): nobody in the cluster scores around the router's auth.
    routers = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": plan.router_namespace}
        },
        "podSelector": {
            "matchExpressions": [
                {"key": "app.kubernetes.io/name", "operator": "In", "values": list(ROUTER_PODS)}
            ]
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [routers], "ports": [{"protocol": "TCP", "port": SERVER_PORT}]}],
        },
    }
    return [deployment, service, policy]


class KubernetesBackend(Backend):
    """One namespace of one cluster, reached from a kubeconfig (file and context) or, inside
    a pod, in-cluster. A deployment's objects are found by its id label."""

    unavailable_hint = "is the cluster scheduling its pods?"

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str):
        if kubeconfig or context:
            api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
        else:
            k8s_config.load_incluster_config()
            api = k8s.ApiClient()
        self.api = api
        self.apps = k8s.AppsV1Api(api)
        self.core = k8s.CoreV1Api(api)
        self.networking = k8s.NetworkingV1Api(api)
        self.namespace = namespace

    # ---- writes ---------------------------------------------------------------------------
    def prepare(self, deployment, assets, say: Say) -> KubernetesPlan:
        """Find or build the environment's image; model and code become blob directory URLs
        with a read/list SAS that the pods' init container fetches them with."""
        spec = replica_plan.environment_spec(assets, say)
        reference = image.ensure_image(spec, say)
        liveness, readiness = replica_plan.probes(deployment, assets)
        requirements = deployment.container_resource_requirements or {}
        plan = KubernetesPlan(
            deployment_id=str(deployment.id),
            endpoint=deployment.endpoint.name,
            deployment=deployment.name,
            namespace=self.namespace,
            image=reference,
            replicas=deployment.instance_count,
            revision=replica_plan.revision(deployment, assets, spec.content_hash()),
            scoring_script=assets.scoring_script,
            code_uri=_fetchable(assets.workspace, assets.code.code_uri) if assets.code else None,
            model_uri=_fetchable(assets.workspace, assets.model.model_uri)
            if assets.model
            else None,
            environment_variables=_variables(deployment, assets),
            liveness=liveness,
            readiness=readiness,
            requests=dict(requirements.get("containerResourceRequests") or {}),
            limits=dict(requirements.get("containerResourceLimits") or {}),
            request_timeout=replica_plan.request_timeout(deployment),
            router_namespace=settings.WEIR_ROUTER_NAMESPACE,
        )
        say(f"{plan.replicas} pod(s) of {reference} in namespace {self.namespace}")
        return plan

    def apply(self, plan: KubernetesPlan) -> None:
        self._apply(
            f"/api/v1/namespaces/{plan.namespace}",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": plan.namespace}},
        )
        deployment, service, policy = manifests(plan)
        base = f"/namespaces/{plan.namespace}"
        self._apply(f"/apis/apps/v1{base}/deployments/{plan.name}", deployment)
        self._apply(f"/api/v1{base}/services/{plan.name}", service)
        self._apply(f"/apis/networking.k8s.io/v1{base}/networkpolicies/{plan.name}", policy)

    def _apply(self, path: str, body: dict) -> None:
        self.api.call_api(
            path,
            "PATCH",
            query_params=[("fieldManager", MANAGER), ("force", "true")],
            header_params={"Content-Type": APPLY, "Accept": "application/json"},
            # The client sends an apply body as JSON, which is YAML too.
            body=body,
            response_types_map={200: "object", 201: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )

    def scale(self, deployment_id: str, replicas: int) -> str | None:
        found = self._deployment(deployment_id)
        if found is None:
            return None
        self.apps.patch_namespaced_deployment_scale(
            found.metadata.name,
            self.namespace,
            {"spec": {"replicas": replicas}},
            field_manager=MANAGER,
        )
        return found.spec.template.metadata.labels.get(REVISION_LABEL)

    def delete(self, deployment_id: str) -> None:
        selector = f"{ID_LABEL}={deployment_id}"
        for lister, remove in (
            (self.apps.list_namespaced_deployment, self.apps.delete_namespaced_deployment),
            (self.core.list_namespaced_service, self.core.delete_namespaced_service),
            (
                self.networking.list_namespaced_network_policy,
                self.networking.delete_namespaced_network_policy,
            ),
        ):
            for item in lister(self.namespace, label_selector=selector).items:
                try:
                    remove(item.metadata.name, self.namespace)
                except ApiException as exc:
                    if exc.status != 404:
                        raise

    # ---- reads ----------------------------------------------------------------------------
    def _deployment(self, deployment_id: str):
        found = self.apps.list_namespaced_deployment(
            self.namespace, label_selector=f"{ID_LABEL}={deployment_id}"
        ).items
        return found[0] if found else None

    def _pods(self, deployment_id: str) -> list:
        return self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{ID_LABEL}={deployment_id}"
        ).items

    def status(self, deployment_id: str) -> BackendStatus | None:
        """Ready pods and their addresses (podIP:port), by the deployment's labels."""
        deployment = self._deployment(deployment_id)
        if deployment is None:
            return None
        revision = deployment.spec.template.metadata.labels.get(REVISION_LABEL)
        replicas = []
        for pod in self._pods(deployment_id):
            ready = any(
                c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
            )
            if pod.metadata.deletion_timestamp is not None:
                # Terminating: its Ready condition lags; it takes no new request from now.
                state = "stopping"
            else:
                state = "ready" if ready else "starting"
            replicas.append(
                {
                    "name": pod.metadata.name,
                    "address": f"{pod.status.pod_ip}:{SERVER_PORT}" if pod.status.pod_ip else None,
                    "state": state,
                    "revision": (pod.metadata.labels or {}).get(REVISION_LABEL),
                }
            )
        return BackendStatus(
            revision=revision,
            desired=deployment.spec.replicas,
            ready=sum(r["state"] == "ready" and r["revision"] == revision for r in replicas),
            replicas=replicas,
        )

    def logs(self, deployment_id: str, tail: int | None) -> str:
        parts = []
        for pod in self._pods(deployment_id):
            text = self.core.read_namespaced_pod_log(
                pod.metadata.name, self.namespace, container="inference-server", tail_lines=tail
            )
            parts.append(f"== {pod.metadata.name} ==\n{text}")
        return "\n".join(parts)


def _variables(deployment, assets) -> dict[str, str]:
    """The deployment's environment variables, and the data collector's setting when it
    collects (pods trust the blob store's certificate as the init container does)."""
    variables = dict(deployment.environment_variables or {})
    collecting = replica_plan.collector_setting(deployment, assets, None)
    if collecting:
        variables[COLLECTOR_ENV] = collecting
    return variables


def _fetchable(workspace, uri: str) -> str:
    """A blob directory URL with a read/list SAS valid for WEIR_POD_SAS_LIFETIME."""
    location = storage.resolve(workspace, uri)
    path = location.path.rstrip("/")
    token = storage.sas_token(
        location.account,
        location.container,
        path,
        "rl",
        "d",
        seconds=settings.WEIR_POD_SAS_LIFETIME,
    )
    return f"{storage.blob_url(location.account, location.container, path)}?{token}"
