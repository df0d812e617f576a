"""Placement: filter the hosts that can take an instance, weigh them, claim the best.

The claim (vCPUs, RAM, instance count added to the host row) happens under the host's row lock
in the caller's transaction, re-checked after locking, so concurrent creates never push a host
past its overcommit ratios. A failed build gives the claim back with `release`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F
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


def _fits(host: Host, request: Request) -> bool:
    return (
        host.vcpus_used + request.vcpus <= host.vcpus_capacity
        and host.memory_mb_used + request.ram_mb <= host.memory_mb_capacity
    )


def _load(host: Host) -> float:
    """Weigher: the more free memory (then CPU) share, the better; least loaded first."""
    memory = host.memory_mb_used / host.memory_mb_capacity if host.memory_mb_capacity else 1.0
    cpu = host.vcpus_used / host.vcpus_capacity if host.vcpus_capacity else 1.0
    return memory + cpu / 2


def candidates(request: Request) -> list[Host]:
    """Enabled, alive hosts of the region (and zone) with the right arch and room, best first."""
    alive_since = timezone.now() - timedelta(seconds=settings.PORTAL_HOST_DOWN_AFTER)
    hosts = Host.objects.select_related("cluster").filter(
        state=Host.ENABLED, heartbeat_at__gte=alive_since, arch=request.arch,
        cluster__region__code=request.region,
    )
    if request.cluster is not None:
        hosts = hosts.filter(cluster=request.cluster)
    if request.group is not None:
        members = set(Instance.objects.filter(group=request.group, deleted_at__isnull=True, host__isnull=False)
                      .values_list("host_id", flat=True))
        if request.group.policy == InstanceGroup.ANTI_AFFINITY:
            hosts = hosts.exclude(pk__in=members)
        elif members:
            hosts = hosts.filter(pk__in=members)
    return sorted((h for h in hosts if _fits(h, request)), key=_load)


def claim(request: Request) -> Host:
    """Pick and claim a host; raise Conflict with the reason when none can take it."""
    for host in candidates(request)[:MAX_ATTEMPTS]:
        locked = Host.objects.select_for_update().select_related("cluster").get(pk=host.pk)
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
    raise Conflict(
        f"No host in {where} can take {request.vcpus} vCPU / {request.ram_mb} MiB ({request.arch}){rule} now.",
        code="no_valid_host",
    )


def release(host_id: int, *, vcpus: int, ram_mb: int) -> None:
    """Give a claim back (never below zero)."""
    host = Host.objects.select_for_update().get(pk=host_id)
    host.vcpus_used = max(0, host.vcpus_used - vcpus)
    host.memory_mb_used = max(0, host.memory_mb_used - ram_mb)
    host.instances_count = max(0, host.instances_count - 1)
    host.save(update_fields=["vcpus_used", "memory_mb_used", "instances_count"])
