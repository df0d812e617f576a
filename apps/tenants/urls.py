from django.contrib.auth import views as auth_views
from django.urls import path

from apps.tenants import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.SignUpView.as_view(), name="signup-page"),
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(template_name="tenants/password_reset.html"),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="tenants/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(template_name="tenants/password_reset_confirm.html"),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="tenants/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path("members/", views.MemberListView.as_view(), name="member-list"),
    path("members/<str:public_id>/", views.MemberUpdateView.as_view(), name="member-update"),
    path("roles/", views.RoleListView.as_view(), name="role-list"),
    path("tokens/", views.TokenListView.as_view(), name="token-list"),
    path("tokens/<str:public_id>/revoke", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("key-pairs/", views.KeyPairListView.as_view(), name="keypair-list"),
    path("key-pairs/<str:public_id>/delete", views.KeyPairDeleteView.as_view(), name="keypair-delete"),
    path("tenant/", views.TenantSettingsView.as_view(), name="tenant-settings"),
]
