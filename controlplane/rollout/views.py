"""Rollouts of an online endpoint: PUT (start), GET, DELETE, the list, and the pause,
resume and abort actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from controlplane.arm.errors import not_found
from controlplane.arm.resources import ArmListView
from controlplane.arm.schema import DELETED
from controlplane.arm.views import ArmView, principal_name
from controlplane.core.views.lookups import get_endpoint
from controlplane.rollout import services
from controlplane.rollout.models import Rollout
from controlplane.rollout.serializers import RolloutSerializer


def get_rollout(kwargs) -> Rollout:
    rollout = services.find(get_endpoint(kwargs), kwargs["rolloutName"])
    if rollout is None:
        raise not_found("Rollout", kwargs["rolloutName"])
    return rollout


def answer(rollout: Rollout, request, status: int = 200) -> Response:
    return Response(RolloutSerializer(rollout, context={"request": request}).data, status=status)


class RolloutListView(ArmListView):
    serializer_class = RolloutSerializer
    operation_id = "Rollouts_List"

    def rows(self):
        endpoint = get_endpoint(self.kwargs)
        return endpoint.rollouts.select_related("endpoint__workspace").order_by("-created_at")


class RolloutView(ArmView):
    @extend_schema(operation_id="Rollouts_Get", responses=RolloutSerializer)
    def get(self, request, **kwargs):
        return answer(get_rollout(kwargs), request)

    @extend_schema(
        operation_id="Rollouts_CreateOrUpdate",
        request=RolloutSerializer,
        responses={200: RolloutSerializer, 201: RolloutSerializer},
    )
    def put(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        rollout, created = services.create(
            endpoint, kwargs["rolloutName"], request.data, principal_name(request)
        )
        return answer(rollout, request, 201 if created else 200)

    @extend_schema(operation_id="Rollouts_Delete", responses=DELETED)
    def delete(self, request, **kwargs):
        rollout = services.find(get_endpoint(kwargs), kwargs["rolloutName"])
        if rollout is None:
            return Response(status=204)
        services.delete(rollout)
        return Response(status=200)


def action_view(verb: str, doc: str):
    def post(self, request, **kwargs):
        rollout = getattr(services, verb)(get_rollout(kwargs), principal_name(request))
        return answer(rollout, request)

    post.__doc__ = doc
    decorated = extend_schema(
        operation_id=f"Rollouts_{verb.capitalize()}", request=None, responses=RolloutSerializer
    )(post)
    return type(f"Rollout{verb.capitalize()}View", (ArmView,), {"post": decorated})


PauseView = action_view("pause", "Hold the rollout where it is; its traffic stays.")
ResumeView = action_view("resume", "Go on from the current step, judged again from now.")
AbortView = action_view("abort", "Give the baseline all the traffic back and end RolledBack.")
