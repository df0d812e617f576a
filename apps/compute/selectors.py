"""Compute reads shared by the API, the pages and the back office."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.compute.models import Flavor, Image, Instance, InstanceGroup
from apps.core.actor import Actor
from apps.core.exceptions import NotFound
from apps.core.models import AuditRecord


def list_instances(actor: Actor, *, include_deleted: bool = False) -> QuerySet[Instance]:
    from apps.network.models import Port

    # Only the joins the list shows: each extra join costs PostgreSQL planning time per page.
    interfaces = (Port.objects.select_related("subnet__vpc").prefetch_related("addresses", "security_groups")
                  .order_by("device_index"))
    return Instance.objects.for_actor(actor, include_deleted=include_deleted).select_related(
        "flavor", "image", "host", "availability_zone", "key_pair", "group"
    ).prefetch_related(Prefetch("ports", queryset=interfaces))


def get_instance(actor: Actor, public_id: str, *, include_deleted: bool = False) -> Instance:
    instance = (
        list_instances(actor, include_deleted=include_deleted)
        .select_related("created_by", "tenant")
        .filter(public_id=public_id)
        .first()
    )
    if instance is None:
        raise NotFound(f"No instance {public_id}.")
    return instance


def instance_actions(actor: Actor, instance: Instance) -> QuerySet[AuditRecord]:
    """The instance's action history: who did what, when, with what result."""
    return AuditRecord.objects.for_actor(actor).filter(resource_id=instance.public_id)


def list_flavors(actor: Actor) -> QuerySet[Flavor]:
    return Flavor.objects.for_actor(actor)


def list_images(actor: Actor) -> QuerySet[Image]:
    return Image.objects.for_actor(actor).filter(deleted_at__isnull=True).select_related("owner")


def list_instance_groups(actor: Actor) -> QuerySet[InstanceGroup]:
    return InstanceGroup.objects.for_actor(actor).prefetch_related("instances")


def host_bound_volume(instance: Instance):
    """A volume of the instance that lives on its host (a dir pool's file), if any: such an
    instance cannot move to another host; RBD volumes are reached from anywhere."""
    from apps.storage.models import StoragePool, VolumeAttachment

    return (VolumeAttachment.objects.select_related("volume__pool__host").filter(instance=instance)
            .exclude(volume__pool__backend=StoragePool.RBD).first())
