"""Back office: every tenant's VPCs, subnets, network interfaces and security groups (with their
rules), read-only. Tenants change them through the console and the API (the services); the
scheduled reconcile keeps OVN in line with these rows."""

from django.contrib import admin
from django.db.models import Count

from apps.core.admin import ReadOnlyAdmin, ReadOnlyInline
from apps.network.models import VPC, Port, SecurityGroup, SecurityGroupRule, Subnet


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
