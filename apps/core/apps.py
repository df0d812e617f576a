from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Platform"

    def ready(self):
        from django_q.signals import post_execute_in_worker

        from apps.core.nav import register_nav
        from apps.core.policies import register_area
        from apps.core.tasks import task_finished

        register_area("audit", "Audit log")
        register_nav("overview", "Dashboard", "dashboard")
        register_nav("audit", "Audit log", "audit-list", area="audit")
        register_nav("audit", "Operations", "operation-list")
        post_execute_in_worker.connect(task_finished, dispatch_uid="portal-tracked-tasks")
