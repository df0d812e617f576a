from rest_framework import serializers

from apps.storage.models import Backup, Snapshot, StoragePool, Volume, VolumeAttachment, VolumeType


class VolumeTypeSerializer(serializers.ModelSerializer):
    region = serializers.CharField(source="pool.region.code")
    backend = serializers.CharField(source="pool.backend")

    class Meta:
        model = VolumeType
        fields = ["name", "description", "region", "backend", "multi_attach", "is_default"]
        read_only_fields = fields


class AttachmentSerializer(serializers.ModelSerializer):
    instance = serializers.CharField(source="instance.public_id")

    class Meta:
        model = VolumeAttachment
        fields = ["instance", "device", "is_root", "attached_at"]
        read_only_fields = fields


class VolumeSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    volume_type = serializers.CharField(source="volume_type.name")
    region = serializers.CharField(source="pool.region.code")
    image = serializers.CharField(source="image.public_id", default=None)
    source_snapshot = serializers.CharField(source="source_snapshot.public_id", default=None)
    source_volume = serializers.CharField(source="source_volume.public_id", default=None)
    source_backup = serializers.CharField(source="source_backup.public_id", default=None)
    attachments = AttachmentSerializer(many=True, read_only=True)
    bootable = serializers.SerializerMethodField()

    class Meta:
        model = Volume
        fields = ["id", "name", "description", "size_gb", "volume_type", "region", "status", "status_reason",
                  "multi_attach", "bootable", "image", "source_snapshot", "source_volume", "source_backup",
                  "attachments", "tags", "created_at", "recycled_at"]
        read_only_fields = fields

    def get_bootable(self, volume) -> bool:
        return volume.image_id is not None


class VolumeEstimateSerializer(serializers.Serializer):
    size_gb = serializers.IntegerField(min_value=1, max_value=16384, help_text="GiB")
    volume_type = serializers.CharField(max_length=64, required=False, allow_null=True, default=None,
                                        help_text="Default: the platform's default type")


class VolumeCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    size_gb = serializers.IntegerField(required=False, allow_null=True, default=None,
                                       help_text="GiB; default: the source's size")
    volume_type = serializers.CharField(max_length=64, required=False, allow_null=True, default=None,
                                        help_text="Default: the platform's default type, or the source's")
    image = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                  help_text="A disk image (img-…): a bootable volume")
    snapshot = serializers.CharField(max_length=32, required=False, allow_null=True, default=None)
    source_volume = serializers.CharField(max_length=32, required=False, allow_null=True, default=None)
    backup = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                   help_text="Restore a backup (bak-…) into the new volume")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=128), required=False, max_length=50,
                                 default=list)


class VolumeUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=128), required=False, max_length=50)


class VolumeResizeSerializer(serializers.Serializer):
    size_gb = serializers.IntegerField()


class AttachSerializer(serializers.Serializer):
    instance = serializers.CharField(max_length=32)
    device = serializers.CharField(max_length=8, required=False, allow_null=True, default=None,
                                   help_text="vdb…vdz; default: the first free one")


class DetachSerializer(serializers.Serializer):
    instance = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                     help_text="Needed when the volume is attached to several instances")


class _VolumeCopySerializer(serializers.ModelSerializer):
    """What snapshots and backups show alike."""

    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        fields = ["id", "name", "description", "volume", "size_gb", "status", "status_reason", "created_at"]
        read_only_fields = fields


class SnapshotSerializer(_VolumeCopySerializer):
    volume = serializers.CharField(source="volume.public_id")

    class Meta(_VolumeCopySerializer.Meta):
        model = Snapshot


class BackupSerializer(_VolumeCopySerializer):
    volume = serializers.CharField(source="volume_public_id", help_text="Kept when the volume is deleted.")

    class Meta(_VolumeCopySerializer.Meta):
        model = Backup


class VolumeCopyRequestSerializer(serializers.Serializer):
    """Take a snapshot or a backup of a volume."""

    volume = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class StoragePoolSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    region = serializers.CharField(source="region.code")
    availability_zone = serializers.CharField(source="availability_zone.code", default=None)
    host = serializers.CharField(source="host.name", default=None)

    class Meta:
        model = StoragePool
        fields = ["id", "name", "backend", "region", "availability_zone", "host", "tags", "enabled", "holds_backups",
                  "capacity_bytes", "allocated_bytes", "available_bytes", "refreshed_at", "state_reason"]
        read_only_fields = fields
