"""Placement: filter the hosts that can take an instance, weigh them, claim the best.

The claim (vCPUs, RAM, instance count added to the host row) happens under the host's row lock
in the caller's transaction, re-checked after locking, so concurrent creates never push a host
past its overcommit ratios, and PCI devices (GPUs) are handed to one instance at a time. A failed
build gives the claim back with `release`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import ExpressionWrapper, F, FloatField
from django.db.models.functions import Cast
from django.utils import timezone

from apps.compute.models import Cluster, Host, Instance, InstanceGroup
from apps.core.exceptions import Conflict

# How many candidates to try when another request claimed the best one first.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Request:
    vcpus: int
    ram_mb: int
    arch: str
    region: str
    cluster: Cluster | None = None
    group: InstanceGroup | None = None
    exclude_host_ids: tuple[int, ...] = ()  # e.g. the source of a migration
    gpu_count: int = 0
    gpu_type: str = ""  # PCI vendor_id:product_id, e.g. 10de:1eb8


def request_for(instance: Instance, *, exclude: tuple[int, ...] = ()) -> Request:
    """What an existing instance needs of another host (a move, a build retried elsewhere)."""
    return Request(vcpus=instance.vcpus, ram_mb=instance.ram_mb, arch=instance.image.arch, region=instance.region,
                   cluster=instance.availability_zone, group=instance.group, exclude_host_ids=exclude,
                   gpu_count=instance.flavor.gpu_count, gpu_type=instance.flavor.gpu_type)


def free_devices(host: Host, device_type: str) -> list[str]:
    """Addresses of the host's PCI devices of `device_type` (vendor_id:product_id) that no live
    instance on it holds."""
    held = {address for addresses in Instance.objects.filter(host=host, deleted_at__isnull=True)
            .exclude(pci_addresses=[]).values_list("pci_addresses", flat=True) for address in addresses}
    return [d["address"] for d in host.pci_devices
            if f"{d.get('vendor_id')}:{d.get('product_id')}" == device_type and d["address"] not in held]


def claim_devices(host: Host, request: Request) -> list[str]:
    """The PCI devices the instance gets on the host `claim` just chose (its row still locked)."""
    return free_devices(host, request.gpu_type)[:request.gpu_count] if request.gpu_count else []


def _fits(host: Host, request: Request) -> bool:
    return (
        host.vcpus_used + request.vcpus <= host.vcpus_capacity
        and host.memory_mb_used + request.ram_mb <= host.memory_mb_capacity
        and (not request.gpu_count or len(free_devices(host, request.gpu_type)) >= request.gpu_count)
    )


def candidates(request: Request, limit: int = MAX_ATTEMPTS) -> list[Host]:
    """Enabled, alive hosts of the region (and zone) with the right arch and room, least
    loaded first. Filter and weigher run in SQL, so a placement reads `limit` rows whatever the
    number of hosts; `claim` re-checks the chosen one under its row lock."""
    alive_since = timezone.now() - timedelta(seconds=settings.PORTAL_HOST_DOWN_AFTER)
    as_float = {"output_field": FloatField()}
    hosts = (
        Host.objects.filter(
            state=Host.ENABLED, heartbeat_at__gte=alive_since, arch=request.arch,
            cluster__region__code=request.region,
        )
        .annotate(
            cpu_cap=ExpressionWrapper(Cast("vcpus", FloatField()) * Cast("cpu_allocation_ratio", FloatField()),
                                      **as_float),
            ram_cap=ExpressionWrapper(
                Cast(F("memory_mb") - F("reserved_memory_mb"), FloatField()) * Cast("ram_allocation_ratio", FloatField()),
                **as_float),
        )
        .filter(cpu_cap__gte=F("vcpus_used") + request.vcpus, ram_cap__gte=F("memory_mb_used") + request.ram_mb)
        .annotate(load=ExpressionWrapper(
            Cast("memory_mb_used", FloatField()) / F("ram_cap") + Cast("vcpus_used", FloatField()) / F("cpu_cap") / 2,
            **as_float))
    )
    if request.cluster is not None:
        hosts = hosts.filter(cluster=request.cluster)
    if request.exclude_host_ids:
        hosts = hosts.exclude(pk__in=request.exclude_host_ids)
    if request.group is not None:
        members = Instance.objects.filter(group=request.group, deleted_at__isnull=True, host__isnull=False)
        member_hosts = list(members.values_list("host_id", flat=True).distinct())
        if request.group.policy == InstanceGroup.ANTI_AFFINITY:
            hosts = hosts.exclude(pk__in=member_hosts)
        elif member_hosts:
            hosts = hosts.filter(pk__in=member_hosts)
    hosts = hosts.order_by("load", "pk")
    if request.gpu_count:  # few hosts have GPUs: count their free devices here
        return [h for h in hosts.exclude(pci_devices=[]) if _fits(h, request)][:limit]
    return list(hosts[:limit])


def claim(request: Request, *, host: Host | None = None) -> Host:
    """Pick and claim a host (or the given one, if it fits); raise Conflict with the reason
    when none can take it."""
    for host in [host] if host is not None else candidates(request):
        locked = Host.objects.select_for_update(of=("self",)).select_related("cluster").get(pk=host.pk)
        if locked.state == Host.ENABLED and _fits(locked, request):
            Host.objects.filter(pk=locked.pk).update(
                vcpus_used=F("vcpus_used") + request.vcpus,
                memory_mb_used=F("memory_mb_used") + request.ram_mb,
                instances_count=F("instances_count") + 1,
            )
            locked.refresh_from_db()
            return locked
    where = f"zone {request.cluster.code}" if request.cluster else f"region {request.region}"
    rule = f" while keeping the {request.group.policy} of group {request.group.public_id}" if request.group else ""
    gpus = f" + {request.gpu_count} × GPU {request.gpu_type}" if request.gpu_count else ""
    raise Conflict(
        f"No host in {where} can take {request.vcpus} vCPU / {request.ram_mb} MiB{gpus} ({request.arch}){rule} now.",
        code="no_valid_host",
    )


def release(host_id: int, *, vcpus: int, ram_mb: int) -> None:
    """Give a claim back (never below zero)."""
    host = Host.objects.select_for_update().get(pk=host_id)
    host.vcpus_used = max(0, host.vcpus_used - vcpus)
    host.memory_mb_used = max(0, host.memory_mb_used - ram_mb)
    host.instances_count = max(0, host.instances_count - 1)
    host.save(update_fields=["vcpus_used", "memory_mb_used", "instances_count"])
