"""Which backend runs a deployment: ``backend_for`` is the one place that asks.

Managed deployments run on the local backend (WEIR_BACKEND); Kubernetes ones in the
namespace of the cluster their endpoint's compute names, or on the local backend when that
compute says ``backend: local`` (a compute that names this machine, not a cluster).
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from controlplane.core.services import compute as compute_service
from workers.backends.base import Backend, BackendStatus
from workers.errors import PermanentError

__all__ = ["Backend", "BackendStatus", "backend_for", "local_backend"]


def backend_for(deployment) -> Backend:
    """The backend that runs ``deployment``; PermanentError (KubernetesComputeRequired) for
    a Kubernetes deployment whose endpoint names no attached Kubernetes compute."""
    if deployment.endpoint_compute_type != "Kubernetes":
        return local_backend()
    endpoint = deployment.endpoint
    compute = compute_service.named(endpoint.workspace, endpoint.compute)
    if compute is None or compute.compute_type != "Kubernetes":
        raise PermanentError(
            "KubernetesComputeRequired",
            f"endpoint '{endpoint.name}' names no attached Kubernetes compute "
            f"(properties.compute is {endpoint.compute!r})",
        )
    if compute.properties.get("backend") == "local":
        return local_backend()
    return _cluster(
        settings.WEIR_KUBECONFIG or None, compute.resource_id or None, compute.namespace
    )


@cache
def local_backend() -> Backend:
    return import_string(settings.WEIR_BACKEND)()


@cache
def _cluster(kubeconfig: str | None, context: str | None, namespace: str) -> Backend:
    from workers.backends.kubernetes import KubernetesBackend

    return KubernetesBackend(kubeconfig, context, namespace)
