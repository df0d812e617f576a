from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "apps.compute"
    label = "compute"
    verbose_name = "Compute"

    def ready(self):
        from apps.compute.models import Instance
        from apps.compute.services import instance_status_recorded
        from apps.core.nav import register_nav
        from apps.core.policies import register_area
        from apps.core.tasks import track_failures
        from apps.tenants.quotas import register_quota

        register_area("compute", "Compute")
        register_quota("instances", "Instances", default=10)
        register_quota("vcpus", "vCPUs", default=20)
        register_quota("ram_mb", "RAM", default=40960, unit="MiB")
        register_quota("images", "Images", default=10)
        register_nav("compute", "Instances", "instance-list", area="compute")
        track_failures(Instance, publish=instance_status_recorded)
