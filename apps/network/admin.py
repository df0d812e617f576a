"""Back office: external networks (operators add and change them here, through edge_services),
and every tenant's VPCs, subnets, network interfaces, security groups (with their rules),
elastic IPs, NAT gateways (with their port mappings), load balancers (with their listeners and
members) and HA VIPs, read-only. Tenants change those
through the console and the API (the services); the scheduled reconcile keeps OVN in line
with these rows."""

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.shortcuts import redirect, render
from django.urls import path

from apps.compute.models import Region
from apps.core.admin import ReadOnlyAdmin, ReadOnlyInline, call
from apps.network import edge_services
from apps.network.models import (
    VPC,
    ElasticIP,
    ExternalNetwork,
    HaVip,
    Listener,
    LoadBalancer,
    NatGateway,
    Port,
    PortMapping,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)


@admin.register(VPC)
class VpcAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "region", "cidr", "ipv6_cidr", "subnet_count", "created_at"]
    list_filter = ["region"]
    search_fields = ["public_id", "name", "cidr", "tenant__name"]
    list_select_related = ["tenant", "region"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(subnet_total=Count("subnets"))

    @admin.display(description="subnets", ordering="subnet_total")
    def subnet_count(self, vpc):
        return vpc.subnet_total


@admin.register(Subnet)
class SubnetAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "vpc", "cidr", "gateway_ip", "ipv6_cidr", "dhcp_enabled",
                    "created_at"]
    list_filter = ["dhcp_enabled"]
    search_fields = ["public_id", "name", "cidr", "vpc__public_id", "tenant__name"]
    list_select_related = ["tenant", "vpc"]


@admin.register(Port)
class PortAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "subnet", "mac_address", "addresses_list", "instance", "uuid",
                    "created_at"]
    search_fields = ["public_id", "name", "mac_address", "uuid", "addresses__address", "instance__public_id",
                     "tenant__name"]
    list_select_related = ["tenant", "subnet", "instance"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("addresses")

    @admin.display(description="addresses")
    def addresses_list(self, port):
        return ", ".join(a.address for a in port.addresses.all())


class RuleInline(ReadOnlyInline):
    model = SecurityGroupRule
    fk_name = "security_group"
    fields = ["public_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
              "remote_ip_prefix", "remote_group", "description", "created_at"]


@admin.register(SecurityGroup)
class SecurityGroupAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "vpc", "is_default", "port_group", "rule_count", "created_at"]
    list_filter = ["is_default"]
    search_fields = ["public_id", "name", "vpc__public_id", "tenant__name"]
    list_select_related = ["tenant", "vpc"]
    inlines = [RuleInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(rule_total=Count("rules"))

    @admin.display(description="rules", ordering="rule_total")
    def rule_count(self, group):
        return group.rule_total


# --- north-south ------------------------------------------------------------------------------

def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


class AddExternalNetworkForm(forms.Form):
    name = forms.SlugField(max_length=64, help_text="The OVN switch is ext-<name>.")
    region = forms.ModelChoiceField(queryset=Region.objects.all())
    cidr = forms.CharField(max_length=43, help_text="e.g. 203.0.113.0/24")
    gateway_ip = forms.CharField(max_length=45, help_text="The upstream router on this network.")
    ranges = forms.CharField(help_text="Addresses the portal hands out: start-end, comma-separated, "
                                       "e.g. 203.0.113.10-203.0.113.200")
    physical_network = forms.CharField(max_length=64, initial="physnet1",
                                       help_text="Its ovn-bridge-mappings name on the gateway hosts.")
    vlan = forms.IntegerField(label="VLAN", required=False, help_text="Empty: flat.")
    gateway_chassis = forms.CharField(required=False, help_text="OVN chassis (system-id), comma-separated, most "
                                                                "preferred first.")
    is_default = forms.BooleanField(required=False, help_text="Where EIPs of its region come from by default.")

    def clean_ranges(self) -> list[dict]:
        ranges = []
        for item in _listed(self.cleaned_data["ranges"]):
            start, dash, end = item.partition("-")
            if not dash:
                raise forms.ValidationError(f"{item}: write a range as start-end.")
            ranges.append({"start": start.strip(), "end": end.strip()})
        return ranges

    def service_arguments(self) -> dict:
        return {**self.cleaned_data, "gateway_chassis": _listed(self.cleaned_data["gateway_chassis"])}


@admin.register(ExternalNetwork)
class ExternalNetworkAdmin(admin.ModelAdmin):
    list_display = ["name", "region", "cidr", "gateway_ip", "address_ranges", "physical_network", "vlan",
                    "gateway_chassis", "enabled", "is_default", "eip_count", "vpc_count"]
    list_filter = ["region", "enabled"]
    search_fields = ["name", "public_id", "cidr"]
    list_select_related = ["region"]
    # Set when it is made; the rest changes through edge_services.update_external_network.
    FIXED = ["public_id", "name", "region", "cidr", "gateway_ip", "physical_network", "vlan"]
    EDITABLE = ["enabled", "is_default", "ranges", "gateway_chassis"]
    fields = FIXED + EDITABLE
    readonly_fields = FIXED
    actions = ["enable", "disable", "remove"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(eip_total=Count("eips", distinct=True),
                                                      vpc_total=Count("vpcs", distinct=True))

    @admin.display(description="ranges")
    def address_ranges(self, network):
        return ", ".join(f"{r['start']}-{r['end']}" for r in network.ranges)

    @admin.display(description="EIPs", ordering="eip_total")
    def eip_count(self, network):
        return network.eip_total

    @admin.display(description="VPC gateways", ordering="vpc_total")
    def vpc_count(self, network):
        return network.vpc_total

    def get_urls(self):
        return [path("add-external-network/", self.admin_site.admin_view(self.add_network_view),
                     name="network_externalnetwork_addnetwork"), *super().get_urls()]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:network_externalnetwork_addnetwork")

    def add_network_view(self, request):
        form = AddExternalNetworkForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if call(request, edge_services.create_external_network, success="External network added.",
                    **form.service_arguments()):
                return redirect("admin:network_externalnetwork_changelist")
        context = {**self.admin_site.each_context(request), "title": "Add an external network", "form": form,
                   "opts": self.model._meta}
        return render(request, "network/admin_add_external_network.html", context)

    def save_model(self, request, obj, form, change):
        changed = {field: form.cleaned_data[field] for field in self.EDITABLE if field in form.changed_data}
        request.edge_refused = not call(request, edge_services.update_external_network, network=obj,
                                        success=f"{obj.name} saved.", **changed)

    def response_change(self, request, obj):
        """A refused edit stays on its form, with the service's message and not the admin's "changed"."""
        if getattr(request, "edge_refused", False):
            return redirect(request.path)
        return super().response_change(request, obj)

    def _update(self, request, queryset, **changes):
        for network in queryset:
            call(request, edge_services.update_external_network, network=network, success=f"{network.name} saved.",
                 **changes)

    @admin.action(description="Open selected networks for new EIPs")
    def enable(self, request, queryset):
        self._update(request, queryset, enabled=True)

    @admin.action(description="Close selected networks for new EIPs")
    def disable(self, request, queryset):
        self._update(request, queryset, enabled=False)

    @admin.action(description="Remove selected networks (only unused ones)")
    def remove(self, request, queryset):
        for network in queryset:
            call(request, edge_services.delete_external_network, network=network, success=f"{network.name} removed.")

    def has_delete_permission(self, request, obj=None):
        return False  # the "remove" action checks that nothing uses it


@admin.register(ElasticIP)
class ElasticIPAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "address", "name", "tenant", "external_network", "bandwidth_mbps", "bound_to",
                    "created_at"]
    list_filter = ["external_network"]
    search_fields = ["public_id", "address", "name", "tenant__name", "port__public_id"]
    list_select_related = ["tenant", "external_network", "port", "load_balancer", "nat_gateway"]

    @admin.display(description="bound to")
    def bound_to(self, eip):
        if eip.port_id:
            return f"port {eip.port.public_id}"
        if eip.load_balancer_id:
            return f"load balancer {eip.load_balancer.public_id}"
        nat = getattr(eip, "nat_gateway", None)
        return f"NAT gateway {nat.public_id}" if nat else "—"


class PortMappingInline(ReadOnlyInline):
    model = PortMapping
    fields = ["public_id", "protocol", "external_port", "internal_ip", "internal_port", "description", "created_at"]


@admin.register(NatGateway)
class NatGatewayAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "vpc", "eip", "subnet_list", "created_at"]
    search_fields = ["public_id", "name", "vpc__public_id", "eip__address", "tenant__name"]
    list_select_related = ["tenant", "vpc", "eip"]
    inlines = [PortMappingInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("subnets")

    @admin.display(description="subnets")
    def subnet_list(self, nat):
        return ", ".join(s.cidr for s in nat.subnets.all()) or "the whole VPC"


# --- load balancers and HA VIPs ---------------------------------------------------------------

class ListenerInline(ReadOnlyInline):
    model = Listener
    fields = ["public_id", "name", "protocol", "port", "algorithm", "health_check", "health_interval",
              "health_timeout", "health_success", "health_failure", "member_list", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("members__instance")

    @admin.display(description="members (address:port ×weight)")
    def member_list(self, listener):
        return ", ".join(f"{m.address}:{m.port} ×{m.weight}{f' ({m.instance.public_id})' if m.instance else ''}"
                         for m in listener.members.all()) or "—"


@admin.register(LoadBalancer)
class LoadBalancerAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "subnet", "vip", "eip_address", "listener_count", "created_at"]
    search_fields = ["public_id", "name", "allocation__address", "subnet__public_id", "tenant__name"]
    list_select_related = ["tenant", "subnet", "allocation", "eip"]
    inlines = [ListenerInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(listener_total=Count("listeners"))

    @admin.display(description="VIP", ordering="allocation__address")
    def vip(self, balancer):
        return balancer.vip

    @admin.display(description="EIP")
    def eip_address(self, balancer):
        eip = getattr(balancer, "eip", None)
        return eip.address if eip else "—"

    @admin.display(description="listeners", ordering="listener_total")
    def listener_count(self, balancer):
        return balancer.listener_total


@admin.register(HaVip)
class HaVipAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "subnet", "address", "port_list", "created_at"]
    search_fields = ["public_id", "name", "allocation__address", "subnet__public_id", "tenant__name"]
    list_select_related = ["tenant", "subnet", "allocation"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("ports")

    @admin.display(description="address", ordering="allocation__address")
    def address(self, havip):
        return havip.address

    @admin.display(description="network interfaces")
    def port_list(self, havip):
        return ", ".join(p.public_id for p in havip.ports.all()) or "—"
