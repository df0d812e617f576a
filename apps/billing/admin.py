"""Back office: products, price versions and tenant prices (added through the services, never
edited: a new version replaces an old one from its start), wallets with the operators' money
actions, and the read-only ledger and usage intervals."""

import uuid

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import render

from apps.billing import services
from apps.billing.models import Price, Product, TenantPriceOverride, Transaction, UsageInterval, Wallet
from apps.core.admin import ReadOnlyAdmin, call, operator
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


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "public_id", "tenant", "kind", "amount", "balance_after", "currency", "resource_id",
                    "product", "period", "reason", "actor_kind"]
    list_filter = ["kind", "currency", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["public_id", "tenant__name", "tenant__public_id", "resource_id", "idempotency_key", "reason"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "product"]


@admin.register(UsageInterval)
class UsageIntervalAdmin(ReadOnlyAdmin):
    list_display = ["resource_id", "resource_type", "tenant", "region", "product", "quantity", "started_at",
                    "ended_at", "settled_until", "settled"]
    list_filter = ["resource_type", "region", "settled"]
    search_fields = ["resource_id", "tenant__name", "tenant__public_id", "product__code"]
    list_select_related = ["tenant", "product"]
