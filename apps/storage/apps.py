from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "apps.storage"
    label = "storage"
    verbose_name = "Block storage"

    def ready(self):
        from apps.core.nav import register_nav
        from apps.core.policies import register_area
        from apps.core.tasks import track_failures
        from apps.storage import services
        from apps.storage.models import Backup, Snapshot, Volume
        from apps.tenants.quotas import register_quota

        register_area("storage", "Block storage")
        register_quota("volumes", "Volumes", default=20)
        register_quota("volume_gb", "Volume storage", default=1000, unit="GiB")
        register_quota("snapshots", "Volume snapshots", default=50)
        register_quota("backups", "Volume backups", default=20)
        register_quota("backup_gb", "Backup storage", default=2000, unit="GiB")
        register_nav("storage", "Volumes", "volume-list", area="storage")
        track_failures(Volume, publish=services.publish_volume)
        track_failures(Snapshot, publish=services.publish_snapshot)
        track_failures(Backup, publish=services.publish_backup)

        from apps.compute.signals import instance_deleted
        from apps.storage.services import release_attachments

        instance_deleted.connect(release_attachments, dispatch_uid="storage.release_attachments")
