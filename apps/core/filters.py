"""Filters shared by the API, the console pages and the back office."""

import django_filters

from apps.core.models import AuditRecord, Operation


class AuditRecordFilter(django_filters.FilterSet):
    resource = django_filters.CharFilter(field_name="resource_id")
    action = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    user = django_filters.CharFilter(field_name="username")
    result = django_filters.ChoiceFilter(choices=[("ok", "ok"), ("error", "error")])
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    request_id = django_filters.CharFilter()

    class Meta:
        model = AuditRecord
        fields = ["resource", "action", "user", "result", "since", "until", "request_id"]


class OperationFilter(django_filters.FilterSet):
    class Meta:
        model = Operation
        fields = ["status", "kind", "resource_id"]
