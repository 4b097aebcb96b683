"""Where replicas run: the local backend (WEIR_BACKEND) for Managed deployments, and for
Kubernetes ones the cluster their endpoint's compute names."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from workers.errors import PermanentError


@cache
def backend():
    return import_string(settings.WEIR_BACKEND)()


def on_kubernetes(deployment) -> bool:
    return deployment.endpoint_compute_type == "Kubernetes"


def cluster_for(deployment):
    """(KubernetesBackend, namespace) for a Kubernetes deployment; PermanentError when its
    endpoint names no attached Kubernetes compute."""
    from controlplane.core.services import compute as compute_service

    endpoint = deployment.endpoint
    compute = compute_service.named(endpoint.workspace, endpoint.compute)
    if compute is None:
        raise PermanentError(
            "KubernetesComputeRequired",
            f"endpoint '{endpoint.name}' names no attached Kubernetes compute "
            f"(properties.compute is {endpoint.compute!r})",
        )
    cluster = _cluster(settings.WEIR_KUBECONFIG or None, compute.resource_id or None)
    return cluster, compute.namespace


@cache
def _cluster(kubeconfig: str | None, context: str | None):
    from workers.backends.kubernetes import KubernetesBackend

    return KubernetesBackend(kubeconfig, context)


def status_of(deployment):
    """What runs the deployment now (BackendStatus), wherever it runs."""
    if on_kubernetes(deployment):
        cluster, namespace = cluster_for(deployment)
        return cluster.status(namespace, str(deployment.id))
    return backend().status(str(deployment.id))


def logs_of(deployment, tail: int | None) -> str:
    """The replicas' own output (InferenceServer logs), wherever they run."""
    if on_kubernetes(deployment):
        cluster, namespace = cluster_for(deployment)
        return cluster.logs(namespace, str(deployment.id), tail)
    return backend().logs(str(deployment.id), tail)
