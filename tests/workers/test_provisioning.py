"""Reading a deployment's resource limits."""

import pytest

from workers.backends.base import BackendStatus
from workers.errors import PermanentError
from workers.replica_plan import cpu_limit, memory_limit, request_timeout


def test_resource_limits_are_read_from_kubernetes_quantities():
    limits = {"containerResourceLimits": {"cpu": "1500m", "memory": "512Mi"}}
    assert cpu_limit(limits) == 2
    assert memory_limit(limits) == 512 * 1024**2
    assert cpu_limit(None) is None and memory_limit({}) is None
    # The parser the serializer checks them with at PUT: Kubernetes' suffixes and exponents.
    assert memory_limit({"containerResourceLimits": {"memory": "1.5G"}}) == 1_500_000_000
    assert cpu_limit({"containerResourceLimits": {"cpu": "2e0"}}) == 2
    with pytest.raises(PermanentError):
        memory_limit({"containerResourceLimits": {"memory": "lots"}})


def test_the_request_timeout_the_agent_grants_a_stopping_replica_is_the_deployments():
    class Deployment:
        request_settings = {"requestTimeout": "PT45S"}

    assert request_timeout(Deployment) == 45.0
    Deployment.request_settings = None
    assert request_timeout(Deployment) == 5.0  # Azure's default


def test_a_rollout_is_done_while_the_replicas_it_replaced_are_still_draining():
    new = {"revision": "r2", "state": "ready", "address": "unix:/s/r2-1.sock"}
    draining = {"revision": "r1", "state": "stopping", "address": "unix:/s/r1-1.sock"}
    status = BackendStatus(revision="r2", desired=1, ready=1, replicas=[new, draining])
    assert status.rolled_out("r2", 1)
    assert status.ready_addresses() == ["unix:/s/r2-1.sock"]  # the route the worker records
    old = {**draining, "state": "ready"}
    assert not BackendStatus("r2", 1, 1, [new, old]).rolled_out("r2", 1)
