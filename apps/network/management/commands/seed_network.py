"""Seed the demo tenant's network (idempotent): a VPC `default` 10.0.0.0/16 with a subnet
`default` 10.0.1.0/24, made by the tenant's owner through the network services, so that its
instances can go on a subnet right away. Skipped when the tenant has a VPC named `default`
already. Needs the OVN northbound database (`make run` starts one): when it does not answer,
a warning says so and the portal runs without the demo network."""

from django.core.management.base import BaseCommand

from apps.core.actor import Actor
from apps.core.exceptions import DomainError, Unavailable
from apps.core.policies import OWNER
from apps.network import services
from apps.network.models import VPC
from apps.tenants.management.commands.seed_demo import DEMO_TENANT
from apps.tenants.models import Membership

VPC_NAME, VPC_CIDR = "default", "10.0.0.0/16"
SUBNET_NAME, SUBNET_CIDR = "default", "10.0.1.0/24"


class Command(BaseCommand):
    help = "Create the demo tenant's default VPC and subnet unless it has a VPC named default."

    def handle(self, *args, **options):
        # the demo tenant and its owner, as seed_demo makes them
        membership = (Membership.objects.active().select_related("user", "tenant")
                      .filter(user__username="demo", tenant__name=DEMO_TENANT, role=OWNER).first())
        if membership is None:
            self.stderr.write("no demo tenant (seed_demo first): no demo network")
            return
        tenant = membership.tenant
        if VPC.objects.filter(tenant=tenant, name=VPC_NAME).exists():
            return
        owner = Actor(user=membership.user, via="task").with_tenant(tenant, membership.role,
                                                                     frozenset(membership.policies))
        try:
            vpc = services.create_vpc(owner, name=VPC_NAME, cidr=VPC_CIDR, description="Made by seed_network")
            try:
                subnet = services.create_subnet(owner, vpc=vpc, name=SUBNET_NAME, cidr=SUBNET_CIDR,
                                                description="Made by seed_network")
            except DomainError:
                # no VPC without its subnet: the next run makes both again
                services.delete_vpc(owner, vpc=vpc)
                raise
        except Unavailable as exc:
            self.stderr.write(self.style.WARNING(
                f"warning: no demo network ({exc.message}). The portal runs without it; start the OVN northbound "
                f"database and run `manage.py seed_network` again."))
            return
        except DomainError as exc:
            self.stderr.write(f"demo network not made: {exc.message}")
            return
        self.stdout.write(f"vpc {vpc.public_id} ({vpc.name} {vpc.cidr}), subnet {subnet.public_id} "
                          f"({subnet.name} {subnet.cidr}) in tenant {tenant.name}")
