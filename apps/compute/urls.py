from django.urls import path

from apps.compute import views

urlpatterns = [
    path("instances/", views.InstanceListView.as_view(), name="instance-list"),
    path("instances/estimate", views.InstanceEstimateView.as_view(), name="instance-estimate"),
    path("instances/<str:public_id>/", views.InstanceDetailView.as_view(), name="instance-detail"),
    path("instances/<str:public_id>/console-log", views.InstanceConsoleLogView.as_view(), name="instance-console-log"),
    path("instances/<str:public_id>/<str:action>", views.InstanceActionView.as_view(), name="instance-action"),
]
