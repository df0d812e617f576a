"""Back office screens for tenants, quotas, tokens and key pairs. Actions call the same
services as the API, as the operator."""

from django import forms
from django.contrib import admin
from django.shortcuts import render
from django.utils.html import format_html

from apps.core.admin import ReadOnlyInline, call, operator
from apps.tenants import quotas, services
from apps.tenants.models import ApiToken, KeyPair, Membership, Quota, QuotaDefault, Tenant


class MembershipInline(ReadOnlyInline):
    model = Membership
    fk_name = "tenant"
    fields = ["user", "role", "policies", "is_active", "created_at"]


class QuotaInline(ReadOnlyInline):
    model = Quota
    fields = ["region", "resource", "limit", "in_use", "reserved"]


class FreezeForm(forms.Form):
    reason = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"size": 60}))


class SetQuotaForm(forms.Form):
    resource = forms.ChoiceField(choices=())
    region = forms.CharField(max_length=64, required=False, help_text="Blank: the default region.")
    limit = forms.IntegerField(min_value=0, required=False, help_text="Blank: back to the operator default.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource"].choices = [(r.name, r.label) for r in quotas.resources()]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "status_badge", "frozen_reason", "member_count", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["name", "public_id", "memberships__user__username", "memberships__user__email"]
    readonly_fields = ["public_id", "status", "frozen_reason", "frozen_at", "created_at"]
    fields = ["name", "public_id", "status", "frozen_reason", "frozen_at", "created_at"]
    inlines = [MembershipInline, QuotaInline]
    actions = ["freeze", "unfreeze", "set_quota"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        colour = "#b00" if obj.is_frozen else "#080"
        return format_html('<b style="color:{}">{}</b>', colour, obj.status)

    @admin.display(description="members")
    def member_count(self, obj):
        return obj.memberships.count()

    def save_model(self, request, obj, form, change):
        if change:
            call(request, services.rename_tenant, tenant=obj, name=obj.name, success="Tenant renamed.")
        else:
            tenant = services.create_tenant(operator(request), name=obj.name, owner=request.user)
            obj.pk, obj.public_id = tenant.pk, tenant.public_id

    def has_delete_permission(self, request, obj=None):
        return False  # tenants are frozen, never deleted from here (resources and ledgers hang off them)

    @admin.action(description="Freeze selected tenants (asks for a reason)")
    def freeze(self, request, queryset):
        form = FreezeForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for tenant in queryset:
                call(request, services.freeze_tenant, tenant=tenant, reason=form.cleaned_data["reason"],
                     success=f"{tenant.name} frozen.")
            return None
        return render(request, "admin/tenants/action_form.html", {
            "title": "Freeze tenants", "form": form, "queryset": queryset, "action": "freeze",
            "opts": self.model._meta,
        })

    @admin.action(description="Unfreeze selected tenants")
    def unfreeze(self, request, queryset):
        for tenant in queryset:
            call(request, services.unfreeze_tenant, tenant=tenant, success=f"{tenant.name} unfrozen.")

    @admin.action(description="Set a quota limit for selected tenants")
    def set_quota(self, request, queryset):
        form = SetQuotaForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            data = form.cleaned_data
            for tenant in queryset:
                call(request, services.set_quota, tenant=tenant, resource=data["resource"],
                     region=data["region"] or None, limit=data["limit"], success=f"Quota set for {tenant.name}.")
            return None
        return render(request, "admin/tenants/action_form.html", {
            "title": "Set quota", "form": form, "queryset": queryset, "action": "set_quota",
            "opts": self.model._meta,
        })


@admin.register(QuotaDefault)
class QuotaDefaultAdmin(admin.ModelAdmin):
    list_display = ["resource", "region", "limit"]
    list_filter = ["resource", "region"]

    def save_model(self, request, obj, form, change):
        call(request, services.set_quota_default, resource=obj.resource, region=obj.region, limit=obj.limit,
             success="Default saved.")


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["tenant", "region", "resource", "limit", "in_use", "reserved"]
    list_filter = ["resource", "region"]
    search_fields = ["tenant__name", "tenant__public_id"]
    readonly_fields = ["tenant", "region", "resource", "in_use", "reserved"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        call(request, services.set_quota, tenant=obj.tenant, resource=obj.resource, region=obj.region,
             limit=obj.limit, success="Quota saved.")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "is_active", "created_at"]
    list_filter = ["role", "is_active"]
    search_fields = ["user__username", "user__email", "tenant__name", "tenant__public_id"]
    readonly_fields = ["public_id", "tenant", "user", "created_by", "created_at"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        call(request, services.update_member, membership=obj, role=obj.role, is_active=obj.is_active,
             policies=obj.policies, success="Membership saved.")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "tenant", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = [f.name for f in ApiToken._meta.fields if f.name != "token_hash"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            call(request, services.revoke_api_token, token=token, success=f"Token {token.name} revoked.")


@admin.register(KeyPair)
class KeyPairAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "tenant", "key_type", "fingerprint", "created_at", "deleted_at"]
    list_filter = ["key_type"]
    search_fields = ["name", "public_id", "tenant__name", "fingerprint"]
    readonly_fields = [f.name for f in KeyPair._meta.fields]

    def has_add_permission(self, request):
        return False
