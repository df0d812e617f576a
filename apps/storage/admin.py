"""Back office: storage pools (capacity read from the backends), volume types, and every
tenant's volumes and snapshots. Writes go through the services."""

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin, call, operator
from apps.storage import services
from apps.storage.models import Backup, Snapshot, StoragePool, Volume, VolumeType

GiB = 1 << 30


@admin.register(StoragePool)
class StoragePoolAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "region", "availability_zone", "host", "enabled", "capacity", "used",
                    "refreshed_at", "state_reason"]
    list_filter = ["backend", "enabled", "region"]
    fields = ["name", "backend", "region", "availability_zone", "host", "config", "tags", "enabled", "holds_backups"]
    actions = ["enable", "disable", "refresh"]

    @admin.display(description="capacity (GiB)")
    def capacity(self, pool):
        return pool.capacity_bytes // GiB

    @admin.display(description="allocated (GiB)")
    def used(self, pool):
        return pool.allocated_bytes // GiB

    def get_readonly_fields(self, request, obj=None):
        return ["name", "backend", "region", "availability_zone", "host", "config"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            call(request, services.update_storage_pool, pool=obj, enabled=obj.enabled, tags=obj.tags,
                 holds_backups=obj.holds_backups, success="Pool saved.")
            return
        pool = services.add_storage_pool(operator(request), name=obj.name, backend=obj.backend, region=obj.region,
                                         availability_zone=obj.availability_zone, host=obj.host, config=obj.config,
                                         tags=obj.tags)
        obj.pk = pool.pk

    @admin.action(description="Enable selected pools")
    def enable(self, request, queryset):
        for pool in queryset:
            call(request, services.update_storage_pool, pool=pool, enabled=True, success=f"{pool.name} enabled.")

    @admin.action(description="Disable selected pools (no new volumes)")
    def disable(self, request, queryset):
        for pool in queryset:
            call(request, services.update_storage_pool, pool=pool, enabled=False, success=f"{pool.name} disabled.")

    @admin.action(description="Read capacity from the backends")
    def refresh(self, request, queryset):
        services.refresh_storage_pools()


@admin.register(VolumeType)
class VolumeTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "pool", "multi_attach", "is_public", "is_default"]

    def get_readonly_fields(self, request, obj=None):
        return ["name", "pool", "multi_attach"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            call(request, services.update_volume_type, volume_type=obj, description=obj.description,
                 is_public=obj.is_public, is_default=obj.is_default, success="Volume type saved.")
            return
        volume_type = services.create_volume_type(operator(request), name=obj.name, pool=obj.pool,
                                                  description=obj.description, multi_attach=obj.multi_attach,
                                                  is_public=obj.is_public, is_default=obj.is_default)
        obj.pk = volume_type.pk


@admin.register(Volume)
class VolumeAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "size_gb", "volume_type", "status", "created_at"]
    list_filter = ["status", "pool", "volume_type"]
    search_fields = ["public_id", "name", "tenant__name"]
    list_select_related = ["tenant", "volume_type"]


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "volume", "size_gb", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["public_id", "name", "tenant__name", "volume__public_id"]
    list_select_related = ["tenant", "volume"]


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "name", "tenant", "volume_public_id", "pool", "size_gb", "status", "created_at"]
    list_filter = ["status", "pool"]
    search_fields = ["public_id", "name", "tenant__name", "volume_public_id"]
    list_select_related = ["tenant", "pool"]
