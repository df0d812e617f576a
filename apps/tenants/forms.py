"""Console forms: shape only. Rules (passwords, uniqueness, roles) live in the services."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.conf import settings

from apps.core.policies import ROLE_CHOICES
from apps.tenants.models import ApiToken
from apps.tenants.sshkeys import GENERATED_TYPES


class ThrottledAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing further tries after PORTAL_LOGIN_ATTEMPTS failures for a
    username from one address within PORTAL_LOGIN_WINDOW seconds."""

    def _key(self) -> str:
        username = (self.data.get("username") or "").lower()[:150]
        return f"login-fail:{getattr(self.request, 'client_ip', '')}:{username}"

    def clean(self):
        key = self._key()
        if cache.get(key, 0) >= settings.PORTAL_LOGIN_ATTEMPTS:
            raise ValidationError("Too many failed sign-in attempts. Try again in a few minutes.", code="throttled")
        try:
            return super().clean()
        except ValidationError:
            cache.add(key, 0, settings.PORTAL_LOGIN_WINDOW)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, settings.PORTAL_LOGIN_WINDOW)
            raise


class SignUpForm(forms.Form):
    tenant_name = forms.CharField(max_length=128, label="Organisation or project name")
    username = forms.CharField(max_length=150)
    email = forms.EmailField()
    password = forms.CharField(widget=forms.PasswordInput, strip=False)


class SubAccountForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, strip=False, help_text="At least 10 characters.")
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="readonly")


class MemberUpdateForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)
    is_active = forms.BooleanField(required=False, label="Active")


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=64)
    scope = forms.ChoiceField(choices=ApiToken.SCOPE_CHOICES, initial=ApiToken.READ_WRITE)
    bind_to_tenant = forms.BooleanField(required=False, initial=True, label="Only for the current tenant")
    expires_in_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Expires in (days)")


class KeyPairImportForm(forms.Form):
    name = forms.CharField(max_length=128)
    public_key = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Public key (OpenSSH format)")


class KeyPairGenerateForm(forms.Form):
    name = forms.CharField(max_length=128)
    key_type = forms.ChoiceField(choices=[(t, t) for t in GENERATED_TYPES], initial="ed25519")


class TenantNameForm(forms.Form):
    name = forms.CharField(max_length=128)
