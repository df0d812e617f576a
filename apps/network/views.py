"""Console pages for virtual networks: VPCs (list, create; detail with its subnets, ports,
security groups, way out and a topology picture), security groups (list, create; detail with
the rules), elastic IPs (list with allocate, bind, unbind, bandwidth, release) and NAT gateways
(list, create; detail with the port mappings). Changes go through apps.network.services and
edge_services; the pages re-render with the field errors of a refused form, and show other
refusals (409s) as messages."""

from django.shortcuts import redirect

from apps.compute.selectors import list_instances
from apps.core.exceptions import NotFound
from apps.core.validation import lookup
from apps.core.views import ConsoleView, error_status
from apps.network import edge_services, forms, selectors, services
from apps.network.models import VPC, ElasticIP, ExternalNetwork, NatGateway, SecurityGroup
from apps.network.topology import topology


def _get_vpc(actor, public_id: str) -> VPC:
    return lookup(actor, selectors.list_vpcs(actor), public_id, field="vpc", label="VPC")


def _get_group(actor, public_id: str) -> SecurityGroup:
    return lookup(actor, selectors.list_security_groups(actor), public_id, field="security_group",
                  label="security group")


def _is_live(request) -> bool:
    return bool(request.headers.get("HX-Request"))


class _FormsPage(ConsoleView):
    """A page whose forms post to it or to its actions: a form the service refused is shown
    again with its errors (and the refusal's status); a done one goes on to `done()`."""

    detail_url = ""

    def page(self, obj, *, status: int = 200, **bound):
        raise NotImplementedError

    def done(self, obj, result):
        """The page of the object acted on, or of the one a list's form created."""
        return redirect(self.detail_url, public_id=(obj or result).public_id)

    def submit(self, obj, name: str, form, service, *, success: str, **kwargs):
        status = 400
        if form.is_valid():
            ok, result = self.call(form, service, success=success, **kwargs, **form.service_arguments())
            if ok:
                return self.done(obj, result)
            status = error_status(result)
        return self.page(obj, status=status, **{name: form})


class _ListPage(_FormsPage):
    """A list (its rows alone for htmx) with a create form that posts to it."""

    rows_template = ""
    created = ""  # the create form's success message

    def rows(self):
        raise NotImplementedError

    def create_form(self, data=None):
        raise NotImplementedError

    def create(self, actor, **arguments):
        raise NotImplementedError

    def extra(self) -> dict:
        """More for the page (the rows' own forms)."""
        return {}

    def get(self, request):
        return self.page(None)

    def post(self, request):
        return self.submit(None, "form", self.create_form(request.POST), self.create, success=self.created)

    def page(self, obj, *, status: int = 200, **bound):
        return self.render({"page": self.paginate(self.rows()), "form": self.create_form(),
                            "can_create": self.actor.allows("network", "create"), **self.extra(), **bound},
                           status=status, template=self.rows_template if _is_live(self.request) else None)


class VpcListView(_ListPage):
    template_name = "network/vpc_list.html"
    rows_template = "network/_vpc_rows.html"
    detail_url = "vpc-detail"
    created = "VPC created."
    create = staticmethod(services.create_vpc)

    def rows(self):
        return selectors.list_vpcs(self.actor)

    def create_form(self, data=None):
        return forms.VpcCreateForm(data)


class VpcDetailView(_FormsPage):
    template_name = "network/vpc_detail.html"
    detail_url = "vpc-detail"

    def get(self, request, public_id):
        return self.page(_get_vpc(self.actor, public_id))

    def _groups(self, vpc: VPC):
        return selectors.list_security_groups(self.actor).filter(vpc=vpc).order_by("-is_default", "name")

    def _port_form(self, vpc: VPC, data=None):
        return forms.PortCreateForm(data, subnets=selectors.list_subnets(self.actor).filter(vpc=vpc).order_by("cidr"),
                                    groups=self._groups(vpc))

    def page(self, vpc: VPC, *, status: int = 200, **bound):
        """The page, or its live part for htmx; `bound`: forms that failed, shown with their errors."""
        subnets = list(selectors.list_subnets(self.actor).filter(vpc=vpc).order_by("cidr", "id"))
        for subnet in subnets:
            subnet.free_ips = selectors.ipv4_available(subnet)
        ports = list(selectors.list_ports(self.actor).filter(subnet__vpc=vpc).select_related("eip")
                     .order_by("subnet__cidr", "id"))
        nat_gateways = list(selectors.list_nat_gateways(self.actor).filter(vpc=vpc).order_by("name", "id"))
        context = {"vpc": vpc, "subnets": subnets, "ports": ports, "groups": self._groups(vpc),
                   "nat_gateways": nat_gateways, "topology": topology(vpc, subnets, ports)}
        if _is_live(self.request):
            return self.render(context, template="network/_vpc_live.html")
        return self.render({
            **context,
            "update_form": forms.DescribedForm(initial={"name": vpc.name, "description": vpc.description}),
            "subnet_form": forms.SubnetCreateForm(),
            "port_form": self._port_form(vpc),
            **bound,
        }, status=status)


class VpcActionView(VpcDetailView):
    """The detail page's forms: rename, delete, create a subnet, create a network interface."""

    http_method_names = ["post"]

    def post(self, request, public_id, action):
        vpc = _get_vpc(self.actor, public_id)
        if action == "update":
            return self.submit(vpc, "update_form", forms.DescribedForm(request.POST), services.update_vpc, vpc=vpc,
                               success="VPC saved.")
        if action == "create-subnet":
            return self.submit(vpc, "subnet_form", forms.SubnetCreateForm(request.POST), services.create_subnet,
                               vpc=vpc, success="Subnet created.")
        if action == "create-port":
            return self.submit(vpc, "port_form", self._port_form(vpc, request.POST), services.create_port,
                               success="Network interface created.")
        if action == "delete":
            ok, _ = self.call(None, services.delete_vpc, vpc=vpc, success=f"VPC {vpc.name} deleted.")
            if ok:
                return redirect("vpc-list")
        return redirect("vpc-detail", public_id=public_id)


class SubnetActionView(ConsoleView):
    def post(self, request, public_id, action):
        subnet = lookup(self.actor, selectors.list_subnets(self.actor), public_id, field="subnet", label="subnet")
        if action == "delete":
            self.call(None, services.delete_subnet, subnet=subnet, success=f"Subnet {subnet.name} deleted.")
        return redirect("vpc-detail", public_id=subnet.vpc.public_id)


class PortActionView(ConsoleView):
    def post(self, request, public_id, action):
        port = lookup(self.actor, selectors.list_ports(self.actor), public_id, field="port", label="port")
        if action == "delete":
            self.call(None, services.delete_port, port=port, success=f"Network interface {port.public_id} deleted.")
        return redirect("vpc-detail", public_id=port.subnet.vpc.public_id)


# --- security groups --------------------------------------------------------------------------

class SecurityGroupListView(_ListPage):
    template_name = "network/security_group_list.html"
    rows_template = "network/_security_group_rows.html"
    detail_url = "security-group-detail"
    created = "Security group created."
    create = staticmethod(services.create_security_group)

    def rows(self):
        return selectors.list_security_groups(self.actor).order_by("vpc__name", "-is_default", "name", "id")

    def create_form(self, data=None):
        return forms.SecurityGroupCreateForm(data, vpcs=selectors.list_vpcs(self.actor),
                                             initial={"vpc": self.request.GET.get("vpc")})


class SecurityGroupDetailView(_FormsPage):
    template_name = "network/security_group_detail.html"
    detail_url = "security-group-detail"

    def get(self, request, public_id):
        return self.page(_get_group(self.actor, public_id))

    def _rule_form(self, group: SecurityGroup, data=None):
        """Remote groups to choose from: the VPC's."""
        groups = selectors.list_security_groups(self.actor).filter(vpc=group.vpc_id).order_by("name")
        return forms.RuleCreateForm(data, groups=groups)

    def page(self, group: SecurityGroup, *, status: int = 200, **bound):
        context = {"group": group, "rules": group.rules.all(), "port_count": group.ports.count()}
        if _is_live(self.request):
            return self.render(context, template="network/_security_group_rules.html")
        return self.render({
            **context,
            "update_form": forms.DescribedForm(initial={"name": group.name, "description": group.description}),
            "rule_form": self._rule_form(group),
            **bound,
        }, status=status)


class SecurityGroupActionView(SecurityGroupDetailView):
    """The detail page's forms: rename, delete, add a rule."""

    http_method_names = ["post"]

    def post(self, request, public_id, action):
        group = _get_group(self.actor, public_id)
        if action == "update":
            return self.submit(group, "update_form", forms.DescribedForm(request.POST), services.update_security_group,
                               group=group, success="Security group saved.")
        if action == "add-rule":
            return self.submit(group, "rule_form", self._rule_form(group, request.POST),
                               services.add_security_group_rule, group=group, success="Rule added.")
        if action == "delete":
            ok, _ = self.call(None, services.delete_security_group, group=group,
                              success=f"Security group {group.name} deleted.")
            if ok:
                return redirect("security-group-list")
        return redirect("security-group-detail", public_id=public_id)


class _RowActionView(ConsoleView):
    """A row of a detail page's table (a group's rule, a NAT gateway's port mapping): delete."""

    http_method_names = ["post"]
    parent = None  # staticmethod(actor, public_id) -> the detail page's object
    rows, argument, label = "", "", ""  # the parent's related name, the service's keyword, what a row is
    delete_service = None  # staticmethod
    detail_url = deleted = ""

    def post(self, request, public_id, row_id, action):
        parent = self.parent(self.actor, public_id)
        row = getattr(parent, self.rows).filter(public_id=row_id).first()
        if row is None:
            raise NotFound(f"No {self.label} {row_id} in {parent.public_id}.")
        if action == "delete":
            self.call(None, self.delete_service, success=self.deleted, **{self.argument: row})
        return redirect(self.detail_url, public_id=public_id)


class SecurityGroupRuleActionView(_RowActionView):
    parent = staticmethod(_get_group)
    rows, argument, label = "rules", "rule", "rule"
    delete_service = staticmethod(services.delete_security_group_rule)
    detail_url, deleted = "security-group-detail", "Rule deleted."


# --- elastic IPs ------------------------------------------------------------------------------

def _get_eip(actor, public_id: str) -> ElasticIP:
    return lookup(actor, selectors.list_eips(actor), public_id, field="eip", label="EIP")


class EipListView(_ListPage):
    """Elastic IPs: allocate one; each row's forms bind it (to an instance or a network
    interface), unbind it, change its bandwidth or release it."""

    template_name = "network/eip_list.html"
    rows_template = "network/_eip_rows.html"
    created = "Elastic IP allocated."
    create = staticmethod(edge_services.allocate_eip)

    def rows(self):
        return selectors.list_eips(self.actor)

    def create_form(self, data=None):
        networks = ExternalNetwork.objects.filter(enabled=True).select_related("region")
        return forms.EipAllocateForm(data, networks=networks)

    def bind_form(self, data=None):
        """The instances whose primary interface has no EIP yet, and the interfaces without one."""
        instances = list_instances(self.actor).filter(ports__device_index=0, ports__eip__isnull=True).order_by("name")
        ports = selectors.list_ports(self.actor).filter(eip__isnull=True).order_by("subnet__vpc__name", "id")
        return forms.EipBindForm(data, instances=instances, ports=ports, auto_id=False)

    def extra(self) -> dict:
        return {"bind_form": self.bind_form()}

    def done(self, obj, result):
        return redirect("eip-list")


class EipActionView(EipListView):
    """The rows' forms; a refused one shows the list again with why, above it."""

    http_method_names = ["post"]

    def post(self, request, public_id, action):
        eip = _get_eip(self.actor, public_id)
        if action == "bind":
            return self.submit(eip, "row_form", self.bind_form(request.POST), edge_services.bind_eip, eip=eip,
                               success=f"EIP {eip.address} bound.")
        if action == "update":
            return self.submit(eip, "row_form", forms.EipUpdateForm(request.POST), edge_services.update_eip, eip=eip,
                               success=f"EIP {eip.address} saved.")
        if action == "unbind":
            self.call(None, edge_services.unbind_eip, eip=eip, success=f"EIP {eip.address} unbound.")
        elif action == "release":
            self.call(None, edge_services.release_eip, eip=eip, success=f"EIP {eip.address} released.")
        return redirect("eip-list")

    def page(self, obj, *, status: int = 200, **bound):
        return super().page(obj, status=status, row=obj, **bound)


# --- NAT gateways -----------------------------------------------------------------------------

def _get_nat(actor, public_id: str) -> NatGateway:
    return lookup(actor, selectors.list_nat_gateways(actor), public_id, field="nat_gateway", label="NAT gateway")


class NatGatewayListView(_ListPage):
    template_name = "network/nat_gateway_list.html"
    rows_template = "network/_nat_gateway_rows.html"
    detail_url = "nat-gateway-detail"
    created = "NAT gateway created."
    create = staticmethod(edge_services.create_nat_gateway)

    def rows(self):
        return selectors.list_nat_gateways(self.actor)

    def create_form(self, data=None):
        return forms.NatGatewayCreateForm(
            data, vpcs=selectors.list_vpcs(self.actor),
            eips=selectors.list_eips(self.actor).filter(port__isnull=True, nat_gateway__isnull=True),
            subnets=selectors.list_subnets(self.actor).order_by("vpc__name", "cidr"),
            initial={"vpc": self.request.GET.get("vpc")})


class NatGatewayDetailView(_FormsPage):
    template_name = "network/nat_gateway_detail.html"
    detail_url = "nat-gateway-detail"

    def get(self, request, public_id):
        return self.page(_get_nat(self.actor, public_id))

    def _update_form(self, nat: NatGateway, data=None):
        subnets = selectors.list_subnets(self.actor).filter(vpc=nat.vpc_id).order_by("cidr")
        return forms.NatGatewayForm(data, subnets=subnets, initial={
            "name": nat.name, "description": nat.description, "subnets": [s.public_id for s in nat.subnets.all()]})

    def page(self, nat: NatGateway, *, status: int = 200, **bound):
        context = {"nat": nat, "mappings": nat.port_mappings.all()}
        if _is_live(self.request):
            return self.render(context, template="network/_port_mappings.html")
        return self.render({**context, "update_form": self._update_form(nat),
                            "mapping_form": forms.PortMappingCreateForm(), **bound}, status=status)


class NatGatewayActionView(NatGatewayDetailView):
    """The detail page's forms: change the name or subnets, add a port mapping, delete."""

    http_method_names = ["post"]

    def post(self, request, public_id, action):
        nat = _get_nat(self.actor, public_id)
        if action == "update":
            return self.submit(nat, "update_form", self._update_form(nat, request.POST),
                               edge_services.update_nat_gateway, nat=nat, success="NAT gateway saved.")
        if action == "add-mapping":
            return self.submit(nat, "mapping_form", forms.PortMappingCreateForm(request.POST),
                               edge_services.add_port_mapping, nat=nat, success="Port mapping added.")
        if action == "delete":
            ok, _ = self.call(None, edge_services.delete_nat_gateway, nat=nat,
                              success=f"NAT gateway {nat.name} deleted.")
            if ok:
                return redirect("nat-gateway-list")
        return redirect("nat-gateway-detail", public_id=public_id)


class PortMappingActionView(_RowActionView):
    parent = staticmethod(_get_nat)
    rows, argument, label = "port_mappings", "mapping", "port mapping"
    delete_service = staticmethod(edge_services.delete_port_mapping)
    detail_url, deleted = "nat-gateway-detail", "Port mapping deleted."
