"""Billing API shapes. Money is a decimal string; ids are public ids."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.billing.models import Notice, Order, OrderItem, Payment, Subscription, Transaction, UsageInterval, Wallet


def _money(**kwargs) -> serializers.DecimalField:
    """Output money as computed (already rounded to its currency's places)."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, read_only=True, **kwargs)


class WalletSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True, allow_null=True)
    tenant = serializers.CharField(source="tenant.public_id", read_only=True)
    available = _money(help_text="The balance plus the credit limit: what purchases may still spend.")
    is_low = serializers.BooleanField(read_only=True, help_text="The balance is below the low-balance threshold.")
    is_overdue = serializers.SerializerMethodField(help_text="Usage has taken the balance past the credit limit.")

    class Meta:
        model = Wallet
        fields = ["id", "tenant", "currency", "balance", "available", "credit_limit", "low_balance_threshold",
                  "is_low", "is_overdue", "overdue_since", "overdue_stage", "usage_settled_until"]
        read_only_fields = fields

    def get_is_overdue(self, wallet) -> bool:
        return wallet.overdue_since is not None


class WalletUpdateSerializer(serializers.Serializer):
    low_balance_threshold = serializers.DecimalField(max_digits=16, decimal_places=4, min_value=0)


class TransactionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    tenant = serializers.CharField(source="tenant.public_id", read_only=True)
    product = serializers.CharField(source="product.code", default=None, read_only=True)

    class Meta:
        model = Transaction
        fields = ["id", "tenant", "kind", "amount", "balance_after", "currency", "reason", "resource_type",
                  "resource_id", "product", "period", "usage_until", "actor_kind", "created_at"]
        read_only_fields = fields


class UsageSerializer(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.public_id", read_only=True)
    product = serializers.CharField(source="product.code", read_only=True)

    class Meta:
        model = UsageInterval
        fields = ["tenant", "resource_type", "resource_id", "region", "product", "meter", "quantity", "started_at",
                  "ended_at", "settled_until"]
        read_only_fields = fields


class ConsumptionRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="A resource id, a product code or a day (YYYY-MM-DD).")
    amount = _money()


class ConsumptionSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.public_id")
    currency = serializers.CharField()
    start = serializers.DateTimeField(help_text="The window's first second.")
    end = serializers.DateTimeField(help_text="The window's end (excluded; at most now).")
    group = serializers.ChoiceField(choices=["resource", "product", "day"])
    rows = serializers.SerializerMethodField()
    total = _money(help_text="The window's exact cost rounded once.")

    @extend_schema_field(ConsumptionRowSerializer(many=True))
    def get_rows(self, consumption):
        return ConsumptionRowSerializer([{"key": k, "amount": a} for k, a in consumption.rows], many=True).data


class PriceSerializer(serializers.Serializer):
    product = serializers.CharField(source="product.code")
    name = serializers.CharField(source="product.name")
    unit = serializers.CharField(source="product.unit")
    region = serializers.CharField()
    currency = serializers.CharField()
    hourly = _money(help_text="On demand, per unit-hour (charged per second).")
    monthly = _money(allow_null=True, help_text="Prepaid per month; null: not sold monthly.")
    yearly = _money(allow_null=True, help_text="Prepaid per year; null: not sold yearly.")
    discount_percent = _money(allow_null=True, help_text="Your discount on the list price, if any.")


class OrderItemSerializer(serializers.ModelSerializer):
    product = serializers.CharField(source="product.code", read_only=True)

    class Meta:
        model = OrderItem
        fields = ["product", "description", "quantity", "unit_price", "period_start", "period_end", "amount"]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    tenant = serializers.CharField(source="tenant.public_id", read_only=True)
    items = OrderItemSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = ["id", "tenant", "kind", "status", "billing_mode", "resource_type", "resource_id", "currency",
                  "amount", "refunded", "message", "created_at", "paid_at", "items"]
        read_only_fields = fields


class SubscriptionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    tenant = serializers.CharField(source="tenant.public_id", read_only=True)
    product = serializers.CharField(source="product.code", read_only=True)

    class Meta:
        model = Subscription
        fields = ["id", "tenant", "resource_type", "resource_id", "product", "quantity", "region", "term",
                  "currency", "price", "starts_at", "expires_at", "auto_renew", "status", "status_changed_at",
                  "created_at"]
        read_only_fields = fields


class SubscriptionUpdateSerializer(serializers.Serializer):
    auto_renew = serializers.BooleanField()


class RenewSerializer(serializers.Serializer):
    periods = serializers.IntegerField(min_value=1, max_value=36, default=1, help_text="Terms to add.")
    idempotency_key = serializers.CharField(max_length=128, help_text="The same key: the same renewal, once.")


class PaymentSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    tenant = serializers.CharField(source="tenant.public_id", read_only=True)
    order = serializers.CharField(source="order.public_id", default=None, read_only=True)

    class Meta:
        model = Payment
        fields = ["id", "tenant", "gateway", "amount", "currency", "status", "checkout_url", "order", "message",
                  "created_at", "completed_at"]
        read_only_fields = fields


class RechargeSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=16, decimal_places=4, help_text="In the wallet's currency.")
    currency = serializers.CharField(max_length=3, required=False, help_text="Default: the wallet's currency.")
    idempotency_key = serializers.CharField(max_length=128, help_text="The same key: the same payment, once.")
    return_url = serializers.URLField(max_length=1024, required=False,
                                      help_text="Where the gateway sends the payer back (default: the console).")


class NoticeSerializer(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.public_id", read_only=True)

    class Meta:
        model = Notice
        fields = ["id", "tenant", "kind", "level", "message", "resource_id", "created_at", "read_at"]
        read_only_fields = fields


class StatementSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.public_id")
    month = serializers.DateField(format="%Y-%m")
    currency = serializers.CharField()
    opening = _money(help_text="The balance after the last entry before the month.")
    closing = _money(help_text="The balance after the month's last entry.")
    totals = serializers.DictField(child=_money(), help_text="Sum of the month's entries per kind.")
    entries = TransactionSerializer(many=True)


class StatementMonthSerializer(serializers.Serializer):
    month = serializers.DateField(format="%Y-%m")
