"""Reads of the storage area for the API, pages and back office."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Prefetch, QuerySet

from apps.storage.models import Backup, Snapshot, Volume, VolumeAttachment, VolumeType

if TYPE_CHECKING:
    from apps.core.actor import Actor


def list_volumes(actor: Actor) -> QuerySet[Volume]:
    attachments = VolumeAttachment.objects.select_related("instance")
    return (Volume.objects.for_actor(actor).select_related("volume_type", "pool", "pool__region", "image",
                                                           "source_snapshot", "source_volume")
            .prefetch_related(Prefetch("attachments", queryset=attachments)))


def list_snapshots(actor: Actor) -> QuerySet[Snapshot]:
    return Snapshot.objects.for_actor(actor).select_related("volume")


def list_volume_types(actor: Actor) -> QuerySet[VolumeType]:
    return VolumeType.objects.for_actor(actor).select_related("pool", "pool__region")


def list_backups(actor: Actor) -> QuerySet[Backup]:
    return Backup.objects.for_actor(actor).select_related("pool")
