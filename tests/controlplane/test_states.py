"""The provisioningState machine: only listed edges, and only one writer wins."""

import pytest

from controlplane.core import states
from controlplane.core.models import OnlineEndpoint
from tests.conftest import put_endpoint


@pytest.mark.parametrize(
    "current, target",
    [
        ("Succeeded", "Creating"),
        ("Deleting", "Succeeded"),
        ("Deleting", "Updating"),
        ("Creating", "Scaling"),
    ],
)
def test_illegal_edges_are_refused(current, target):
    with pytest.raises(states.IllegalTransition):
        states.check_edge(current, target)


def test_terminal_states_lead_back_to_work():
    for terminal in states.TERMINAL_STATES:
        assert {"Updating", "Deleting"} <= states.EDGES[terminal]


def test_transition_is_conditional(client, workspace):
    put_endpoint(client)
    endpoint = OnlineEndpoint.objects.get()
    assert states.transition(OnlineEndpoint, endpoint.pk, "Succeeded")
    # A second writer expecting Creating finds the row moved on and changes nothing.
    assert not states.transition(
        OnlineEndpoint, endpoint.pk, "Failed", expected=frozenset({"Creating"})
    )
    assert OnlineEndpoint.objects.get().provisioning_state == "Succeeded"


def test_an_operation_finishes_once(client, workspace):
    from controlplane.core.models import Operation

    put_endpoint(client)
    operation = Operation.objects.get()
    assert states.finish_operation(operation.pk, "Succeeded")
    assert not states.finish_operation(operation.pk, "Failed", error={"code": "X", "message": "y"})
    assert Operation.objects.get().status == "Succeeded"
