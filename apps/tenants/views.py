"""Console pages for sign-in/up, members, API tokens, key pairs and the tenant itself.
Thin: selectors to read, services to write, domain errors shown on the page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.views import View

from apps.core import audit
from apps.core.middleware import SESSION_TENANT_KEY, base_actor
from apps.core.models import PlatformSettings
from apps.core.policies import ROLE_CHOICES, ROLE_POLICIES, policies
from apps.core.views import ConsoleView, error_status, run_service
from apps.tenants import forms, selectors, services


class LoginView(auth_views.LoginView):
    template_name = "tenants/login.html"
    authentication_form = forms.ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        audit.record(base_actor(self.request, user=form.get_user()), action="session.login", area="iam")
        return response


class SignUpView(View):
    template_name = "tenants/signup.html"

    def _render(self, form, status=200):
        return render(self.request, self.template_name, {"form": form, "platform": PlatformSettings.load()}, status=status)

    def get(self, request):
        if request.user.is_authenticated:
            return redirect("dashboard")
        return self._render(forms.SignUpForm())

    def post(self, request):
        form = forms.SignUpForm(request.POST)
        if not form.is_valid():
            return self._render(form, status=400)
        ok, result = run_service(request, form, services.sign_up, **form.cleaned_data)
        if not ok:
            return self._render(form, status=error_status(result))
        user = result.memberships.get().user
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_TENANT_KEY] = result.public_id
        messages.success(request, f"Welcome! Tenant {result.name} is ready.")
        return redirect("dashboard")


class MemberListView(ConsoleView):
    template_name = "tenants/member_list.html"

    def get(self, request, form=None, status=200):
        return self.render(
            {
                "members": selectors.list_members(self.actor),
                "form": form or forms.SubAccountForm(),
                "can_manage": self.actor.allows("iam", "change"),
            },
            status=status,
        )

    def post(self, request):
        form = forms.SubAccountForm(request.POST)
        if not form.is_valid():
            return self.get(request, form=form, status=400)
        ok, result = self.call(form, services.create_sub_account, success="Sub-account created.", **form.cleaned_data)
        if not ok:
            return self.get(request, form=form, status=error_status(result))
        return redirect("member-list")


class MemberUpdateView(ConsoleView):
    def post(self, request, public_id):
        member = selectors.get_member(self.actor, public_id)
        form = forms.MemberUpdateForm(request.POST)
        if form.is_valid():
            self.call(form, services.update_member, membership=member, success="Member updated.", **form.cleaned_data)
            for error in form.non_field_errors():
                messages.error(request, error)
        else:
            messages.error(request, "Choose a valid role.")
        return redirect("member-list")


class RoleListView(ConsoleView):
    """Roles, the named policies they carry, and every policy a member can be given."""

    template_name = "tenants/role_list.html"

    def get(self, request):
        catalogue = policies()
        roles = [
            {"role": value, "label": label, "policies": [catalogue[name] for name in ROLE_POLICIES[value]]}
            for value, label in ROLE_CHOICES
        ]
        return self.render({"roles": roles, "policies": sorted(catalogue.values(), key=lambda p: p.name)})


class TokenListView(ConsoleView):
    template_name = "tenants/token_list.html"

    def get(self, request, form=None, status=200, secret=None):
        return self.render(
            {"tokens": selectors.list_api_tokens(self.actor), "form": form or forms.ApiTokenForm(), "secret": secret},
            status=status,
            secret=secret is not None,
        )

    def post(self, request):
        form = forms.ApiTokenForm(request.POST)
        if not form.is_valid():
            return self.get(request, form=form, status=400)
        data = form.cleaned_data
        ok, result = self.call(
            form,
            services.create_api_token,
            name=data["name"],
            scope=data["scope"],
            tenant=self.actor.tenant if data["bind_to_tenant"] else None,
            expires_in_days=data["expires_in_days"],
        )
        if not ok:
            return self.get(request, form=form, status=error_status(result))
        # The secret is shown in this response only; it is not stored anywhere.
        return self.get(request, secret=result[1])


class TokenRevokeView(ConsoleView):
    def post(self, request, public_id):
        token = selectors.get_api_token(self.actor, public_id)
        self.call(None, services.revoke_api_token, token=token, success=f"Token {token.name} revoked.")
        return redirect("token-list")


class KeyPairListView(ConsoleView):
    template_name = "tenants/keypair_list.html"

    def get(self, request, import_form=None, generate_form=None, status=200, private_key=None, created=None):
        return self.render(
            {
                "page": self.paginate(selectors.list_key_pairs(self.actor)),
                "import_form": import_form or forms.KeyPairImportForm(),
                "generate_form": generate_form or forms.KeyPairGenerateForm(),
                "private_key": private_key,
                "created": created,
                "can_create": self.actor.allows("compute", "create"),
            },
            status=status,
            secret=private_key is not None,
        )

    def post(self, request):
        if request.POST.get("mode") == "generate":
            form = forms.KeyPairGenerateForm(request.POST)
            forms_ctx = {"generate_form": form}
            service = services.generate_key_pair
        else:
            form = forms.KeyPairImportForm(request.POST)
            forms_ctx = {"import_form": form}
            service = services.import_key_pair
        if not form.is_valid():
            return self.get(request, status=400, **forms_ctx)
        ok, result = self.call(form, service, **form.cleaned_data)
        if not ok:
            return self.get(request, status=error_status(result), **forms_ctx)
        if isinstance(result, tuple):
            # Generated: the private key is shown on this response only.
            return self.get(request, private_key=result[1], created=result[0])
        messages.success(request, f"Key pair {result.name} imported.")
        return redirect("keypair-list")


class KeyPairDeleteView(ConsoleView):
    def post(self, request, public_id):
        key_pair = selectors.get_key_pair(self.actor, public_id)
        self.call(None, services.delete_key_pair, key_pair=key_pair, success=f"Key pair {key_pair.name} deleted.")
        return redirect("keypair-list")


class TenantSettingsView(ConsoleView):
    template_name = "tenants/tenant_settings.html"

    def get(self, request, rename_form=None, create_form=None, status=200):
        tenant = selectors.get_tenant(self.actor) if self.actor.tenant else None
        return self.render(
            {
                "tenant": tenant,
                "rename_form": rename_form or forms.TenantNameForm(initial={"name": tenant.name if tenant else ""}),
                "create_form": create_form or forms.TenantNameForm(),
            },
            status=status,
        )

    def post(self, request):
        form = forms.TenantNameForm(request.POST)
        creating = request.POST.get("mode") == "create"
        ctx = {"create_form": form} if creating else {"rename_form": form}
        if not form.is_valid():
            return self.get(request, status=400, **ctx)
        if creating:
            ok, result = self.call(form, services.create_tenant, name=form.cleaned_data["name"])
            if ok:
                request.session[SESSION_TENANT_KEY] = result.public_id
                messages.success(request, f"Tenant {result.name} created; you are its owner.")
        else:
            ok, result = self.call(
                form, services.rename_tenant, tenant=selectors.get_tenant(self.actor), name=form.cleaned_data["name"],
                success="Tenant renamed.",
            )
        if not ok:
            return self.get(request, status=error_status(result), **ctx)
        return redirect("tenant-settings")
