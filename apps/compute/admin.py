"""Back office: regions, clusters, hosts, flavors, images, instances. Writes go through the
services."""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from apps.compute import services
from apps.compute.models import Cluster, Flavor, Host, Image, Instance, Region
from apps.core.admin import ReadOnlyAdmin, call, operator


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "region", "virt_type", "tags"]
    list_filter = ["region", "virt_type"]


class AddHostForm(forms.Form):
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.select_related("region"))
    name = forms.CharField(max_length=128)
    uri = forms.CharField(max_length=255, initial="qemu:///system",
                          help_text="qemu:///system, qemu+ssh://root@host/system, qemu+tls://host/system")
    management_address = forms.GenericIPAddressField(initial="127.0.0.1")


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "cluster", "state", "effective_virt_type", "arch", "cpu_usage", "memory_usage",
                    "instances_count", "heartbeat_at"]
    list_filter = ["state", "cluster__region", "cluster", "arch", "kvm_usable"]
    search_fields = ["name", "uri", "hostname", "public_id"]
    # Read from libvirt or kept by the scheduler and heartbeat; the state changes through actions.
    OBSERVED = ["hostname", "arch", "cpu_model", "vcpus", "memory_mb", "numa_nodes", "kvm_usable", "pci_devices",
                "hypervisor_version", "heartbeat_at", "vcpus_used", "memory_mb_used", "instances_count"]
    SETTINGS = ["management_address", "virt_type", "cpu_allocation_ratio", "ram_allocation_ratio",
                "reserved_memory_mb"]
    readonly_fields = ["public_id", "name", "cluster", "uri", "state", "state_reason", *OBSERVED]
    fields = ["public_id", "name", "cluster", "uri", "state", "state_reason", *SETTINGS, *OBSERVED]
    actions = ["enable", "disable", "maintenance", "remove"]

    @admin.display(description="vCPU used / capacity")
    def cpu_usage(self, host):
        return f"{host.vcpus_used} / {host.vcpus_capacity}"

    @admin.display(description="RAM MiB used / capacity")
    def memory_usage(self, host):
        return f"{host.memory_mb_used} / {host.memory_mb_capacity}"

    def get_urls(self):
        return [path("add-host/", self.admin_site.admin_view(self.add_host_view), name="compute_host_addhost"),
                *super().get_urls()]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:compute_host_addhost")

    def add_host_view(self, request):
        """Adding a host connects to its libvirt first (services.add_host)."""
        form = AddHostForm(request.POST or None, initial={"uri": settings.PORTAL_LIBVIRT_URI})
        if request.method == "POST" and form.is_valid():
            if call(request, services.add_host, success="Host added.", **form.cleaned_data):
                return redirect("admin:compute_host_changelist")
        context = {**self.admin_site.each_context(request), "title": "Add a host", "form": form,
                   "opts": self.model._meta}
        return render(request, "admin/compute/add_host.html", context)

    def save_model(self, request, obj, form, change):
        call(request, services.update_host, host=obj, success="Host saved.",
             **{field: form.cleaned_data[field] for field in self.SETTINGS})

    def _set_state(self, request, queryset, state):
        for host in queryset:
            call(request, services.set_host_state, host=host, state=state, success=f"{host.name}: {state}.")

    @admin.action(description="Enable selected hosts")
    def enable(self, request, queryset):
        self._set_state(request, queryset, Host.ENABLED)

    @admin.action(description="Disable selected hosts (no new instances)")
    def disable(self, request, queryset):
        self._set_state(request, queryset, Host.DISABLED)

    @admin.action(description="Put selected hosts in maintenance")
    def maintenance(self, request, queryset):
        self._set_state(request, queryset, Host.MAINTENANCE)

    @admin.action(description="Remove selected hosts (only empty ones)")
    def remove(self, request, queryset):
        for host in queryset:
            call(request, services.remove_host, host=host, success=f"{host.name} removed.")

    def has_delete_permission(self, request, obj=None):
        return False  # the "remove" action checks that the host is empty


@admin.register(Flavor)
class FlavorAdmin(admin.ModelAdmin):
    list_display = ["name", "vcpus", "ram_mb", "disk_gb", "gpu_count", "is_public", "is_active"]
    list_filter = ["is_public", "is_active"]
    filter_horizontal = ["tenants"]
    SIZE_FIELDS = ["name", "vcpus", "ram_mb", "disk_gb", "gpu_count", "gpu_type", "extra_specs"]

    def get_readonly_fields(self, request, obj=None):
        return self.SIZE_FIELDS if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            call(request, services.update_flavor, flavor=obj, description=obj.description, is_public=obj.is_public,
                 is_active=obj.is_active, success="Flavor saved.")
            return
        data = {f: form.cleaned_data[f] for f in self.SIZE_FIELDS}
        flavor = services.create_flavor(operator(request), description=obj.description, is_public=obj.is_public,
                                        **data)
        obj.pk = flavor.pk


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "owner", "visibility", "status", "boot", "arch", "os_distro", "size_bytes"]
    list_filter = ["visibility", "status", "boot", "arch"]
    search_fields = ["name", "public_id", "owner__name"]
    readonly_fields = ["public_id", "owner", "status", "boot", "disk_format", "kernel_file", "initrd_file",
                       "disk_file", "size_bytes", "checksum_sha256", "created_by", "created_at"]
    filter_horizontal = ["shared_with"]

    def has_add_permission(self, request):
        return False


@admin.register(Instance)
class InstanceAdmin(ReadOnlyAdmin):
    """Every tenant's instances; power actions and the console, as an operator."""

    list_display = ["public_id", "name", "tenant", "status", "host", "flavor", "created_at", "console"]
    list_filter = ["status", "host", "availability_zone"]
    search_fields = ["public_id", "name", "tenant__name"]
    list_select_related = ["tenant", "host", "flavor"]
    actions = ["start", "stop", "force_stop", "reboot", "restore", "live_migrate", "migrate"]

    @admin.display(description="Console")
    def console(self, instance):
        if instance.status != Instance.RUNNING:
            return "—"
        return format_html('<a href="{}" target="_blank">Open console</a>',
                           reverse("instance-console", args=[instance.public_id]))

    def _each(self, request, queryset, service, verb, **kwargs):
        for instance in queryset:
            call(request, service, instance=instance, success=f"{instance.public_id}: {verb}.", **kwargs)

    @admin.action(description="Start selected instances")
    def start(self, request, queryset):
        self._each(request, queryset, services.start_instance, "starting")

    @admin.action(description="Stop selected instances (ACPI)")
    def stop(self, request, queryset):
        self._each(request, queryset, services.stop_instance, "stopping")

    @admin.action(description="Power off selected instances")
    def force_stop(self, request, queryset):
        self._each(request, queryset, services.stop_instance, "powering off", force=True)

    @admin.action(description="Reboot selected instances")
    def reboot(self, request, queryset):
        self._each(request, queryset, services.reboot_instance, "rebooting")

    @admin.action(description="Restore selected instances from the recycle bin")
    def restore(self, request, queryset):
        self._each(request, queryset, services.restore_instance, "restoring")

    @admin.action(description="Live-migrate selected instances (the scheduler picks the hosts)")
    def live_migrate(self, request, queryset):
        self._each(request, queryset, services.migrate_instance, "live-migrating", live=True)

    @admin.action(description="Cold-migrate selected instances (powered off and on again if running)")
    def migrate(self, request, queryset):
        self._each(request, queryset, services.migrate_instance, "migrating")
