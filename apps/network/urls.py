from django.urls import path

from apps.network import views

urlpatterns = [
    path("vpcs/", views.VpcListView.as_view(), name="vpc-list"),
    path("vpcs/<str:public_id>/", views.VpcDetailView.as_view(), name="vpc-detail"),
    path("vpcs/<str:public_id>/<str:action>", views.VpcActionView.as_view(), name="vpc-action"),
    path("subnets/<str:public_id>/<str:action>", views.SubnetActionView.as_view(), name="subnet-action"),
    path("ports/<str:public_id>/<str:action>", views.PortActionView.as_view(), name="port-action"),
    path("security-groups/", views.SecurityGroupListView.as_view(), name="security-group-list"),
    path("security-groups/<str:public_id>/", views.SecurityGroupDetailView.as_view(), name="security-group-detail"),
    path("security-groups/<str:public_id>/<str:action>", views.SecurityGroupActionView.as_view(),
         name="security-group-action"),
    path("security-groups/<str:public_id>/rules/<str:rule_id>/<str:action>",
         views.SecurityGroupRuleActionView.as_view(), name="security-group-rule-action"),
]
