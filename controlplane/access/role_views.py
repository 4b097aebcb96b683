"""Microsoft.Authorization at any scope: ``{scope}/providers/Microsoft.Authorization/
roleDefinitions[/{id}]`` and ``.../roleAssignments[/{name}]`` (``{scope}`` empty for ``/``).
Each request is authorized like every other (controlplane.arm.permissions): writing an
assignment needs ``Microsoft.Authorization/roleAssignments/write`` at its scope."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from controlplane.access import services
from controlplane.arm.errors import not_found
from controlplane.arm.pagination import page
from controlplane.arm.views import ArmView, principal_name


@extend_schema(exclude=True)
class RoleDefinitionListView(ArmView):
    def get(self, request, scope=None):
        scope = services.scope_of(scope)
        rows = services.definitions(request.query_params.get("$filter"))
        return Response(
            page(request, rows, lambda rows: [services.definition_body(r, scope) for r in rows])
        )


@extend_schema(exclude=True)
class RoleDefinitionView(ArmView):
    def get(self, request, name, scope=None):
        scope = services.scope_of(scope)
        definition = services.find_definition(name)
        if definition is None:
            raise not_found("Role definition", name)
        return Response(services.definition_body(definition, scope))

    def put(self, request, name, scope=None):
        scope = services.scope_of(scope)
        definition, created = services.put_definition(
            name, scope, request.data, principal_name(request)
        )
        return Response(services.definition_body(definition, scope), status=201 if created else 200)

    def delete(self, request, name, scope=None):
        scope = services.scope_of(scope)
        definition = services.find_definition(name)
        if definition is None:
            return Response(status=204)
        body = services.definition_body(definition, scope)
        services.delete_definition(definition)
        return Response(body)


@extend_schema(exclude=True)
class RoleAssignmentListView(ArmView):
    def get(self, request, scope=None):
        scope = services.scope_of(scope)
        rows = services.assignments(scope, request.query_params.get("$filter"))
        return Response(
            page(request, rows, lambda rows: [services.assignment_body(r) for r in rows])
        )


@extend_schema(exclude=True)
class RoleAssignmentView(ArmView):
    def get(self, request, name, scope=None):
        assignment = services.find_assignment(services.scope_of(scope), name)
        if assignment is None:
            raise not_found("Role assignment", name)
        return Response(services.assignment_body(assignment))

    def put(self, request, name, scope=None):
        assignment, created = services.put_assignment(
            request, services.scope_of(scope), name, request.data, principal_name(request)
        )
        return Response(services.assignment_body(assignment), status=201 if created else 200)

    def delete(self, request, name, scope=None):
        assignment = services.find_assignment(services.scope_of(scope), name)
        if assignment is None:
            return Response(status=204)
        body = services.assignment_body(assignment)
        services.delete_assignment(request, assignment)
        return Response(body)
