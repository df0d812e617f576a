"""Back office: products, price versions and tenant prices (added through the services, never
edited: a new version replaces an old one from its start), wallets with the operators' money
actions, the read-only ledger and usage intervals, orders (refunds), subscriptions, payments,
gateway events and notices, CSV exports for a range of days, and the revenue and usage overview."""

import csv
import uuid
from datetime import UTC, timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path

from apps.billing import charts, money, order_services, selectors, services
from apps.billing.models import (GatewayEvent, Notice, Order, OrderItem, Payment, Price, Product, Subscription,
                                 TenantPriceOverride, Transaction, UsageInterval, Wallet)
from apps.core.admin import ReadOnlyAdmin, ReadOnlyInline, call, operator
from apps.core.exceptions import DomainError


class ServiceAdmin(admin.ModelAdmin):
    """Rows are added through a service (save_model): its refusal goes back to the form as a
    message instead of an error page."""

    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except DomainError as exc:
            details = " ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.fields.items())
            messages.error(request, f"{exc.message} {details}".strip())
            return HttpResponseRedirect(request.get_full_path())


class VersionAdmin(ServiceAdmin):
    """Versions are added, never changed or deleted: the past stays as it was billed."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] if obj else ["created_by", "created_at"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Product)
class ProductAdmin(ServiceAdmin):
    list_display = ["code", "name", "unit", "meter", "is_active"]
    list_filter = ["unit", "is_active"]
    search_fields = ["code", "name", "meter"]

    def get_readonly_fields(self, request, obj=None):
        return ["code", "unit", "meter", "created_at"] if obj else ["created_at"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            call(request, services.update_product, product=obj, name=obj.name, description=obj.description,
                 is_active=obj.is_active, success="Product saved.")
            return
        product = services.create_product(operator(request), code=obj.code, name=obj.name, unit=obj.unit,
                                          meter=obj.meter, description=obj.description)
        obj.pk = product.pk


@admin.register(Price)
class PriceAdmin(VersionAdmin):
    list_display = ["product", "region", "currency", "effective_from", "hourly", "monthly", "yearly"]
    list_filter = ["region", "currency", "product"]
    search_fields = ["product__code"]
    list_select_related = ["product"]

    def save_model(self, request, obj, form, change):
        price = services.add_price(operator(request), product=obj.product, region=obj.region, currency=obj.currency,
                                   hourly=obj.hourly, monthly=obj.monthly, yearly=obj.yearly,
                                   effective_from=obj.effective_from)
        obj.pk = price.pk


@admin.register(TenantPriceOverride)
class TenantPriceOverrideAdmin(VersionAdmin):
    list_display = ["tenant", "product", "effective_from", "fixed_hourly", "currency", "discount_percent", "reason"]
    list_filter = ["product"]
    search_fields = ["tenant__name", "tenant__public_id", "product__code"]
    list_select_related = ["tenant", "product"]
    exclude = ["currency"]  # the tenant's wallet currency

    def save_model(self, request, obj, form, change):
        override = services.set_tenant_price(operator(request), tenant=obj.tenant, product=obj.product,
                                             fixed_hourly=obj.fixed_hourly, discount_percent=obj.discount_percent,
                                             effective_from=obj.effective_from, reason=obj.reason)
        obj.pk = override.pk


class MoneyForm(forms.Form):
    amount = forms.DecimalField(help_text="In the wallet's currency; adjustments may be negative.")
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"size": 60}))
    # One key per form shown: submitting it twice moves the money once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


class CreditLimitForm(forms.Form):
    credit_limit = forms.DecimalField(min_value=0)


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "tenant", "currency", "balance", "credit_limit", "low_balance_threshold",
                    "usage_settled_until"]
    list_filter = ["currency"]
    search_fields = ["public_id", "tenant__name", "tenant__public_id"]
    list_select_related = ["tenant"]
    actions = ["recharge", "grant_credit", "adjust", "set_credit_limit"]

    def _money_action(self, request, queryset, *, action: str, title: str, service, verb: str):
        form = MoneyForm(request.POST if "apply" in request.POST else None,
                         initial={"idempotency_key": f"backoffice:{uuid.uuid4()}"})
        if form.is_valid():
            data = form.cleaned_data
            for wallet in queryset.select_related("tenant"):
                call(request, service, tenant=wallet.tenant, amount=data["amount"], currency=wallet.currency,
                     reason=data["reason"], idempotency_key=data["idempotency_key"],
                     success=f"{verb} {data['amount']} {wallet.currency} for {wallet.tenant.name}.")
            return None
        return render(request, "admin/tenants/action_form.html", {
            "title": title, "form": form, "queryset": queryset, "action": action, "opts": self.model._meta,
        })

    @admin.action(description="Record money paid in (recharge)")
    def recharge(self, request, queryset):
        return self._money_action(request, queryset, action="recharge", title="Recharge wallets",
                                  service=services.recharge, verb="Recharged")

    @admin.action(description="Grant a credit")
    def grant_credit(self, request, queryset):
        return self._money_action(request, queryset, action="grant_credit", title="Grant credit",
                                  service=services.grant_credit, verb="Credited")

    @admin.action(description="Adjust the balance (with a reason)")
    def adjust(self, request, queryset):
        return self._money_action(request, queryset, action="adjust", title="Adjust balances",
                                  service=services.adjust, verb="Adjusted by")

    @admin.action(description="Set the credit limit")
    def set_credit_limit(self, request, queryset):
        form = CreditLimitForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for wallet in queryset.select_related("tenant"):
                call(request, services.set_credit_limit, tenant=wallet.tenant,
                     credit_limit=form.cleaned_data["credit_limit"],
                     success=f"Credit limit set for {wallet.tenant.name}.")
            return None
        return render(request, "admin/tenants/action_form.html", {
            "title": "Set credit limit", "form": form, "queryset": queryset, "action": "set_credit_limit",
            "opts": self.model._meta,
        })


class ExportMixin:
    """An admin action writing the selected rows as CSV (the columns of EXPORTS[export_kind])."""

    export_kind = ""

    @admin.action(description="Export selected as CSV")
    def export_csv(self, request, queryset):
        return _csv_response(self.export_kind, queryset)


@admin.register(Transaction)
class TransactionAdmin(ExportMixin, ReadOnlyAdmin):
    list_display = ["created_at", "public_id", "tenant", "kind", "amount", "balance_after", "currency", "resource_id",
                    "product", "period", "reason", "actor_kind"]
    list_filter = ["kind", "currency", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["public_id", "tenant__name", "tenant__public_id", "resource_id", "idempotency_key", "reason"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "product"]
    actions = ["export_csv"]
    export_kind = "transactions"
    change_list_template = "billing/admin_change_list.html"


@admin.register(UsageInterval)
class UsageIntervalAdmin(ReadOnlyAdmin):
    list_display = ["resource_id", "resource_type", "tenant", "region", "product", "quantity", "started_at",
                    "ended_at", "settled_until", "settled"]
    list_filter = ["resource_type", "region", "settled"]
    search_fields = ["resource_id", "tenant__name", "tenant__public_id", "product__code"]
    list_select_related = ["tenant", "product"]


# --- orders, subscriptions, payments, notices -------------------------------------------------

class OrderItemInline(ReadOnlyInline):
    model = OrderItem
    fields = ["product", "description", "quantity", "unit_price", "period_start", "period_end", "amount"]


class RefundForm(forms.Form):
    amount = forms.DecimalField(required=False, min_value=0,
                                help_text="Empty: all that is left of each order. In the order's currency.")
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"size": 60}))


@admin.register(Order)
class OrderAdmin(ExportMixin, ReadOnlyAdmin):
    list_display = ["public_id", "created_at", "tenant", "kind", "billing_mode", "status", "amount", "refunded",
                    "currency", "resource_id"]
    list_filter = ["status", "kind", "billing_mode", ("created_at", admin.DateFieldListFilter), "tenant"]
    search_fields = ["public_id", "tenant__name", "tenant__public_id", "resource_id", "idempotency_key"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]
    inlines = [OrderItemInline]
    actions = ["refund", "export_csv"]
    export_kind = "orders"
    change_list_template = "billing/admin_change_list.html"

    @admin.action(description="Refund (with a reason)")
    def refund(self, request, queryset):
        form = RefundForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for order in queryset:
                call(request, order_services.refund_order, order=order, amount=form.cleaned_data["amount"],
                     reason=form.cleaned_data["reason"], success=f"Refunded order {order.public_id}.")
            return None
        return render(request, "admin/tenants/action_form.html", {
            "title": "Refund orders", "form": form, "queryset": queryset, "action": "refund",
            "opts": self.model._meta})

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("export/", view(self.export_view), name="billing_order_export"),
                path("overview/", view(self.overview_view), name="billing_overview"),
                *super().get_urls()]

    def export_view(self, request):
        """Orders, transactions or recharges (payments and recharge entries) for a range of days."""
        form = ExportForm(request.GET or None)
        if form.is_valid():
            start, end = form.window
            return _csv_response(form.cleaned_data["what"], EXPORTS[form.cleaned_data["what"]][0](start, end))
        return render(request, "billing/admin_export.html", {
            **self.admin_site.each_context(request), "title": "Export billing data as CSV", "form": form,
            "opts": self.model._meta})

    def overview_view(self, request):
        """Revenue (charges minus refunds) and recharges by day, top tenants, usage by product."""
        start, end = selectors.date_window()  # this month until today, unless asked otherwise
        form = OverviewForm(request.GET or {"since": start.date(), "until": (end - timedelta(days=1)).date(),
                                            "currency": settings.PORTAL_DEFAULT_CURRENCY})
        overview = chart_list = None
        if form.is_valid():
            start, end = form.window
            try:
                overview = selectors.revenue_overview(operator(request), start=start, end=end,
                                                      currency=form.cleaned_data["currency"])
            except DomainError as exc:
                form.add_error("currency", exc.message)
        if overview is not None:
            unit = overview.currency
            chart_list = [
                charts.bar_chart(overview.revenue_by_day, title="Revenue by day", unit=unit, chart_id="revenue"),
                charts.bar_chart(overview.recharges_by_day, title="Recharges by day", unit=unit,
                                 chart_id="recharges"),
                charts.bar_chart(overview.top_tenants, title="Top tenants", unit=unit, chart_id="top-tenants"),
                charts.bar_chart(overview.usage_by_product, title="Usage by product", unit=unit,
                                 chart_id="usage-by-product"),
            ]
        return render(request, "billing/admin_overview.html", {
            **self.admin_site.each_context(request), "title": "Revenue and usage", "form": form,
            "overview": overview, "charts": chart_list, "opts": self.model._meta})


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "tenant", "resource_id", "product", "term", "price", "currency", "expires_at",
                    "auto_renew", "status"]
    list_filter = ["status", "term", "auto_renew", "tenant"]
    search_fields = ["public_id", "resource_id", "tenant__name", "tenant__public_id"]
    list_select_related = ["tenant", "product"]


@admin.register(Payment)
class PaymentAdmin(ExportMixin, ReadOnlyAdmin):
    list_display = ["public_id", "created_at", "tenant", "gateway", "amount", "currency", "status", "external_id",
                    "completed_at"]
    list_filter = ["status", "gateway", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["public_id", "external_id", "tenant__name", "tenant__public_id"]
    list_select_related = ["tenant"]
    actions = ["export_csv"]
    export_kind = "recharges"


@admin.register(GatewayEvent)
class GatewayEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "gateway", "event_id", "type", "outcome"]
    list_filter = ["gateway", "type"]
    search_fields = ["event_id", "type", "outcome"]


@admin.register(Notice)
class NoticeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "kind", "level", "message", "resource_id", "read_at", "emailed_at"]
    list_filter = ["kind", "level", "tenant"]
    search_fields = ["message", "resource_id", "tenant__name", "tenant__public_id"]
    list_select_related = ["tenant"]


# --- exports and the overview --------------------------------------------------------------------

class _WindowForm(forms.Form):
    since = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="Included.")

    def clean(self):
        data = super().clean()
        if "since" in data and "until" in data:
            try:
                self.window = selectors.date_window(data["since"], data["until"])
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from None
        return data


class ExportForm(_WindowForm):
    what = forms.ChoiceField(choices=[("orders", "Orders"), ("transactions", "Transactions"),
                                      ("recharges", "Recharges (payments and recharge entries)")])


class OverviewForm(_WindowForm):
    currency = forms.CharField(max_length=3, initial=settings.PORTAL_DEFAULT_CURRENCY)


class _Echo:
    def write(self, value):
        return value


def _amount(value, currency: str) -> str:
    return f"{value:.{money.places(currency)}f}"


def _when(moment) -> str:
    return moment.astimezone(UTC).isoformat() if moment else ""


def _orders(start, end):
    return Order.objects.filter(created_at__gte=start, created_at__lt=end).select_related("tenant")


def _order_row(o: Order) -> list:
    return [_when(o.created_at), o.public_id, o.tenant.public_id, o.tenant.name, o.kind, o.billing_mode, o.status,
            _amount(o.amount, o.currency), _amount(o.refunded, o.currency), o.currency, o.resource_type, o.resource_id,
            _when(o.paid_at), o.message]


def _transactions(start, end):
    return Transaction.objects.filter(created_at__gte=start, created_at__lt=end).select_related("tenant", "product")


def _transaction_row(t: Transaction) -> list:
    return [_when(t.created_at), t.public_id, t.tenant.public_id, t.tenant.name, t.kind,
            _amount(t.amount, t.currency), _amount(t.balance_after, t.currency), t.currency, t.resource_id,
            t.product.code if t.product else "", t.period or "", t.actor_kind, t.reason]


def _recharges(start, end) -> list:
    """Gateway payments in the window (any status), and the recharge entries no payment made
    (money an operator recorded), oldest first."""
    payments = list(Payment.objects.filter(created_at__gte=start, created_at__lt=end).select_related("tenant",
                                                                                                     "transaction"))
    paid = Payment.objects.exclude(transaction=None).values("transaction_id")
    entries = list(_transactions(start, end).filter(kind=Transaction.RECHARGE).exclude(pk__in=paid))
    return sorted(payments + entries, key=lambda row: row.created_at)


def _recharge_row(row) -> list:
    if isinstance(row, Payment):
        return [_when(row.created_at), "gateway", row.public_id, row.tenant.public_id, row.tenant.name,
                _amount(row.amount, row.currency), row.currency, row.status,
                row.transaction.public_id if row.transaction else "", row.gateway,
                row.external_id, row.message]
    return [_when(row.created_at), row.actor_kind, "", row.tenant.public_id, row.tenant.name,
            _amount(row.amount, row.currency), row.currency, "succeeded", row.public_id, "", "", row.reason]


# kind → (rows of a window, one row, the header)
EXPORTS = {
    "orders": (_orders, _order_row, ["created_at", "order", "tenant", "tenant_name", "kind", "billing_mode",
                                     "status", "amount", "refunded", "currency", "resource_type", "resource",
                                     "paid_at", "message"]),
    "transactions": (_transactions, _transaction_row, ["created_at", "entry", "tenant", "tenant_name", "kind",
                                                       "amount", "balance_after", "currency", "resource", "product",
                                                       "period", "actor_kind", "reason"]),
    "recharges": (_recharges, _recharge_row, ["created_at", "source", "payment", "tenant", "tenant_name", "amount",
                                              "currency", "status", "entry", "gateway", "external_id", "note"]),
}


def _csv_response(kind: str, rows) -> StreamingHttpResponse:
    """Stream `rows` as CSV: a long range never sits whole in memory."""
    _, row, header = EXPORTS[kind]
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for item in rows:
            yield writer.writerow(row(item))

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{kind}.csv"'
    return response
