from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing"

    def ready(self):
        from django.core import checks

        from apps.billing.money import check_currencies
        from apps.core.nav import register_nav
        from apps.core.policies import register_area

        register_area("billing", "Billing")
        checks.register(check_currencies)
        for label, url_name in [("Overview", "billing-overview"), ("Recharge", "billing-recharge"),
                                ("Transactions", "billing-transactions"), ("Orders", "billing-orders"),
                                ("Consumption", "billing-consumption"), ("Subscriptions", "billing-subscriptions"),
                                ("Price list", "billing-prices"), ("Statements", "billing-statements")]:
            register_nav("billing", label, url_name, area="billing")
