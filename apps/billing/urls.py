from django.urls import path

from apps.billing import views

urlpatterns = [
    path("billing/overview/", views.OverviewView.as_view(), name="billing-overview"),
    path("billing/recharge/", views.RechargeView.as_view(), name="billing-recharge"),
    path("billing/transactions/", views.TransactionListView.as_view(), name="billing-transactions"),
    path("billing/orders/", views.OrderListView.as_view(), name="billing-orders"),
    path("billing/orders/<str:public_id>/", views.OrderDetailView.as_view(), name="billing-order"),
    path("billing/consumption/", views.ConsumptionView.as_view(), name="billing-consumption"),
    path("billing/subscriptions/", views.SubscriptionListView.as_view(), name="billing-subscriptions"),
    path("billing/subscriptions/<str:public_id>/<str:action>", views.SubscriptionActionView.as_view(),
         name="billing-subscription-action"),
    path("billing/prices/", views.PriceListView.as_view(), name="billing-prices"),
    path("billing/statements/", views.StatementListView.as_view(), name="billing-statements"),
    path("billing/statements/<str:month>.csv", views.StatementView.as_view(), {"csv": True},
         name="billing-statement-csv"),
    path("billing/statements/<str:month>/", views.StatementView.as_view(), name="billing-statement"),
    path("billing/notices/<int:notice_id>/read", views.NoticeReadView.as_view(), name="billing-notice-read"),
]
