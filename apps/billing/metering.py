"""What the cloud bills and how: the one place that names the products of compute, storage and
network resources, and the hooks their lifecycle services call.

What is metered (also docs/billing.md, "What is metered"):

- an instance is billed for its flavor (`instance.flavor.<flavor name>`, meter `instance.flavor`,
  quantity 1) while it is running: from the moment it becomes running to the moment it stops,
  errors, goes to the recycle bin or is deleted. Stopped and recycled instances are not billed for
  the flavor. A resize changes its product at that second;
- a volume (`volume.gb.<volume type name>`, meter `volume.gb`, quantity its size in GB), a snapshot
  (`snapshot.gb`, its size in GB), an EIP (`eip.hour` × 1 and `eip.bandwidth_mbps` × its bandwidth
  in Mbit/s), a load balancer (`load_balancer`) and a NAT gateway (`nat_gateway`) are billed from
  creation to deletion; a volume in the recycle bin is not. A volume extend changes its quantity,
  an EIP bandwidth change its bandwidth quantity. Root disks of instances are part of the flavor;
- a product that does not exist, is inactive or has no price for the tenant (`selectors.quote`)
  is simply not billed: nothing is refused, nothing is metered;
- a resource covered by a subscription (monthly or yearly, in status active, grace, suspended or
  recycled) meters no on-demand usage of that product's meter; its resize changes the plan;
- every on-demand resource created with a priced product gets an order (`create`, amount 0: usage
  bills it); a resize of an on-demand instance an `upgrade` or `downgrade` order, amount 0;
- creating on-demand resources (instances, volumes, EIPs, load balancers, NAT gateways) is refused
  with 402 before anything is written when the wallet's balance plus credit limit cannot cover
  PlatformSettings.create_requires_hours hours of their hourly price; so is a resize that raises
  the price (the new hourly price for those hours). Free resources are never refused.

The hooks run inside the caller's transaction, with the moment of the state change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.utils import timezone

from apps.billing import money, selectors, subscription_services, usage_services
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Order, Wallet
from apps.billing.order_services import Line, place_order
from apps.compute.models import Instance, Region
from apps.core.exceptions import ValidationFailed

if TYPE_CHECKING:
    from apps.core.actor import Actor
    from apps.tenants.models import Tenant

# Parts of the audited lifecycle actions of compute, storage and network that call them; the
# estimates only read.
UNAUDITED = ("require_funds", "order_created", "start_usage", "stop_usage", "resource_deleted", "change_quantity",
             "instance_changed", "resize_instance")

HOURS_PER_MONTH = 730

INSTANCE_METER, VOLUME_METER = "instance.flavor", "volume.gb"
SNAPSHOT, EIP_HOUR, EIP_BANDWIDTH = "snapshot.gb", "eip.hour", "eip.bandwidth_mbps"
LOAD_BALANCER, NAT_GATEWAY = "load_balancer", "nat_gateway"


@dataclass(frozen=True)
class Charge:
    """One product a resource uses, at a quantity (GB, Mbit/s, 1)."""

    product_code: str
    quantity: Decimal = Decimal(1)


def instance_charges(flavor) -> list[Charge]:
    return [Charge(f"{INSTANCE_METER}.{flavor.name}")]


def volume_charges(volume_type, size_gb: int) -> list[Charge]:
    return [Charge(f"{VOLUME_METER}.{volume_type.name}", Decimal(size_gb))]


def snapshot_charges(size_gb: int) -> list[Charge]:
    return [Charge(SNAPSHOT, Decimal(size_gb))]


def eip_charges(bandwidth_mbps: int) -> list[Charge]:
    charges = [Charge(EIP_HOUR)]
    if bandwidth_mbps > 0:
        charges.append(Charge(EIP_BANDWIDTH, Decimal(bandwidth_mbps)))
    return charges


def charges_of(resource) -> list[Charge]:
    """What a resource row is billed for now, by its kind."""
    kind = resource._meta.model_name
    if kind == "instance":
        return instance_charges(resource.flavor)
    if kind == "volume":
        return volume_charges(resource.volume_type, resource.size_gb)
    if kind == "snapshot":
        return snapshot_charges(resource.size_gb)
    if kind == "elasticip":
        return eip_charges(resource.bandwidth_mbps)
    if kind == "loadbalancer":
        return [Charge(LOAD_BALANCER)]
    if kind == "natgateway":
        return [Charge(NAT_GATEWAY)]
    raise ValueError(f"{kind} is not a billed resource")


# --- estimates (the price before create) ------------------------------------------------------

@dataclass(frozen=True)
class EstimateLine:
    product_code: str
    quantity: Decimal
    hourly: Decimal
    monthly: Decimal | None
    yearly: Decimal | None


@dataclass(frozen=True)
class Estimate:
    """What `count` new resources cost the tenant: on demand per hour and per month
    (HOURS_PER_MONTH hours, rounded to the currency), and prepaid per month and per year (None
    when one of the priced products is not sold so, or nothing is priced). `lines` are the
    priced products of one resource; unpriced ones are free and left out."""

    currency: str
    count: int
    hourly: Decimal
    on_demand_monthly: Decimal
    monthly: Decimal | None
    yearly: Decimal | None
    lines: tuple[EstimateLine, ...]

    @property
    def is_free(self) -> bool:
        return not self.hourly

    @property
    def per_hour(self) -> str:
        """The hourly price as people write it: at least the currency's places, and the finer
        ones a per-second price has (18.00, 0.036; not 18 nor 0.036000)."""
        places = max(money.places(self.currency), -self.hourly.normalize().as_tuple().exponent)
        return f"{self.hourly:.{places}f}"


def _times(value: Decimal | None, quantity: Decimal) -> Decimal | None:
    return None if value is None else value * quantity


def estimate(tenant: Tenant, *, region: str, charges: list[Charge], count: int = 1) -> Estimate:
    """Price `count` resources using `charges` each in `region` for the tenant, now, in its
    wallet's currency."""
    if not Region.objects.filter(code=region).exists():
        raise ValidationFailed(f"No region {region}.", fields={"region": ["Unknown region."]})
    currency = selectors.wallet_currency(tenant.pk)
    places = Decimal(1).scaleb(-money.places(currency))
    quotes = [(charge, selectors.quote(tenant, charge.product_code, region)) for charge in charges]
    lines = tuple(EstimateLine(charge.product_code, charge.quantity, quote.hourly * charge.quantity,
                               _times(quote.monthly, charge.quantity), _times(quote.yearly, charge.quantity))
                  for charge, quote in quotes if quote is not None)

    def total(values: list[Decimal | None]) -> Decimal | None:
        if not lines or any(value is None for value in values):
            return None
        return (sum(values, Decimal(0)) * count).quantize(places, rounding=ROUND_HALF_UP)

    hourly = sum((line.hourly for line in lines), Decimal(0)) * count
    return Estimate(currency=currency, count=count, hourly=hourly,
                    on_demand_monthly=(hourly * HOURS_PER_MONTH).quantize(places, rounding=ROUND_HALF_UP),
                    monthly=total([line.monthly for line in lines]), yearly=total([line.yearly for line in lines]),
                    lines=lines)


def tenant_of(actor: Actor) -> Tenant:
    """Whose prices an estimate shows: the actor's tenant (operators act in one to see its prices)."""
    if actor.tenant is None:
        raise ValidationFailed("Prices are a tenant's: act in a tenant to see them.",
                               fields={"tenant": ["Act in a tenant."]})
    return actor.tenant


def estimate_instance(tenant: Tenant, *, flavor, region: str, count: int = 1) -> Estimate:
    return estimate(tenant, region=region, charges=instance_charges(flavor), count=count)


def estimate_volume(tenant: Tenant, *, volume_type, size_gb: int, count: int = 1) -> Estimate:
    return estimate(tenant, region=volume_type.pool.region.code, charges=volume_charges(volume_type, size_gb),
                    count=count)


def estimate_eip(tenant: Tenant, *, bandwidth_mbps: int, region: str) -> Estimate:
    return estimate(tenant, region=region, charges=eip_charges(bandwidth_mbps))


def estimate_load_balancer(tenant: Tenant, *, region: str) -> Estimate:
    return estimate(tenant, region=region, charges=[Charge(LOAD_BALANCER)])


def estimate_nat_gateway(tenant: Tenant, *, region: str) -> Estimate:
    return estimate(tenant, region=region, charges=[Charge(NAT_GATEWAY)])


# --- the 402 before create ----------------------------------------------------------------------

def require_funds(tenant: Tenant, cost: Estimate, *, term: str = Order.ON_DEMAND, periods: int = 1) -> None:
    """Refuse (402 `insufficient_funds`, field `billing`) what the wallet's balance plus credit
    limit cannot pay: on demand, PlatformSettings.create_requires_hours hours of it; prepaid
    (`term` monthly or yearly), its `periods`. Free: never refused."""
    from apps.core.models import PlatformSettings

    if cost.is_free:
        return
    if term == Order.ON_DEMAND:
        hours = PlatformSettings.load().create_requires_hours
        need, what = cost.hourly * hours, f"{hours} h at {cost.hourly:f} {cost.currency} an hour"
    else:
        price = cost.monthly if term == Order.MONTHLY else cost.yearly
        if price is None:
            return  # not sold so: the subscription refuses it with its own message
        need, what = price * periods, f"{periods} × {price} {cost.currency} ({term})"
    wallet = Wallet.objects.filter(tenant=tenant).first()
    available = wallet.available if wallet is not None else Decimal(0)
    if need > available:
        places = money.places(cost.currency)
        raise InsufficientFunds(
            f"This costs {need:.{places}f} {cost.currency} ({what}): more than the balance and credit limit "
            f"({available:.{places}f}).", fields={"billing": ["Recharge the wallet first."]})


# --- lifecycle hooks ------------------------------------------------------------------------------

def _priced(resource, charges: list[Charge] | None = None) -> list[tuple[Charge, selectors.Quote]]:
    """(charge, quote) of the resource's priced products (or of `charges`), in its region."""
    region = usage_services.region_of(resource)
    quotes = [(charge, selectors.quote(resource.tenant, charge.product_code, region))
              for charge in (charges_of(resource) if charges is None else charges)]
    return [(charge, quote) for charge, quote in quotes if quote is not None]


def order_created(actor: Actor, resource) -> Order | None:
    """The on-demand `create` order of a new resource (amount 0: usage bills it); None when
    nothing of it is priced. A retry finds the first order (keyed by the resource)."""
    lines = [Line(quote.product, unit_price=quote.hourly, quantity=charge.quantity)
             for charge, quote in _priced(resource)]
    if not lines:
        return None
    return place_order(actor, tenant=resource.tenant, kind=Order.CREATE, billing_mode=Order.ON_DEMAND,
                       resource=resource, lines=lines, idempotency_key=f"create:{resource.public_id}")


def start_usage(resource, *, at: datetime | None = None) -> None:
    """Meter the resource's priced products from `at` (now): it became running, was created or
    came back from the recycle bin. Meters a subscription pays for stay unmetered."""
    at = at or timezone.now()
    for charge, quote in _priced(resource):
        if subscription_services.active_for(resource.public_id, quote.product.meter) is None:
            usage_services.open_usage(resource, product_code=charge.product_code, quantity=charge.quantity, at=at)


def stop_usage(resource, *, at: datetime | None = None) -> None:
    """Stop metering the resource at `at` (now): stopped, recycled, deleted."""
    usage_services.close_usage(resource, at=at or timezone.now())


def resource_deleted(resource, *, at: datetime | None = None) -> None:
    """The resource is gone for good: its metering stops and its subscription, if any, ends."""
    at = at or timezone.now()
    stop_usage(resource, at=at)
    subscription_services.end_for_resource(resource, at=at)


def change_quantity(resource, *, at: datetime | None = None) -> None:
    """The resource's size changed (a volume extend, an EIP's bandwidth): its open intervals
    go on at the new quantity from `at` (now); what is not metered stays so."""
    at = at or timezone.now()
    for charge, _quote in _priced(resource):
        usage_services.change_usage(resource, product_code=charge.product_code, quantity=charge.quantity, at=at)


# Instance statuses that end the flavor's metering (running starts it, deleted ends it for good);
# the transitional ones between (starting, stopping, rebooting, resizing, migrating...) change nothing.
UNBILLED_STATUSES = (Instance.STOPPED, Instance.ERROR, Instance.RECYCLING, Instance.RECYCLED, Instance.DELETING)


def instance_changed(instance, *, at: datetime | None = None) -> None:
    """Every recorded status of an instance passes here (compute's instance_status_recorded): running
    starts its metering, stopped, error, the recycle bin and deletion end it."""
    if instance.status == Instance.RUNNING:
        start_usage(instance, at=at)
    elif instance.status in UNBILLED_STATUSES:
        stop_usage(instance, at=at)
    elif instance.status == Instance.DELETED:
        resource_deleted(instance, at=at)


def resize_instance(actor: Actor, instance, *, flavor, running: bool, at: datetime | None = None) -> None:
    """The instance goes from its flavor to `flavor`; call it before anything else of the resize
    is written. A subscription changes its plan (charged or refunded there). On demand, a new
    flavor that costs more must have its hours covered (402), the resize gets an upgrade or
    downgrade order (amount 0) and, `running`, is metered at the new flavor from `at` (now); an
    unpriced new flavor is not metered."""
    at = at or timezone.now()
    [charge] = instance_charges(flavor)
    subscription = subscription_services.active_for(instance.public_id, INSTANCE_METER)
    if subscription is not None:
        subscription_services.change_plan(actor, subscription=subscription, product_code=charge.product_code,
                                          quantity=charge.quantity, at=at)
        return
    new = _priced(instance, [charge])
    if not new:
        stop_usage(instance, at=at)
        return
    quote = new[0][1]
    old = _priced(instance)
    old_hourly = old[0][1].hourly if old else Decimal(0)
    if quote.hourly > old_hourly:
        require_funds(instance.tenant, estimate(instance.tenant, region=instance.region, charges=[charge]))
    place_order(actor, tenant=instance.tenant, kind=Order.UPGRADE if quote.hourly >= old_hourly else Order.DOWNGRADE,
                billing_mode=Order.ON_DEMAND, resource=instance,
                lines=[Line(quote.product, unit_price=quote.hourly, quantity=charge.quantity,
                            description=f"{instance.flavor.name} → {flavor.name}")],
                idempotency_key=f"resize:{instance.public_id}:{flavor.name}:{int(at.timestamp())}")
    if running and usage_services.change_usage(instance, product_code=charge.product_code, quantity=charge.quantity,
                                               at=at) is None:
        usage_services.open_usage(instance, product_code=charge.product_code, quantity=charge.quantity, at=at)
