"""Reads of the network area for the API, pages and back office."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, Prefetch, Q, QuerySet

from apps.network.models import (
    VPC,
    ElasticIP,
    HaVip,
    Listener,
    LoadBalancer,
    NatGateway,
    Port,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)

if TYPE_CHECKING:
    from apps.core.actor import Actor

# Counting joins drop the model's default ordering; lists keep it.
_NEWEST_FIRST = ("-created_at", "-id")
_IPV4_ALLOCATED = Count("allocations", filter=~Q(allocations__address__contains=":"), distinct=True)


def list_vpcs(actor: Actor) -> QuerySet[VPC]:
    defaults = SecurityGroup.objects.filter(is_default=True)
    return (VPC.objects.for_actor(actor).select_related("region")
            .prefetch_related(Prefetch("security_groups", queryset=defaults, to_attr="default_groups"))
            .annotate(subnet_count=Count("subnets", distinct=True)).order_by(*_NEWEST_FIRST))


def list_subnets(actor: Actor) -> QuerySet[Subnet]:
    return (Subnet.objects.for_actor(actor).select_related("vpc").annotate(ipv4_allocated=_IPV4_ALLOCATED)
            .order_by(*_NEWEST_FIRST))


def ipv4_allocated(subnet: Subnet) -> int:
    """Addresses of the subnet's IPv4 block in use (the gateway's too)."""
    counted = getattr(subnet, "ipv4_allocated", None)
    return counted if counted is not None else subnet.allocations.exclude(address__contains=":").count()


def ipv4_available(subnet: Subnet) -> int:
    """Free IPv4 addresses (network and broadcast addresses are never used)."""
    return subnet.network.num_addresses - 2 - ipv4_allocated(subnet)


def list_ports(actor: Actor) -> QuerySet[Port]:
    return (Port.objects.for_actor(actor).select_related("subnet__vpc", "instance")
            .prefetch_related("addresses", "security_groups"))


def list_security_groups(actor: Actor) -> QuerySet[SecurityGroup]:
    rules = SecurityGroupRule.objects.select_related("remote_group")
    return (SecurityGroup.objects.for_actor(actor).select_related("vpc")
            .prefetch_related(Prefetch("rules", queryset=rules)))


def list_eips(actor: Actor) -> QuerySet[ElasticIP]:
    return (ElasticIP.objects.for_actor(actor).select_related("external_network__region", "port__instance",
                                                              "nat_gateway"))


def list_nat_gateways(actor: Actor) -> QuerySet[NatGateway]:
    return (NatGateway.objects.for_actor(actor).select_related("vpc", "eip")
            .prefetch_related("subnets", "port_mappings"))


def list_havips(actor: Actor) -> QuerySet[HaVip]:
    return HaVip.objects.for_actor(actor).select_related("subnet", "allocation").prefetch_related("ports")


def list_load_balancers(actor: Actor) -> QuerySet[LoadBalancer]:
    listeners = Listener.objects.prefetch_related("members__instance")
    return (LoadBalancer.objects.for_actor(actor).select_related("subnet__vpc", "allocation", "eip")
            .prefetch_related(Prefetch("listeners", queryset=listeners)))
