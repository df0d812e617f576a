"""Billing API: the wallet, its ledger and statements, usage and what it cost, the price list,
orders, subscriptions, payments (recharges) and notices. Thin: selectors read, services write.
Operators read every tenant's rows and narrow them with `?tenant=<public id>`."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.billing import notices, payment_services, selectors, services, statements, subscription_services
from apps.billing.api import filters
from apps.billing.api import serializers as s
from apps.billing.models import Notice, Order, Payment, Subscription, Transaction, UsageInterval
from apps.core.api.views import SingletonViewSet, TenantScopedViewSet, validated
from apps.core.exceptions import ValidationFailed

TENANT_PARAM = OpenApiParameter("tenant", str, description="Operators: the tenant (public id); default: yours.")


def _tenant(view):
    return selectors.billed_tenant(view.actor, view.request.query_params.get("tenant"))


class WalletViewSet(SingletonViewSet):
    """The wallet: balance, what purchases may still spend, the credit limit, the low-balance
    threshold and the overdue state."""

    @extend_schema(responses=s.WalletSerializer, parameters=[TENANT_PARAM], summary="The wallet")
    def list(self, request):
        return Response(s.WalletSerializer(selectors.get_wallet(self.actor, tenant=_tenant(self))).data)

    @extend_schema(request=s.WalletUpdateSerializer, responses=s.WalletSerializer, parameters=[TENANT_PARAM],
                   summary="Set the low-balance threshold")
    def partial_update(self, request):
        tenant = _tenant(self)
        data = validated(s.WalletUpdateSerializer, request)
        try:
            wallet = services.set_low_balance_threshold(self.actor, tenant=tenant,
                                                        threshold=data["low_balance_threshold"])
        except ValidationFailed as exc:  # the service names its argument; the API calls it as the wallet does
            exc.fields = {"low_balance_threshold": exc.fields.pop("threshold"), **exc.fields} \
                if "threshold" in exc.fields else exc.fields
            raise
        return Response(s.WalletSerializer(wallet).data)


class TransactionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The ledger, newest first: recharges, charges, refunds, credits and adjustments with the
    balance after each. Filters: kind, resource, since/until (days, included)."""

    model = Transaction
    serializer_class = s.TransactionSerializer
    list_selector = staticmethod(selectors.list_transactions)
    filterset_class = filters.TransactionFilter
    action_permissions = {"list": "view", "retrieve": "view"}


class UsageViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Metered usage intervals (what ran, at which quantity, from when until when). Filters:
    resource, product, since (still running that day or later), until (started by that day)."""

    model = UsageInterval
    serializer_class = s.UsageSerializer
    list_selector = staticmethod(selectors.list_usage)
    filterset_class = filters.UsageFilter
    action_permissions = {"list": "view"}


class WindowQuery(serializers.Serializer):
    """`from` and `to` are Python words too: the fields are declared in get_fields."""

    group = serializers.ChoiceField(choices=selectors.CONSUMPTION_GROUPS, default="resource")

    def get_fields(self):
        return {**super().get_fields(), "from": serializers.DateField(required=False),
                "to": serializers.DateField(required=False)}


class ConsumptionViewSet(SingletonViewSet):
    @extend_schema(
        responses=s.ConsumptionSerializer, summary="What usage cost in a window",
        description="On-demand usage rated with your prices (the ones settlement charges), settled or not yet, "
                    "grouped per resource, product or day. The window is whole UTC days, `from` through `to` "
                    "(default: this month up to now; at most 366 days).",
        parameters=[OpenApiParameter("from", OpenApiTypes.DATE), OpenApiParameter("to", OpenApiTypes.DATE),
                    OpenApiParameter("group", str, enum=list(selectors.CONSUMPTION_GROUPS)), TENANT_PARAM])
    def list(self, request):
        query = WindowQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = selectors.date_window(query.validated_data.get("from"), query.validated_data.get("to"))
        usage = selectors.consumption(self.actor, tenant=_tenant(self), start=start, end=end,
                                      group=query.validated_data["group"])
        return Response(s.ConsumptionSerializer(usage).data)


class PriceListViewSet(SingletonViewSet):
    @extend_schema(responses=s.PriceSerializer(many=True), parameters=[TENANT_PARAM],
                   summary="The prices you pay now, per product and region")
    def list(self, request):
        return Response(s.PriceSerializer(selectors.price_list(self.actor, tenant=_tenant(self)), many=True).data)


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Purchases with their lines: on-demand creates, prepaid periods, renewals, plan changes,
    recharges. Filters: status, kind, resource, since/until."""

    model = Order
    serializer_class = s.OrderSerializer
    list_selector = staticmethod(selectors.list_orders)
    filterset_class = filters.OrderFilter
    action_permissions = {"list": "view", "retrieve": "view"}


class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Resources bought monthly or yearly: renew them, or let them renew themselves."""

    model = Subscription
    serializer_class = s.SubscriptionSerializer
    list_selector = staticmethod(selectors.list_subscriptions)
    filterset_class = filters.SubscriptionFilter
    action_permissions = {"list": "view", "retrieve": "view", "partial_update": "change", "renew": "change"}

    @extend_schema(request=s.SubscriptionUpdateSerializer, responses=s.SubscriptionSerializer,
                   summary="Turn auto-renewal on or off")
    def partial_update(self, request, id=None):
        subscription = self.get_object()
        data = validated(s.SubscriptionUpdateSerializer, request)
        subscription = subscription_services.set_auto_renew(self.actor, subscription=subscription, **data)
        return Response(s.SubscriptionSerializer(subscription).data)

    @extend_schema(request=s.RenewSerializer, responses=s.SubscriptionSerializer,
                   summary="Pay for more terms (402 when the wallet cannot cover them)")
    @action(detail=True, methods=["post"])
    def renew(self, request, id=None):
        subscription = self.get_object()
        data = validated(s.RenewSerializer, request)
        subscription = subscription_services.renew(self.actor, subscription=subscription, **data)
        return Response(s.SubscriptionSerializer(subscription).data)


class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Money paid in through the payment gateway. `POST` starts a recharge: send the payer to
    the answer's `checkout_url`; the wallet is credited when the gateway confirms (503
    `gateway_not_configured` when the platform has no gateway keys)."""

    model = Payment
    serializer_class = s.PaymentSerializer
    list_selector = staticmethod(selectors.list_payments)
    filterset_class = filters.PaymentFilter
    action_permissions = {"list": "view", "retrieve": "view", "create": "create"}

    @extend_schema(request=s.RechargeSerializer, responses={201: s.PaymentSerializer}, summary="Recharge the wallet")
    def create(self, request):
        data = validated(s.RechargeSerializer, request)
        currency = data.get("currency") or selectors.get_wallet(self.actor).currency
        return_url = data.get("return_url") or request.build_absolute_uri(reverse("billing-recharge"))
        payment = payment_services.start_recharge(self.actor, amount=data["amount"], currency=currency,
                                                  idempotency_key=data["idempotency_key"], return_url=return_url)
        return Response(s.PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)


class NoticeViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Billing notices (low balance, overdue, expiring subscriptions...), newest first;
    `?unread=true` for the ones not read yet."""

    model = Notice
    serializer_class = s.NoticeSerializer
    filterset_class = filters.NoticeFilter
    lookup_field = "pk"
    lookup_value_regex = r"\d+"
    action_permissions = {"list": "view", "read": "view"}

    @extend_schema(request=None, responses=s.NoticeSerializer, summary="Mark read")
    @action(detail=True, methods=["post"])
    def read(self, request, id=None):
        return Response(s.NoticeSerializer(notices.mark_read(self.actor, notice=self.get_object())).data)


class StatementViewSet(SingletonViewSet):
    """Monthly statements: the opening balance, every entry, the closing balance and the totals
    by kind."""

    @extend_schema(responses=s.StatementMonthSerializer(many=True), parameters=[TENANT_PARAM],
                   summary="Months with a statement, newest first")
    def list(self, request):
        months = statements.months(self.actor, tenant=_tenant(self))
        return Response(s.StatementMonthSerializer([{"month": m} for m in months], many=True).data)

    def _statement(self, month: str):
        return statements.monthly_statement(self.actor, tenant=_tenant(self), month=statements.parse_month(month))

    @extend_schema(responses=s.StatementSerializer, parameters=[TENANT_PARAM], summary="A month's statement")
    def retrieve(self, request, month=None):
        return Response(s.StatementSerializer(self._statement(month)).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY}, parameters=[TENANT_PARAM],
                   summary="A month's statement as CSV")
    def csv(self, request, month=None):
        return statements.csv_response(self._statement(month))
