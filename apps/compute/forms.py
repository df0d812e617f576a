from django import forms


class InstanceCreateForm(forms.Form):
    name = forms.CharField(max_length=128)
    flavor = forms.ChoiceField()
    image = forms.ChoiceField()
    key_pair = forms.ChoiceField(required=False)
    isolation_group = forms.ChoiceField(required=False)
    count = forms.IntegerField(min_value=1, max_value=20, initial=1)
    user_data = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), strip=False)
    password = forms.CharField(required=False, widget=forms.PasswordInput, strip=False, label="Root password",
                               help_text="Images that run cloud-init; 8 to 72 characters")
    subnet = forms.ChoiceField(required=False, label="Network (subnet)")
    security_groups = forms.MultipleChoiceField(required=False, help_text="Default: the VPC's default group")
    ip_address = forms.CharField(required=False, max_length=45, label="Fixed IP (one instance)")
    billing_mode = forms.ChoiceField(choices=[("on_demand", "on demand (per second while running)"),
                                              ("monthly", "monthly, prepaid"), ("yearly", "yearly, prepaid")],
                                     initial="on_demand", required=False, label="Billing")
    periods = forms.IntegerField(min_value=1, max_value=36, initial=1, required=False,
                                 help_text="Prepaid: months or years")
    auto_renew = forms.BooleanField(required=False, label="Renew automatically (prepaid)")

    def __init__(self, *args, flavors, images, key_pairs, groups, subnets=(), security_groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flavor"].choices = [(f.name, str(f)) for f in flavors]
        self.fields["image"].choices = [(i.public_id, i.name) for i in images]
        self.fields["key_pair"].choices = [("", "none")] + [(k.public_id, k.name) for k in key_pairs]
        self.fields["isolation_group"].choices = [("", "none")] + [
            (g.public_id, f"{g.name} ({g.policy})") for g in groups]
        self.fields["subnet"].choices = [("", "no network")] + [
            (s.public_id, f"{s.vpc.name} / {s.name} ({s.cidr})") for s in subnets]
        self.fields["security_groups"].choices = [(g.public_id, f"{g.vpc.name} / {g.name}") for g in security_groups]

    def service_arguments(self) -> dict:
        """What create_instances takes: empty choices as None."""
        data = dict(self.cleaned_data)
        for optional in ("key_pair", "isolation_group", "subnet", "ip_address"):
            data[optional] = data[optional] or None
        data["security_groups"] = data["security_groups"] or None
        data["billing_mode"] = data["billing_mode"] or "on_demand"
        data["periods"] = data["periods"] or 1
        return data


class ResizeForm(forms.Form):
    flavor = forms.ChoiceField(help_text="Running: vCPUs and memory are added live; stop it to shrink it.")

    def __init__(self, *args, flavors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flavor"].choices = [(f.name, str(f)) for f in flavors]


class RebuildForm(forms.Form):
    image = forms.ChoiceField(help_text="Reinstalls the instance: what its boot disk holds is lost.")

    def __init__(self, *args, images, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["image"].choices = [(i.public_id, i.name) for i in images]
