"""Console pages for virtual networks: VPCs (list, create; detail with its subnets, ports,
security groups and a topology picture) and security groups (list, create; detail with the
rules). Changes go through apps.network.services; the pages re-render with the field errors
of a refused create, and show other refusals (409s) as messages."""

from django.shortcuts import redirect

from apps.core.exceptions import NotFound
from apps.core.validation import lookup
from apps.core.views import ConsoleView, error_status
from apps.network import forms, selectors, services
from apps.network.models import VPC, SecurityGroup
from apps.network.topology import topology


def _get_vpc(actor, public_id: str) -> VPC:
    return lookup(actor, selectors.list_vpcs(actor), public_id, field="vpc", label="VPC")


def _get_group(actor, public_id: str) -> SecurityGroup:
    return lookup(actor, selectors.list_security_groups(actor), public_id, field="security_group",
                  label="security group")


def _is_live(request) -> bool:
    return bool(request.headers.get("HX-Request"))


class VpcListView(ConsoleView):
    template_name = "network/vpc_list.html"

    def get(self, request, form=None, status=200):
        template = "network/_vpc_rows.html" if _is_live(request) else None
        vpcs = selectors.list_vpcs(self.actor)
        return self.render({"page": self.paginate(vpcs), "form": form or forms.VpcCreateForm(),
                            "can_create": self.actor.allows("network", "create")}, status=status, template=template)

    def post(self, request):
        form = forms.VpcCreateForm(request.POST)
        if not form.is_valid():
            return self.get(request, form=form, status=400)
        ok, result = self.call(form, services.create_vpc, success="VPC created.", **form.service_arguments())
        if not ok:
            return self.get(request, form=form, status=error_status(result))
        return redirect("vpc-detail", public_id=result.public_id)


class _DetailPage(ConsoleView):
    """A detail page whose forms post to its actions: a form the service refused is shown again
    with its errors (and the refusal's status); a done one goes back to the page."""

    detail_url = ""

    def page(self, obj, *, status: int = 200, **bound):
        raise NotImplementedError

    def submit(self, obj, name: str, form, service, *, success: str, **kwargs):
        status = 400
        if form.is_valid():
            ok, result = self.call(form, service, success=success, **kwargs, **form.service_arguments())
            if ok:
                return redirect(self.detail_url, public_id=obj.public_id)
            status = error_status(result)
        return self.page(obj, status=status, **{name: form})


class VpcDetailView(_DetailPage):
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
        ports = list(selectors.list_ports(self.actor).filter(subnet__vpc=vpc).order_by("subnet__cidr", "id"))
        context = {"vpc": vpc, "subnets": subnets, "ports": ports, "groups": self._groups(vpc),
                   "topology": topology(vpc, subnets, ports)}
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

class SecurityGroupListView(ConsoleView):
    template_name = "network/security_group_list.html"

    def _form(self, data=None):
        return forms.SecurityGroupCreateForm(data, vpcs=selectors.list_vpcs(self.actor),
                                             initial={"vpc": self.request.GET.get("vpc")})

    def get(self, request, form=None, status=200):
        template = "network/_security_group_rows.html" if _is_live(request) else None
        groups = selectors.list_security_groups(self.actor).order_by("vpc__name", "-is_default", "name", "id")
        return self.render({"page": self.paginate(groups), "form": form or self._form(),
                            "can_create": self.actor.allows("network", "create")}, status=status, template=template)

    def post(self, request):
        form = self._form(request.POST)
        if not form.is_valid():
            return self.get(request, form=form, status=400)
        ok, result = self.call(form, services.create_security_group, success="Security group created.",
                               **form.service_arguments())
        if not ok:
            return self.get(request, form=form, status=error_status(result))
        return redirect("security-group-detail", public_id=result.public_id)


class SecurityGroupDetailView(_DetailPage):
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


class SecurityGroupRuleActionView(ConsoleView):
    def post(self, request, public_id, rule_id, action):
        group = _get_group(self.actor, public_id)
        rule = group.rules.filter(public_id=rule_id).first()
        if rule is None:
            raise NotFound(f"No rule {rule_id} in {group.public_id}.")
        if action == "delete":
            self.call(None, services.delete_security_group_rule, rule=rule, success="Rule deleted.")
        return redirect("security-group-detail", public_id=public_id)
