from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing"

    def ready(self):
        from django.core import checks

        from apps.billing.money import check_currencies
        from apps.core.policies import register_area

        register_area("billing", "Billing")
        checks.register(check_currencies)
