"""Forms of the network pages. They check shape only; the services check the addresses,
ranges and references (their field errors land on these fields, which carry the same names)."""

from django import forms

from apps.network.models import SecurityGroupRule as Rule


def _choices(values) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class VpcCreateForm(forms.Form):
    name = forms.CharField(max_length=128)
    cidr = forms.CharField(label="IPv4 CIDR", max_length=43, initial="10.0.0.0/16", help_text="/16 to /28.")
    ipv6 = forms.BooleanField(label="Also IPv6", required=False, help_text="A unique-local /56.")
    description = forms.CharField(max_length=255, required=False)

    def service_arguments(self) -> dict:
        return dict(self.cleaned_data)


class DescribedForm(forms.Form):
    """Rename a VPC or a security group."""

    name = forms.CharField(max_length=128)
    description = forms.CharField(max_length=255, required=False)

    def service_arguments(self) -> dict:
        return dict(self.cleaned_data)


class SubnetCreateForm(forms.Form):
    name = forms.CharField(max_length=128)
    cidr = forms.CharField(label="IPv4 CIDR", max_length=43, help_text="Inside the VPC's block.")
    gateway_ip = forms.CharField(label="Gateway", max_length=45, required=False, help_text="Empty: the first address.")
    dns_nameservers = forms.CharField(label="DNS servers", max_length=255, required=False,
                                      help_text="Comma-separated addresses.")
    ipv6 = forms.BooleanField(label="Also IPv6", required=False, help_text="The VPC's next free /64.")
    dhcp_enabled = forms.BooleanField(label="DHCP", required=False, initial=True)

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {**data, "gateway_ip": data["gateway_ip"] or None,
                "dns_nameservers": [s.strip() for s in data["dns_nameservers"].split(",") if s.strip()]}


class PortCreateForm(forms.Form):
    subnet = forms.ModelChoiceField(queryset=None, to_field_name="public_id", empty_label=None)
    name = forms.CharField(max_length=128, required=False)
    ip_address = forms.CharField(label="Fixed IP", max_length=45, required=False,
                                 help_text="Empty: the lowest free address.")
    security_groups = forms.MultipleChoiceField(required=False, help_text="None chosen: the VPC's default group.")

    def __init__(self, *args, subnets, groups, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subnet"].queryset = subnets
        self.fields["subnet"].label_from_instance = lambda s: f"{s.name} ({s.cidr})"
        self.fields["security_groups"].choices = [(g.public_id, g.name) for g in groups]

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {**data, "ip_address": data["ip_address"] or None, "security_groups": data["security_groups"] or None}


class SecurityGroupCreateForm(forms.Form):
    vpc = forms.ModelChoiceField(label="VPC", queryset=None, to_field_name="public_id", empty_label=None)
    name = forms.CharField(max_length=128)
    description = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, vpcs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["vpc"].queryset = vpcs
        self.fields["vpc"].label_from_instance = lambda v: f"{v.name} ({v.cidr})"

    def service_arguments(self) -> dict:
        return dict(self.cleaned_data)


class RuleCreateForm(forms.Form):
    direction = forms.ChoiceField(choices=_choices((Rule.INGRESS, Rule.EGRESS)))
    ethertype = forms.ChoiceField(choices=_choices((Rule.IPV4, Rule.IPV6)))
    protocol = forms.ChoiceField(choices=_choices((Rule.TCP, Rule.UDP, Rule.ICMP, Rule.ANY)))
    port_range_min = forms.IntegerField(label="Port min", required=False, help_text="ICMP: the type.")
    port_range_max = forms.IntegerField(label="Port max", required=False, help_text="ICMP: the code.")
    remote_ip_prefix = forms.CharField(label="Remote CIDR", max_length=43, required=False,
                                       help_text="Empty, with no group: anywhere.")
    remote_group = forms.ChoiceField(required=False)
    description = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, groups, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["remote_group"].choices = [("", "none")] + [(g.public_id, g.name) for g in groups]

    def service_arguments(self) -> dict:
        return {**self.cleaned_data, "remote_group": self.cleaned_data["remote_group"] or None}
