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
    path("security-groups/<str:public_id>/rules/<str:row_id>/<str:action>",
         views.SecurityGroupRuleActionView.as_view(), name="security-group-rule-action"),
    path("eips/", views.EipListView.as_view(), name="eip-list"),
    path("eips/<str:public_id>/<str:action>", views.EipActionView.as_view(), name="eip-action"),
    path("nat-gateways/", views.NatGatewayListView.as_view(), name="nat-gateway-list"),
    path("nat-gateways/<str:public_id>/", views.NatGatewayDetailView.as_view(), name="nat-gateway-detail"),
    path("nat-gateways/<str:public_id>/<str:action>", views.NatGatewayActionView.as_view(), name="nat-gateway-action"),
    path("nat-gateways/<str:public_id>/mappings/<str:row_id>/<str:action>", views.PortMappingActionView.as_view(),
         name="port-mapping-action"),
]
