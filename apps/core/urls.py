from django.urls import path

from apps.core import views

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("dashboard/quotas", views.QuotaFragment.as_view(), name="dashboard-quotas"),
    path("switch-tenant", views.switch_tenant, name="switch-tenant"),
    path("audit/", views.AuditListView.as_view(), name="audit-list"),
    path("operations/", views.OperationListView.as_view(), name="operation-list"),
    path("operations/<str:public_id>/", views.OperationDetailView.as_view(), name="operation-detail"),
    path("operations/<str:public_id>/download", views.OperationDownloadView.as_view(), name="operation-download"),
]
