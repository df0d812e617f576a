from django.urls import path

from apps.console import views

urlpatterns = [
    path("instances/<str:public_id>/console/", views.InstanceConsoleView.as_view(), name="instance-console"),
]
