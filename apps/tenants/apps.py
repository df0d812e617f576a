from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "apps.tenants"
    label = "tenants"
    verbose_name = "Tenants and access"

    def ready(self):
        from apps.core.nav import register_nav
        from apps.core.policies import register_area
        from apps.tenants.quotas import register_quota

        register_area("iam", "Identity and access")
        register_area("compute", "Compute")
        register_quota("members", "Sub-accounts", default=20, regional=False)
        register_quota("key_pairs", "Key pairs", default=20)
        register_nav("compute", "Key pairs", "keypair-list", area="compute")
        register_nav("iam", "Members", "member-list", area="iam")
        register_nav("iam", "Roles and policies", "role-list")
        register_nav("iam", "API tokens", "token-list")
        register_nav("iam", "Tenant", "tenant-settings")
