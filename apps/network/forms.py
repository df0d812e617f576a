"""Forms of the network pages. They check shape only; the services check the addresses,
ranges and references (their field errors land on these fields, which carry the same names)."""

from django import forms

from apps.network.models import Listener
from apps.network.models import SecurityGroupRule as Rule


def _choices(values) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class ServiceForm(forms.Form):
    """A form whose cleaned data are the service's keyword arguments."""

    def service_arguments(self) -> dict:
        return dict(self.cleaned_data)


class VpcCreateForm(ServiceForm):
    name = forms.CharField(max_length=128)
    cidr = forms.CharField(label="IPv4 CIDR", max_length=43, initial="10.0.0.0/16", help_text="/16 to /28.")
    ipv6 = forms.BooleanField(label="Also IPv6", required=False, help_text="A unique-local /56.")
    description = forms.CharField(max_length=255, required=False)


class DescribedForm(ServiceForm):
    """Rename a VPC or a security group."""

    name = forms.CharField(max_length=128)
    description = forms.CharField(max_length=255, required=False)


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


class SecurityGroupCreateForm(ServiceForm):
    vpc = forms.ModelChoiceField(label="VPC", queryset=None, to_field_name="public_id", empty_label=None)
    name = forms.CharField(max_length=128)
    description = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, vpcs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["vpc"].queryset = vpcs
        self.fields["vpc"].label_from_instance = lambda v: f"{v.name} ({v.cidr})"


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


# --- elastic IPs and NAT gateways -------------------------------------------------------------

def _port_label(port) -> str:
    ipv4 = next((a.address for a in port.addresses.all() if ":" not in a.address), "")
    return f"{port.public_id} {ipv4} ({port.subnet.vpc.name}/{port.subnet.name})"


class EipAllocateForm(forms.Form):
    name = forms.CharField(max_length=128, required=False)
    bandwidth_mbps = forms.IntegerField(label="Bandwidth (Mbit/s)", initial=100)
    external_network = forms.ChoiceField(label="External network", required=False)
    ip_version = forms.TypedChoiceField(label="Address", choices=[(4, "IPv4"), (6, "IPv6")], coerce=int, initial=4,
                                        required=False, empty_value=4)

    def __init__(self, *args, networks, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["external_network"].choices = [("", "the region's default")] + [
            (n.public_id, f"{n.name} ({n.cidr}{' + ' + n.ipv6_cidr if n.ipv6_cidr else ''}, region {n.region.code}"
                          f"{', its default' if n.is_default else ''})")
            for n in networks]

    def service_arguments(self) -> dict:
        return {**self.cleaned_data, "external_network": self.cleaned_data["external_network"] or None}


class EipBindForm(forms.Form):
    """One choice: an instance (its primary interface), a network interface or a load balancer."""

    target = forms.ChoiceField(label="Bind to")

    def __init__(self, *args, instances, ports, load_balancers, **kwargs):
        super().__init__(*args, **kwargs)
        self._targets = ({i.public_id: ("instance", i) for i in instances} | {p.public_id: ("port", p) for p in ports}
                         | {b.public_id: ("load_balancer", b) for b in load_balancers})
        groups = [("Instances", [(i.public_id, f"{i.name} ({i.public_id})") for i in instances]),
                  ("Network interfaces", [(p.public_id, _port_label(p)) for p in ports]),
                  ("Load balancers", [(b.public_id, f"{b.name} VIP {b.vip} ({b.subnet.vpc.name})")
                                      for b in load_balancers])]
        self.fields["target"].choices = [(label, options) for label, options in groups if options]

    @property
    def has_targets(self) -> bool:
        return bool(self._targets)

    def service_arguments(self) -> dict:
        kind, target = self._targets[self.cleaned_data["target"]]
        return {kind: target}


class EipUpdateForm(ServiceForm):
    bandwidth_mbps = forms.IntegerField(label="Bandwidth (Mbit/s)")


class NatGatewayForm(ServiceForm):
    """Change a NAT gateway: its name, and the subnets it translates."""

    name = forms.CharField(max_length=128)
    subnets = forms.MultipleChoiceField(required=False, help_text="None chosen: the whole VPC.")
    description = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, subnets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subnets"].choices = [(s.public_id, f"{s.vpc.name} / {s.name} ({s.cidr})") for s in subnets]


class NatGatewayCreateForm(NatGatewayForm):
    vpc = forms.ModelChoiceField(label="VPC", queryset=None, to_field_name="public_id", empty_label=None)
    eip = forms.ModelChoiceField(label="Elastic IP", queryset=None, to_field_name="public_id", empty_label=None,
                                 help_text="An unbound one: the address the VPC goes out with.")
    field_order = ["vpc", "eip", "name", "subnets", "description"]

    def __init__(self, *args, vpcs, eips, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["vpc"].queryset = vpcs
        self.fields["vpc"].label_from_instance = lambda v: f"{v.name} ({v.cidr})"
        self.fields["eip"].queryset = eips
        self.fields["eip"].label_from_instance = lambda e: f"{e.address}{f' ({e.name})' if e.name else ''}"


class PortMappingCreateForm(ServiceForm):
    protocol = forms.ChoiceField(choices=_choices(("tcp", "udp")))
    external_port = forms.IntegerField(label="External port")
    internal_ip = forms.CharField(label="Internal IP", max_length=45,
                                  help_text="An address of one of the VPC's subnets.")
    internal_port = forms.IntegerField(label="Internal port")
    description = forms.CharField(max_length=255, required=False)


# --- load balancers and HA VIPs ---------------------------------------------------------------

class SubnetAddressForm(ServiceForm):
    """Something with an address of a subnet: a load balancer (its VIP), an HA VIP."""

    subnet = forms.ModelChoiceField(queryset=None, to_field_name="public_id", empty_label=None)
    name = forms.CharField(max_length=128)
    ip_address = forms.CharField(label="Address", max_length=45, required=False,
                                 help_text="Empty: the lowest free address.")
    description = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, subnets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subnet"].queryset = subnets
        self.fields["subnet"].label_from_instance = lambda s: f"{s.vpc.name} / {s.name} ({s.cidr})"

    def service_arguments(self) -> dict:
        return {**self.cleaned_data, "ip_address": self.cleaned_data["ip_address"] or None}


class ListenerForm(ServiceForm):
    """Change a listener: how it spreads connections, and its health check."""

    algorithm = forms.ChoiceField(choices=[(Listener.HASH, "hash: each connection to any member"),
                                           (Listener.SOURCE_IP, "source IP: a client sticks to one member")])
    health_check = forms.BooleanField(label="Health check", required=False, initial=True)
    health_interval = forms.IntegerField(label="Probe every (s)", required=False, help_text="1 to 300.")
    health_timeout = forms.IntegerField(label="Timeout (s)", required=False, help_text="1 to 60.")
    health_success = forms.IntegerField(label="Up after (probes)", required=False, help_text="1 to 10.")
    health_failure = forms.IntegerField(label="Down after (probes)", required=False, help_text="1 to 10.")


class ListenerCreateForm(ListenerForm):
    protocol = forms.ChoiceField(choices=_choices(("tcp", "udp")))
    port = forms.IntegerField()
    name = forms.CharField(max_length=128, required=False)
    field_order = ["protocol", "port", "name", "algorithm", "health_check"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field, default in (("health_interval", 5), ("health_timeout", 3), ("health_success", 2),
                               ("health_failure", 3)):
            self.fields[field].help_text += f" Empty: {default}."


class MemberCreateForm(forms.Form):
    instance = forms.ModelChoiceField(queryset=None, to_field_name="public_id", required=False,
                                      empty_label="— an address instead —",
                                      help_text="Its interface in the load balancer's VPC.")
    address = forms.CharField(max_length=45, required=False, help_text="An IPv4 address of the VPC, with no instance.")
    port = forms.IntegerField()
    weight = forms.IntegerField(initial=1, help_text="0 takes it out of the rotation.")

    def __init__(self, *args, instances, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].queryset = instances
        self.fields["instance"].label_from_instance = lambda i: f"{i.name} ({i.public_id})"

    def service_arguments(self) -> dict:
        return {**self.cleaned_data, "address": self.cleaned_data["address"] or None}


class MemberWeightForm(ServiceForm):
    weight = forms.IntegerField(widget=forms.NumberInput(attrs={
        "class": "input is-small", "style": "width: 5em", "aria-label": "Weight"}))


class HaVipPortsForm(ServiceForm):
    """The network interfaces that may take the address over (the service keeps them to its subnet)."""

    ports = forms.MultipleChoiceField(label="Network interfaces", required=False,
                                      help_text="Of the HA VIP's subnet.")

    def __init__(self, *args, ports, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ports"].choices = [(p.public_id, _port_label(p)) for p in ports]


class HaVipCreateForm(SubnetAddressForm, HaVipPortsForm):
    field_order = ["subnet", "name", "ip_address", "ports", "description"]
