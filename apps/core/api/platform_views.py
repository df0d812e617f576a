"""Audit log and operations API."""

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core import selectors, services
from apps.core.api.serializers import AuditExportSerializer, AuditRecordSerializer, OperationSerializer
from apps.core.api.views import TenantScopedViewSet
from apps.core.exceptions import Conflict
from apps.core.filters import AuditRecordFilter, OperationFilter
from apps.core.models import AuditRecord, Operation
from apps.core.tasks import export_path


class AuditLogViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Who did what, when, on which resource, and how it ended. Filter by resource, action
    (prefix), user, result, request id and time range (`since`, `until`)."""

    model = AuditRecord
    serializer_class = AuditRecordSerializer
    list_selector = staticmethod(selectors.list_audit_records)
    filterset_class = AuditRecordFilter
    action_permissions = {"list": "view", "export": "view"}

    @extend_schema(request=AuditExportSerializer, responses={202: OperationSerializer}, summary="Export as CSV")
    @action(detail=False, methods=["post"])
    def export(self, request):
        serializer = AuditExportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        filters = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in serializer.validated_data.items()}
        operation = services.export_audit_log(self.actor, filters=filters)
        return Response(OperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)


class OperationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Long-running work: status, progress %, current step, log and error."""

    model = Operation
    serializer_class = OperationSerializer
    list_selector = staticmethod(selectors.list_operations)
    filterset_class = OperationFilter
    action_permissions = {"list": "view", "retrieve": "view", "download": "view"}

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY}, summary="Download the result file")
    @action(detail=True, methods=["get"])
    def download(self, request, id=None):
        operation = self.get_object()
        path = export_path(operation)
        if operation.status != Operation.SUCCEEDED or not path.exists():
            raise Conflict("The operation has no file to download (yet).")
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type="text/csv")
