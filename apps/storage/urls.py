from django.urls import path

from apps.storage import views

urlpatterns = [
    path("volumes/", views.VolumeListView.as_view(), name="volume-list"),
    path("volumes/estimate", views.VolumeEstimateView.as_view(), name="volume-estimate"),
    path("volumes/<str:public_id>/", views.VolumeDetailView.as_view(), name="volume-detail"),
    path("volumes/<str:public_id>/<str:action>", views.VolumeActionView.as_view(), name="volume-action"),
    path("snapshots/<str:public_id>/<str:action>", views.SnapshotActionView.as_view(), name="snapshot-action"),
]
