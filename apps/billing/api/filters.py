"""Filters of the billing lists, shared by the API and the console pages. `tenant` (a public id)
narrows an operator's lists to one tenant; a tenant's own lists hold only its rows anyway.
`since` and `until` are days (UTC), both included."""

import django_filters
from django.db.models import Q

from apps.billing.models import Notice, Order, Payment, Subscription, Transaction, UsageInterval


class _TenantFilterSet(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__public_id", label="Tenant (operators)")


def _day(field: str, lookup: str, label: str) -> django_filters.DateFilter:
    return django_filters.DateFilter(field_name=field, lookup_expr=f"date__{lookup}", label=label)


class TransactionFilter(_TenantFilterSet):
    kind = django_filters.ChoiceFilter(choices=Transaction.KIND_CHOICES)
    resource = django_filters.CharFilter(field_name="resource_id", label="Resource id")
    since = _day("created_at", "gte", "From (day)")
    until = _day("created_at", "lte", "To (day, included)")

    class Meta:
        model = Transaction
        fields = ["kind", "resource", "since", "until", "tenant"]


class UsageFilter(_TenantFilterSet):
    resource = django_filters.CharFilter(field_name="resource_id", label="Resource id")
    product = django_filters.CharFilter(field_name="product__code", label="Product code")
    since = django_filters.DateFilter(method="ran_since", label="Ran on or after (day)")
    until = _day("started_at", "lte", "Started on or before (day)")

    class Meta:
        model = UsageInterval
        fields = ["resource", "product", "since", "until", "tenant"]

    def ran_since(self, queryset, name, value):
        """Intervals still running on `value` or after it: open ones, or ended that day or later."""
        return queryset.filter(Q(ended_at__isnull=True) | Q(ended_at__date__gte=value))


class OrderFilter(_TenantFilterSet):
    status = django_filters.ChoiceFilter(choices=Order.STATUS_CHOICES)
    kind = django_filters.ChoiceFilter(choices=Order.KIND_CHOICES)
    resource = django_filters.CharFilter(field_name="resource_id", label="Resource id")
    since = _day("created_at", "gte", "From (day)")
    until = _day("created_at", "lte", "To (day, included)")

    class Meta:
        model = Order
        fields = ["status", "kind", "resource", "since", "until", "tenant"]


class SubscriptionFilter(_TenantFilterSet):
    status = django_filters.ChoiceFilter(choices=Subscription.STATUS_CHOICES)
    resource = django_filters.CharFilter(field_name="resource_id", label="Resource id")

    class Meta:
        model = Subscription
        fields = ["status", "resource", "tenant"]


class PaymentFilter(_TenantFilterSet):
    status = django_filters.ChoiceFilter(choices=Payment.STATUS_CHOICES)

    class Meta:
        model = Payment
        fields = ["status", "tenant"]


class NoticeFilter(_TenantFilterSet):
    unread = django_filters.BooleanFilter(field_name="read_at", lookup_expr="isnull", label="Unread only")

    class Meta:
        model = Notice
        fields = ["kind", "unread", "tenant"]
