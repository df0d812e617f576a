"""/billing/webhooks/<gateway> (e.g. /billing/webhooks/stripe): where gateways send events."""

from django.urls import path

from apps.billing.webhooks import gateway_webhook

urlpatterns = [
    path("<str:gateway>", gateway_webhook, name="billing-webhook"),
]
