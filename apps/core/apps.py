from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Platform"

    def ready(self):
        from apps.core.nav import register_nav
        from apps.core.policies import register_area

        register_area("audit", "Audit log")
        register_nav("overview", "Dashboard", "dashboard")
        register_nav("audit", "Audit log", "audit-list", area="audit")
        register_nav("audit", "Operations", "operation-list")
