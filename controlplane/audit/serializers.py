"""A record as the API shows it: the shape of Azure's activity-log EventData (caller,
operationName, status, resourceId, correlationId, ...), with the changes and details Weir adds."""

from __future__ import annotations

import http

from rest_framework import serializers

from controlplane.audit.models import AuditRecord, Outcome


class LocalizableStringSerializer(serializers.Serializer):
    value = serializers.CharField()
    localizedValue = serializers.CharField()


class HttpRequestInfoSerializer(serializers.Serializer):
    method = serializers.CharField()
    clientIpAddress = serializers.CharField(allow_null=True)


class AuthorizationInfoSerializer(serializers.Serializer):
    action = serializers.CharField()
    scope = serializers.CharField()


class EventDataSerializer(serializers.Serializer):
    id = serializers.CharField()
    eventDataId = serializers.UUIDField()
    eventTimestamp = serializers.DateTimeField()
    submissionTimestamp = serializers.DateTimeField()
    caller = serializers.CharField(help_text="The principal's name.")
    principalId = serializers.UUIDField(allow_null=True, help_text="The principal's object id.")
    principalType = serializers.CharField(
        help_text="User, ServicePrincipal, or Operator (someone at the server's shell)."
    )
    operationName = LocalizableStringSerializer()
    authorization = AuthorizationInfoSerializer()
    resourceId = serializers.CharField()
    subscriptionId = serializers.CharField(allow_null=True)
    resourceGroupName = serializers.CharField(allow_null=True)
    resourceProviderName = LocalizableStringSerializer()
    status = LocalizableStringSerializer(
        help_text="Succeeded, Failed, or Accepted (the request started an operation)."
    )
    subStatus = LocalizableStringSerializer(help_text="The HTTP status, as Azure names it.")
    level = serializers.CharField()
    category = LocalizableStringSerializer()
    correlationId = serializers.CharField()
    httpRequest = HttpRequestInfoSerializer(allow_null=True)
    properties = serializers.DictField(
        child=serializers.CharField(), help_text="statusCode and serviceRequestId."
    )
    changes = serializers.DictField(
        help_text="What the write changed: {path: {before, after}}, secrets redacted."
    )
    details = serializers.DictField(
        help_text="A failure's error code and target; a token's name, prefix and owner."
    )

    def to_representation(self, record: AuditRecord) -> dict:
        return event_data(record)


def localizable(value: str) -> dict:
    return {"value": value, "localizedValue": value}


def status_name(code: int | None) -> str:
    """Azure's subStatus: the HTTP status's name (Created, BadRequest)."""
    if code is None:
        return ""
    try:
        return http.HTTPStatus(code).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return str(code)


def arm_part(resource_id: str, name: str) -> str | None:
    segments = resource_id.split("/")
    for index, segment in enumerate(segments[:-1]):
        if segment.lower() == name.lower():
            return segments[index + 1]
    return None


def event_data(record: AuditRecord) -> dict:
    sub_status = status_name(record.status_code)
    properties = {"serviceRequestId": record.request_id}
    if record.status_code is not None:
        properties["statusCode"] = sub_status
    return {
        "id": f"/providers/Weir.Audit/auditRecords/{record.event_id}",
        "eventDataId": str(record.event_id),
        "eventTimestamp": record.time.isoformat().replace("+00:00", "Z"),
        "submissionTimestamp": record.time.isoformat().replace("+00:00", "Z"),
        "caller": record.principal_name,
        "principalId": str(record.principal_id) if record.principal_id else None,
        "principalType": record.principal_type,
        "operationName": localizable(record.action),
        "authorization": {"action": record.action, "scope": record.resource_id},
        "resourceId": record.resource_id,
        "subscriptionId": arm_part(record.resource_id, "subscriptions"),
        "resourceGroupName": arm_part(record.resource_id, "resourceGroups"),
        "resourceProviderName": localizable(record.action.split("/", 1)[0]),
        "status": localizable(record.outcome),
        "subStatus": localizable(sub_status),
        "level": "Error" if record.outcome == Outcome.FAILED else "Informational",
        "category": localizable("Administrative"),
        "correlationId": record.correlation_id or record.request_id,
        "httpRequest": (
            {"method": record.method, "clientIpAddress": record.client_ip}
            if record.method
            else None
        ),
        "properties": properties,
        "changes": record.changes,
        "details": record.details,
    }
