from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def healthz(request):
    return JsonResponse({"status": "ok"})


admin.site.site_header = "Cloud portal back office"
admin.site.site_title = "Back office"
admin.site.index_title = "Operations"

urlpatterns = [
    path("backoffice/", admin.site.urls),
    path("api/v1/", include("cloudportal.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("billing/webhooks/", include("apps.billing.webhook_urls")),
    path("", include("apps.tenants.urls")),
    path("", include("apps.console.urls")),
    path("", include("apps.compute.urls")),
    path("", include("apps.storage.urls")),
    path("", include("apps.network.urls")),
    path("", include("apps.billing.urls")),
    path("", include("apps.core.urls")),
]
