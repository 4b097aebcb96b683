"""ARM resource views written once: GET, PUT, PATCH and DELETE of one resource, and the
paged list of a collection, with the envelope, ETag, preconditions and LRO answers.

A resource's view declares its serializers, Azure's operation group, how to find its
parent and its row from the URL, and its service: a module (or object) with

- ``create_or_update(parent, name, data, principal, check) -> (row, created, operation)``
- ``patch(row, data, principal, check) -> operation | None`` (only with an update serializer)
- ``delete(row, principal, check) -> operation | None``

where ``check`` is the view's ``check_preconditions`` and ``operation`` is None when no work
runs. The OpenAPI operations (``{group}_Get``, ``_CreateOrUpdate``, ``_Update``,
``_Delete``, and a list's own id) are made from the declaration.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.response import Response

from controlplane.arm.errors import Gone, not_found
from controlplane.arm.pagination import page
from controlplane.arm.responses import accepted_response, put_response, resource_response
from controlplane.arm.schema import ACCEPTED, ASYNC_DELETE, DELETED, paged
from controlplane.arm.views import ArmView, principal_name


class ArmResourceView(ArmView):
    serializer_class: type  # the resource's body, in PUT and in every answer
    update_serializer_class: type | None = None  # PATCH's body; without one, no PATCH
    long_running = False  # writes start operations: Azure-AsyncOperation, 202 for DELETE
    operation_group: str  # Azure's operation ids are f"{operation_group}_Get" and so on
    delete_parameters: list = []
    label: str  # names the resource in a 404: f"{label} '{name}' was not found."
    name_kwarg: str  # the URL kwarg holding the resource's name
    # Rules a PUT checks its URL's names against (objects with ``parameter``, ``pattern`` and
    # ``check(value)``); the PUT's OpenAPI operation states their patterns.
    name_rules: tuple = ()
    service: object

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "operation_group" not in cls.__dict__:
            return
        group, body = cls.operation_group, cls.serializer_class
        schemas = {
            "get": extend_schema(operation_id=f"{group}_Get", responses=body),
            "put": extend_schema(
                operation_id=f"{group}_CreateOrUpdate",
                parameters=[
                    OpenApiParameter(
                        rule.parameter, str, OpenApiParameter.PATH, pattern=rule.pattern
                    )
                    for rule in cls.name_rules
                ]
                or None,
                request=body,
                responses={200: body, 201: body},
            ),
            "delete": extend_schema(
                operation_id=f"{group}_Delete",
                parameters=cls.delete_parameters or None,
                responses=ASYNC_DELETE if cls.long_running else DELETED,
            ),
        }
        if cls.update_serializer_class is None:
            cls.http_method_names = [m for m in cls.http_method_names if m != "patch"]
        else:
            schemas["patch"] = extend_schema(
                operation_id=f"{group}_Update",
                request=cls.update_serializer_class,
                responses={200: body, 202: ACCEPTED} if cls.long_running else body,
            )
        extend_schema_view(**schemas)(cls)

    @property
    def resource_name(self) -> str:
        return self.kwargs[self.name_kwarg]

    def check_name(self) -> None:
        """Refuse a name a new resource may not have (a 400 naming the URL parameter)."""
        for rule in self.name_rules:
            rule.check(self.kwargs[rule.parameter])

    def parent(self):
        """What the resource lives under (404 when it is missing)."""
        raise NotImplementedError

    def find(self, parent):
        """The resource's row, or None."""
        raise NotImplementedError

    def get_row(self, parent):
        row = self.find(parent)
        if row is None:
            raise not_found(self.label, self.resource_name)
        return row

    def serializer_context(self, parent) -> dict:
        return {}

    def create_or_update(self, parent, data: dict, principal: str):
        return self.service.create_or_update(
            parent, self.resource_name, data, principal, self.check_preconditions
        )

    def get(self, request, **kwargs):
        return resource_response(
            self.serializer_class, self.get_row(self.parent()), request=request
        )

    def put(self, request, **kwargs):
        self.check_name()
        parent = self.parent()
        serializer = self.serializer_class(
            data=request.data, context=self.serializer_context(parent)
        )
        serializer.is_valid(raise_exception=True)
        row, created, operation = self.create_or_update(
            parent, serializer.validated_data, principal_name(request)
        )
        body = self.serializer_class(row, context={"request": request}).data
        return put_response(request, body, created=created, operation=operation, etag=row.etag)

    def patch(self, request, **kwargs):
        parent = self.parent()
        row = self.get_row(parent)
        serializer = self.update_serializer_class(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        operation = self.service.patch(
            row, serializer.validated_data, principal_name(request), self.check_preconditions
        )
        if operation is not None:
            return accepted_response(request, operation)
        return resource_response(self.serializer_class, self.get_row(parent), request=request)

    def delete(self, request, **kwargs):
        row = self.find(self.parent())
        if row is None:
            return Response(status=204)
        try:
            operation = self.service.delete(row, principal_name(request), self.check_preconditions)
        except Gone:
            return Response(status=204)
        if self.long_running:
            return accepted_response(request, operation)
        return Response(status=200)


class ArmListView(ArmView):
    serializer_class: type
    operation_id: str
    list_parameters: list = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "operation_id" in cls.__dict__:
            schema = extend_schema(
                operation_id=cls.operation_id,
                parameters=cls.list_parameters or None,
                responses=paged(cls.serializer_class),
            )
            extend_schema_view(get=schema)(cls)

    def rows(self):
        """The collection's rows, filtered by the query and ordered."""
        raise NotImplementedError

    # A caller who may read only some rows sees those (controlplane.access.authorize).
    filters_rows = True

    def get(self, request, **kwargs):
        serializer = self.serializer_class
        context = {"request": request}
        rows = self.rows()
        access = getattr(request, "access", None)
        if access is not None and access.partial:
            rows = [row for row in rows if access.shows(row)]
        # One serializer for the page: its fields are built once, not once per row.
        return Response(
            page(request, rows, lambda rows: serializer(rows, many=True, context=context).data)
        )
