from rest_framework import serializers

from apps.core.models import AuditRecord, Operation


class AuditRecordSerializer(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.public_id", default=None)
    user = serializers.CharField(source="username")

    class Meta:
        model = AuditRecord
        fields = [
            "created_at", "tenant", "user", "actor_kind", "via", "service", "action", "resource_type",
            "resource_id", "result", "error_code", "reason", "client_ip", "request_id",
        ]
        read_only_fields = fields


class OperationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Operation
        fields = [
            "id", "name", "kind", "area", "resource_id", "status", "progress", "step", "log", "error",
            "result", "created_by", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields


class AuditExportSerializer(serializers.Serializer):
    resource = serializers.CharField(required=False)
    action = serializers.CharField(required=False)
    user = serializers.CharField(required=False)
    result = serializers.ChoiceField(choices=["ok", "error"], required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
