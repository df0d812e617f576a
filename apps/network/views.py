"""Console pages for virtual networks: VPCs (list, create; detail with its subnets, ports,
security groups, way out, load balancers, HA VIPs and a topology picture), security groups
(list, create; detail with the rules), elastic IPs (list with allocate, bind, unbind, bandwidth,
release), NAT gateways (list, create; detail with the port mappings), load balancers (list,
create; detail with the listeners, their members and the members' health) and HA VIPs (list
with create, ports, delete). Changes go through apps.network.services, edge_services and
lb_services; the pages re-render with the field errors of a refused form, and show other
refusals (409s) as messages."""

from django.conf import settings
from django.shortcuts import redirect

from apps.billing import metering
from apps.compute.selectors import list_instances
from apps.core.exceptions import NotFound
from apps.core.validation import lookup
from apps.core.views import ConsoleView, error_status
from apps.network import edge_services, forms, lb_services, selectors, services
from apps.network.models import VPC, ElasticIP, ExternalNetwork, HaVip, LoadBalancer, Member, NatGateway, SecurityGroup
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
    """A list (its rows alone for htmx) with a create form that posts to it; without a detail
    page, a done form goes back to the list (`list_url`)."""

    rows_template = list_url = ""
    created = ""  # the create form's success message

    def done(self, obj, result):
        return super().done(obj, result) if self.detail_url else redirect(self.list_url)

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


class _RowForms:
    """The forms of a list's rows (mixed in before the list's view): a refused one shows the
    list again with why, above it."""

    http_method_names = ["post"]

    def page(self, obj, *, status: int = 200, **bound):
        return super().page(obj, status=status, row=obj, **bound)


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
        balancers = list(selectors.list_load_balancers(self.actor).filter(subnet__vpc=vpc).order_by("name", "id"))
        havips = list(selectors.list_havips(self.actor).filter(subnet__vpc=vpc).order_by("name", "id"))
        context = {"vpc": vpc, "subnets": subnets, "ports": ports, "groups": self._groups(vpc),
                   "nat_gateways": nat_gateways, "load_balancers": balancers, "havips": havips,
                   "topology": topology(vpc, subnets, ports, balancers, havips)}
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
    """A row of a detail page's table (a group's rule, a NAT gateway's port mapping, a load
    balancer's listener or member): delete, or the row's own forms (`act()`, with the detail
    page's view mixed in after this one to show a refused form again)."""

    http_method_names = ["post"]
    parent = None  # staticmethod(actor, public_id) -> the detail page's object
    rows, argument, label = "", "", ""  # the parent's related name, the service's keyword, what a row is
    delete_service = None  # staticmethod
    detail_url = deleted = ""

    def row_set(self, parent):
        return getattr(parent, self.rows).all()

    def act(self, parent, row, action: str):
        """The response to one of the row's forms; None: back to the detail page."""
        return None

    def post(self, request, public_id, row_id, action):
        parent = self.parent(self.actor, public_id)
        row = self.row_set(parent).filter(public_id=row_id).first()
        if row is None:
            raise NotFound(f"No {self.label} {row_id} in {parent.public_id}.")
        if action == "delete":
            self.call(None, self.delete_service, success=self.deleted, **{self.argument: row})
            return redirect(self.detail_url, public_id=public_id)
        return self.act(parent, row, action) or redirect(self.detail_url, public_id=public_id)


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
    list_url = "eip-list"
    created = "Elastic IP allocated."
    create = staticmethod(edge_services.allocate_eip)

    def rows(self):
        return selectors.list_eips(self.actor).select_related("load_balancer")

    def create_form(self, data=None):
        networks = ExternalNetwork.objects.filter(enabled=True).select_related("region")
        return forms.EipAllocateForm(data, networks=networks)

    def bind_form(self, data=None):
        """The instances whose primary interface has no EIP yet, and the interfaces and load
        balancers without one."""
        instances = list_instances(self.actor).filter(ports__device_index=0, ports__eip__isnull=True).order_by("name")
        ports = selectors.list_ports(self.actor).filter(eip__isnull=True).order_by("subnet__vpc__name", "id")
        balancers = selectors.list_load_balancers(self.actor).filter(eip__isnull=True).order_by("name", "id")
        return forms.EipBindForm(data, instances=instances, ports=ports, load_balancers=balancers, auto_id=False)

    def extra(self) -> dict:
        return {"bind_form": self.bind_form(), "estimate": eip_estimate(self.actor, {})}


def eip_estimate(actor, data) -> metering.Estimate | None:
    """The price of the allocate form's EIP (`bandwidth_mbps`, default 100; `external_network`,
    default the region's) for the actor's tenant; None when there is nothing to price."""
    bandwidth = str(data.get("bandwidth_mbps") or "100")
    if actor.tenant is None or not bandwidth.isdigit() or not 1 <= int(bandwidth) <= edge_services.MAX_BANDWIDTH_MBPS:
        return None
    network = (ExternalNetwork.objects.select_related("region")
               .filter(public_id=data.get("external_network") or "").first())
    region = network.region.code if network is not None else settings.PORTAL_DEFAULT_REGION
    return metering.estimate_eip(actor.tenant, bandwidth_mbps=int(bandwidth), region=region)


class EipEstimateView(ConsoleView):
    """The allocate form's price, asked again whenever the form changes (htmx)."""

    def get(self, request):
        return self.render({"estimate": eip_estimate(self.actor, request.GET)}, template="compute/_price.html")


class EipActionView(_RowForms, EipListView):
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



# --- load balancers ---------------------------------------------------------------------------

def _get_lb(actor, public_id: str) -> LoadBalancer:
    return lookup(actor, selectors.list_load_balancers(actor), public_id, field="load_balancer",
                  label="load balancer")


def _listeners(balancer: LoadBalancer) -> list:
    """The listeners, each with its members' rows: the member and its health."""
    listeners = list(balancer.listeners.all())
    for listener in listeners:
        health = lb_services.member_health(listener)
        listener.rows = [{"member": m, "health": health[m.pk]} for m in listener.members.all()]
    return listeners


class LoadBalancerListView(_ListPage):
    template_name = "network/load_balancer_list.html"
    rows_template = "network/_load_balancer_rows.html"
    detail_url = "load-balancer-detail"
    created = "Load balancer created."
    create = staticmethod(lb_services.create_load_balancer)

    def rows(self):
        return selectors.list_load_balancers(self.actor)

    def create_form(self, data=None):
        return forms.SubnetAddressForm(data, subnets=selectors.list_subnets(self.actor).order_by("vpc__name", "cidr"),
                                       initial={"subnet": self.request.GET.get("subnet")})


class LoadBalancerDetailView(_FormsPage):
    """Facts, the listeners with their members (each with its own forms) and the add-listener
    form. The listeners re-render on the load balancer's events; the members' health, which the
    SDN's checks change without any event, is polled (LoadBalancerHealthView)."""

    template_name = "network/load_balancer_detail.html"
    detail_url = "load-balancer-detail"

    def get(self, request, public_id):
        return self.page(_get_lb(self.actor, public_id))

    def _member_form(self, balancer: LoadBalancer, listener, data=None):
        """Instances to choose from: the tenant's with an interface in the load balancer's VPC."""
        instances = list_instances(self.actor).filter(ports__subnet__vpc=balancer.subnet.vpc_id).distinct()
        return forms.MemberCreateForm(data, instances=instances.order_by("name"), auto_id=f"{listener.public_id}-%s")

    def _listener_form(self, listener, data=None):
        fields = ("algorithm", "health_check", "health_interval", "health_timeout", "health_success",
                  "health_failure")
        return forms.ListenerForm(data, initial={f: getattr(listener, f) for f in fields},
                                  auto_id=f"{listener.public_id}-%s")

    def page(self, balancer: LoadBalancer, *, status: int = 200, **bound):
        """`bound`: forms that failed, by name; a listener's and a member's carry its id."""
        listeners = _listeners(balancer)
        for listener in listeners:
            listener.edit_form = bound.get(f"edit_{listener.pk}") or self._listener_form(listener)
            listener.member_form = bound.get(f"member_{listener.pk}") or self._member_form(balancer, listener)
            for row in listener.rows:
                member = row["member"]
                row["weight_form"] = bound.get(f"weight_{member.pk}") or forms.MemberWeightForm(
                    initial={"weight": member.weight}, auto_id=False)
        context = {"balancer": balancer, "listeners": listeners, "polled": any(lsn.rows for lsn in listeners)}
        if _is_live(self.request):
            return self.render(context, template="network/_listeners.html")
        return self.render({
            **context,
            "update_form": forms.DescribedForm(initial={"name": balancer.name, "description": balancer.description}),
            "listener_form": forms.ListenerCreateForm(),
            **bound,
        }, status=status)


class LoadBalancerHealthView(ConsoleView):
    """The members' health tags, swapped into the detail page out of band: what its polling gets."""

    template_name = "network/_member_health.html"

    def get(self, request, public_id):
        return self.render({"listeners": _listeners(_get_lb(self.actor, public_id))})


class LoadBalancerActionView(LoadBalancerDetailView):
    """The detail page's forms: rename, add a listener, delete (not while an EIP is bound)."""

    http_method_names = ["post"]

    def post(self, request, public_id, action):
        balancer = _get_lb(self.actor, public_id)
        if action == "update":
            return self.submit(balancer, "update_form", forms.DescribedForm(request.POST),
                               lb_services.update_load_balancer, load_balancer=balancer, success="Load balancer saved.")
        if action == "add-listener":
            return self.submit(balancer, "listener_form", forms.ListenerCreateForm(request.POST),
                               lb_services.add_listener, load_balancer=balancer, success="Listener added.")
        if action == "delete":
            ok, _ = self.call(None, lb_services.delete_load_balancer, load_balancer=balancer,
                              success=f"Load balancer {balancer.name} deleted.")
            if ok:
                return redirect("load-balancer-list")
        return redirect("load-balancer-detail", public_id=public_id)


class ListenerActionView(_RowActionView, LoadBalancerDetailView):
    """A listener's forms: change it, add a member; and delete it."""

    parent = staticmethod(_get_lb)
    rows, argument, label = "listeners", "listener", "listener"
    delete_service = staticmethod(lb_services.delete_listener)
    detail_url, deleted = "load-balancer-detail", "Listener deleted."

    def act(self, balancer, listener, action: str):
        if action == "update":
            return self.submit(balancer, f"edit_{listener.pk}", self._listener_form(listener, self.request.POST),
                               lb_services.update_listener, listener=listener, success="Listener saved.")
        if action == "add-member":
            return self.submit(balancer, f"member_{listener.pk}", self._member_form(balancer, listener,
                                                                                   self.request.POST),
                               lb_services.add_member, listener=listener, success="Member added.")
        return None


class MemberActionView(_RowActionView, LoadBalancerDetailView):
    """A member's forms: change its weight; and remove it."""

    parent = staticmethod(_get_lb)
    argument, label = "member", "member"
    delete_service = staticmethod(lb_services.delete_member)
    detail_url, deleted = "load-balancer-detail", "Member removed."

    def row_set(self, balancer):
        return Member.objects.filter(listener__load_balancer=balancer).select_related("listener__load_balancer")

    def act(self, balancer, member, action: str):
        if action == "update":
            return self.submit(balancer, f"weight_{member.pk}", forms.MemberWeightForm(self.request.POST),
                               lb_services.update_member, member=member,
                               success=f"Member {member.address}:{member.port} saved.")
        return None


# --- HA VIPs ----------------------------------------------------------------------------------

def _get_havip(actor, public_id: str) -> HaVip:
    return lookup(actor, selectors.list_havips(actor), public_id, field="havip", label="HA VIP")


class HaVipListView(_ListPage):
    """HA VIPs: create one; each row's forms change its network interfaces or delete it."""

    template_name = "network/havip_list.html"
    rows_template = "network/_havip_rows.html"
    list_url = "havip-list"
    created = "HA VIP created."
    create = staticmethod(services.create_havip)

    def rows(self):
        return selectors.list_havips(self.actor).select_related("subnet__vpc").prefetch_related("ports__instance")

    def _ports(self):
        return selectors.list_ports(self.actor).order_by("subnet__vpc__name", "subnet__cidr", "id")

    def create_form(self, data=None):
        return forms.HaVipCreateForm(data, subnets=selectors.list_subnets(self.actor).order_by("vpc__name", "cidr"),
                                     ports=self._ports(), initial={"subnet": self.request.GET.get("subnet")})

    def extra(self) -> dict:
        """The rows' choices: their subnet's network interfaces."""
        return {"ports": list(self._ports())}


class HaVipActionView(_RowForms, HaVipListView):
    def post(self, request, public_id, action):
        havip = _get_havip(self.actor, public_id)
        if action == "update":
            return self.submit(havip, "row_form", forms.HaVipPortsForm(request.POST, ports=self._ports()),
                               services.update_havip, havip=havip, success=f"HA VIP {havip.name} saved.")
        if action == "delete":
            self.call(None, services.delete_havip, havip=havip, success=f"HA VIP {havip.name} deleted.")
        return redirect("havip-list")
