"""Seed the billing catalog of a fresh install (idempotent): a product for every active flavor
and volume type and for snapshots, EIPs (address and bandwidth), load balancers and NAT
gateways (apps.billing.metering names them), each with a list price in the default currency in
every region that has none yet; and a welcome credit for the demo tenant."""

import re
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.billing import metering, money, services
from apps.billing.models import PRODUCT_CODE, Price, Product
from apps.compute.models import Flavor, Region
from apps.core.actor import Actor
from apps.storage.models import VolumeType
from apps.tenants.management.commands.seed_demo import DEMO_TENANT
from apps.tenants.models import Tenant

# Small list prices per hour (in the default currency): a flavor costs per vCPU, GiB of RAM,
# GB of root disk and GPU; the rest per unit.
PER_VCPU, PER_RAM_GB, PER_DISK_GB, PER_GPU = Decimal("0.01"), Decimal("0.005"), Decimal("0.0001"), Decimal("0.5")
PER_VOLUME_GB = Decimal("0.0001")
FIXED = [  # (code, unit, name, hourly)
    (metering.SNAPSHOT, Product.GB_HOUR, "Snapshot storage", Decimal("0.00005")),
    (metering.EIP_HOUR, Product.HOUR, "Elastic IP address", Decimal("0.004")),
    (metering.EIP_BANDWIDTH, Product.MBPS_HOUR, "Elastic IP bandwidth", Decimal("0.0002")),
    (metering.LOAD_BALANCER, Product.HOUR, "Load balancer", Decimal("0.02")),
    (metering.NAT_GATEWAY, Product.HOUR, "NAT gateway", Decimal("0.03")),
]
YEAR_IN_MONTHS = 10  # a year prepaid costs ten months
WELCOME_CREDIT = Decimal(20)


def flavor_hourly(flavor: Flavor) -> Decimal:
    return (PER_VCPU * flavor.vcpus + PER_RAM_GB * Decimal(flavor.ram_mb) / 1024 + PER_DISK_GB * flavor.disk_gb
            + PER_GPU * flavor.gpu_count).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


class Command(BaseCommand):
    help = "Create the billing products and list prices if missing, and the demo tenant's welcome credit."

    def handle(self, *args, **options):
        self.system = Actor.system()
        self.currency = settings.PORTAL_DEFAULT_CURRENCY
        self.regions = list(Region.objects.values_list("code", flat=True))
        catalog = [(f"{metering.INSTANCE_METER}.{flavor.name}", Product.HOUR, f"Instance {flavor.name}",
                    flavor_hourly(flavor), metering.INSTANCE_METER)
                   for flavor in Flavor.objects.filter(is_active=True)]
        catalog += [(f"{metering.VOLUME_METER}.{volume_type.name}", Product.GB_HOUR, f"Volume {volume_type.name}",
                     PER_VOLUME_GB, metering.VOLUME_METER) for volume_type in VolumeType.objects.all()]
        catalog += [(code, unit, name, hourly, "") for code, unit, name, hourly in FIXED]
        for code, unit, name, hourly, meter in catalog:
            if not re.match(PRODUCT_CODE, code):
                self.stderr.write(f"{code}: not a product code (lower-case words joined by dots); not billed")
                continue
            self.price(self.product(code, unit, name, meter), hourly)
        self.welcome_credit()

    def product(self, code: str, unit: str, name: str, meter: str) -> Product:
        product = Product.objects.filter(code=code).first()
        if product is None:
            product = services.create_product(self.system, code=code, name=name, unit=unit, meter=meter)
            self.stdout.write(f"product {code}")
        return product

    def price(self, product: Product, hourly: Decimal) -> None:
        places = Decimal(1).scaleb(-money.places(self.currency))
        monthly = (hourly * metering.HOURS_PER_MONTH).quantize(places, rounding=ROUND_HALF_UP)
        for region in self.regions:
            if not Price.objects.filter(product=product, region=region, currency=self.currency).exists():
                services.add_price(self.system, product=product, region=region, currency=self.currency, hourly=hourly,
                                   monthly=monthly, yearly=monthly * YEAR_IN_MONTHS)
                self.stdout.write(f"price {product.code} in {region}: {hourly} {self.currency}/h")

    def welcome_credit(self) -> None:
        tenant = Tenant.objects.filter(name=DEMO_TENANT).first()
        if tenant is None:
            self.stderr.write("no demo tenant (seed_demo first): no welcome credit")
            return
        services.grant_credit(self.system, tenant=tenant, amount=WELCOME_CREDIT, currency=self.currency,
                              reason="welcome credit", idempotency_key=f"welcome-credit:{tenant.public_id}")
