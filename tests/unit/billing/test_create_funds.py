"""The 402 before create (nothing made when the wallet cannot run a new resource for
PlatformSettings.create_requires_hours hours), the price before create (API and console pages),
prepaid creates, and the billing seed."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from apps.billing import services as billing
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Order, Price, Product, Subscription, Transaction, UsageInterval
from apps.compute import services as compute
from apps.compute.models import Host, Image, Instance
from apps.core.models import PlatformSettings
from apps.network import edge_services as edge
from apps.network import lb_services
from apps.network import services as network
from apps.network.models import ElasticIP, LoadBalancer, NatGateway
from apps.storage import services as storage
from apps.storage.models import Volume
from apps.tenants.models import Quota
from tests.factories.network import make_external_network
from tests.factories.storage import make_storage


@pytest.fixture
def world(operator, clock):
    inventory = make_storage()
    make_external_network()
    compute.create_flavor(operator, name="t1.small", vcpus=2, ram_mb=256)
    for code, unit, meter, hourly, monthly in [
            ("instance.flavor.t1.nano", Product.HOUR, "instance.flavor", "0.5", "300"),
            ("instance.flavor.t1.small", Product.HOUR, "instance.flavor", "1", None),
            ("volume.gb.standard", Product.GB_HOUR, "volume.gb", "0.01", "7"),
            ("eip.hour", Product.HOUR, "", "0.25", None),
            ("eip.bandwidth_mbps", Product.MBPS_HOUR, "", "0.01", None),
            ("load_balancer", Product.HOUR, "", "2", None),
            ("nat_gateway", Product.HOUR, "", "3", None)]:
        product = billing.create_product(operator, code=code, name=code, unit=unit, meter=meter)
        billing.add_price(operator, product=product, region="default", currency="USD", hourly=hourly,
                          monthly=monthly, yearly=monthly and Decimal(monthly) * 10)
    PlatformSettings.objects.update_or_create(pk=1, defaults={"create_requires_hours": 10})
    return inventory


@pytest.fixture
def owner(a_owner, actor):
    return actor(a_owner)


def credit(operator, tenant, amount: str) -> None:
    billing.grant_credit(operator, tenant=tenant, amount=amount, currency="USD", reason="test")


def quota_in_use(tenant) -> dict[str, int]:
    return {q.resource: q.in_use for q in Quota.objects.filter(tenant=tenant) if q.in_use}


def image() -> str:
    return Image.objects.get(name="tiny").public_id


def test_an_instance_the_wallet_cannot_run_for_the_required_hours_is_refused_before_anything_is_made(
        world, owner, operator, tenant_a, run_tasks):
    credit(operator, tenant_a, "9.99")  # 2 × 0.5 USD × 10 h = 10 USD needed
    with pytest.raises(InsufficientFunds) as refused:
        run_tasks(compute.create_instances, owner, name="vm", flavor="t1.nano", image=image(), count=2)
    assert refused.value.status == 402 and refused.value.fields == {"billing": ["Recharge the wallet first."]}
    assert "10.00 USD" in refused.value.message
    assert Instance.objects.count() == 0 and Order.objects.count() == 0 and quota_in_use(tenant_a) == {}
    assert Host.objects.get().vcpus_used == 0

    credit(operator, tenant_a, "0.01")
    created = run_tasks(compute.create_instances, owner, name="vm", flavor="t1.nano", image=image(), count=2)
    assert [Instance.objects.get(pk=vm.pk).status for vm in created] == ["running", "running"]
    assert Order.objects.filter(kind="create").count() == 2 and quota_in_use(tenant_a)["instances"] == 2


def test_the_api_answers_402_with_the_billing_field(world, api, a_owner):
    response = api(a_owner).post("/api/v1/instances", {"name": "vm", "flavor": "t1.nano", "image": image()},
                                 format="json")
    assert response.status_code == 402
    assert response.json()["fields"] == {"billing": ["Recharge the wallet first."]}
    assert Instance.objects.count() == 0


def test_free_resources_are_never_refused(world, owner, operator, run_tasks):
    compute.create_flavor(operator, name="free1", vcpus=1, ram_mb=128)
    [vm] = run_tasks(compute.create_instances, owner, name="vm", flavor="free1", image=image())
    assert Instance.objects.get(pk=vm.pk).status == "running"
    assert Order.objects.count() == 0 and UsageInterval.objects.count() == 0


def test_volumes_eips_load_balancers_and_nat_gateways_are_refused_without_funds(world, owner, operator, tenant_a):
    vpc = network.create_vpc(owner, name="prod", cidr="10.8.0.0/16")
    subnet = network.create_subnet(owner, vpc=vpc, name="web", cidr="10.8.1.0/24")
    credit(operator, tenant_a, "3.5")  # one EIP at 100 Mbit/s: (0.25 + 1) × 10 h = 12.5 USD
    with pytest.raises(InsufficientFunds):
        storage.create_volume(owner, name="data", size_gb=50)  # 0.5 × 10 = 5 USD
    with pytest.raises(InsufficientFunds):
        edge.allocate_eip(owner)
    with pytest.raises(InsufficientFunds):
        lb_services.create_load_balancer(owner, subnet=subnet, name="lb")  # 20 USD
    assert (Volume.objects.count(), ElasticIP.objects.count(), LoadBalancer.objects.count()) == (0, 0, 0)
    assert not quota_in_use(tenant_a).keys() & {"volumes", "volume_gb", "eips", "load_balancers"}

    eip = edge.allocate_eip(owner, bandwidth_mbps=1)  # (0.25 + 0.01) × 10 = 2.6 USD
    with pytest.raises(InsufficientFunds):
        edge.create_nat_gateway(owner, vpc=vpc, eip=eip, name="nat")  # 30 USD
    assert NatGateway.objects.count() == 0 and ElasticIP.objects.get().status == "available"
    assert storage.create_volume(owner, name="small", size_gb=30).size_gb == 30  # 3 USD


def test_a_resize_that_costs_more_needs_the_new_hours_covered(world, owner, operator, tenant_a, run_tasks):
    credit(operator, tenant_a, "5")
    [vm] = run_tasks(compute.create_instances, owner, name="vm", flavor="t1.nano", image=image())
    with pytest.raises(InsufficientFunds):
        compute.resize_instance(owner, instance=vm, flavor="t1.small")  # 1 USD × 10 h
    vm.refresh_from_db()
    assert (vm.flavor.name, vm.status, Host.objects.get().vcpus_used) == ("t1.nano", "running", 1)
    assert [o.kind for o in Order.objects.all()] == ["create"]

    credit(operator, tenant_a, "5")
    run_tasks(compute.resize_instance, owner, instance=vm, flavor="t1.small")
    billing.adjust(operator, tenant=tenant_a, amount="-10", currency="USD", reason="test: an empty wallet")
    run_tasks(compute.stop_instance, owner, instance=vm, force=True)
    run_tasks(compute.resize_instance, owner, instance=vm, flavor="t1.nano")  # cheaper: never refused
    assert [o.kind for o in Order.objects.order_by("id")] == ["create", "upgrade", "downgrade"]


def test_a_prepaid_instance_is_subscribed_and_meters_nothing_on_demand(world, owner, operator, tenant_a, run_tasks,
                                                                       api, a_owner):
    credit(operator, tenant_a, "599")
    response = api(a_owner).post("/api/v1/instances", {"name": "vm", "flavor": "t1.nano", "image": image(),
                                                       "billing_mode": "monthly", "periods": 2}, format="json")
    assert response.status_code == 402  # 2 × 300 USD
    assert Instance.objects.count() == 0 and Subscription.objects.count() == 0

    credit(operator, tenant_a, "1")
    [vm] = run_tasks(compute.create_instances, owner, name="vm", flavor="t1.nano", image=image(),
                     billing_mode="monthly", periods=2, auto_renew=True)
    subscription = Subscription.objects.get(resource_id=vm.public_id)
    assert (subscription.term, subscription.auto_renew, subscription.product.code) == (
        "monthly", True, "instance.flavor.t1.nano")
    assert Instance.objects.get(pk=vm.pk).status == "running"
    assert UsageInterval.objects.filter(resource_id=vm.public_id).count() == 0
    assert Transaction.objects.filter(kind="charge").get().amount == Decimal("-600")


def ask(client, kind: str, body: dict):
    """The API's estimate of `kind` (instances, volumes, eips) for `body`."""
    return client.post(f"/api/v1/{kind}/estimate", body, format="json")


def test_the_estimate_api_prices_instances_volumes_and_eips(world, api, a_owner, b_owner, operator):
    client = api(a_owner)
    body = ask(client, "instances", {"flavor": "t1.nano", "count": 3}).json()
    assert body == {"currency": "USD", "count": 3, "hourly": "1.500000", "on_demand_monthly": "1095.0000",
                    "monthly": "900.0000", "yearly": "9000.0000", "is_free": False,
                    "lines": [{"product": "instance.flavor.t1.nano", "quantity": "1.000", "hourly": "0.500000",
                               "monthly": "300.0000", "yearly": "3000.0000"}]}
    small = ask(client, "instances", {"flavor": "t1.small"}).json()
    assert (small["hourly"], small["monthly"], small["yearly"]) == ("1.000000", None, None)
    unknown = ask(client, "instances", {"flavor": "nope"})
    assert unknown.status_code == 404 and unknown.json()["fields"] == {"flavor": ["Unknown flavor."]}
    assert ask(client, "instances", {"flavor": "t1.nano", "count": 0}).status_code == 400
    assert ask(client, "instances", {"flavor": "t1.nano", "region": "mars"}).status_code == 400

    volume = ask(client, "volumes", {"size_gb": 20}).json()
    assert (volume["hourly"], volume["on_demand_monthly"], volume["monthly"]) == ("0.200000", "146.0000",
                                                                                "140.0000")
    eip = ask(client, "eips", {"bandwidth_mbps": 10}).json()
    assert (eip["hourly"], [line["product"] for line in eip["lines"]]) == (
        "0.350000", ["eip.hour", "eip.bandwidth_mbps"])
    # The tenant's own price: B gets the address for free.
    billing.set_tenant_price(operator, tenant=b_owner.tenant,
                             product=Product.objects.get(code="eip.hour"), discount_percent=Decimal(100))
    assert ask(api(b_owner), "eips", {"bandwidth_mbps": 10}).json()["hourly"] == "0.100000"


def test_the_create_pages_show_the_price_and_follow_the_form(world, client, a_owner):
    client.force_login(a_owner.user)
    page = client.get("/instances/").content.decode()
    assert 'id="instance-price"' in page and "0.50 USD per hour" in page and "300.00 USD per month" in page
    fragment = client.get("/instances/estimate", {"flavor": "t1.small", "count": "2"}).content.decode()
    assert "2.00 USD per hour" in fragment and "1460.00 USD per month" in fragment and "prepaid" not in fragment

    page = client.get("/volumes/").content.decode()
    assert 'id="volume-price"' in page and "USD per hour" not in page  # no size yet
    fragment = client.get("/volumes/estimate", {"size_gb": "10", "volume_type": "standard"}).content.decode()
    assert "0.10 USD per hour" in fragment and "70.00 USD per month" in fragment

    page = client.get("/eips/").content.decode()
    assert 'id="eip-price"' in page and "1.25 USD per hour" in page  # 100 Mbit/s by default
    assert "0.26 USD per hour" in client.get("/eips/estimate", {"bandwidth_mbps": "1"}).content.decode()


def test_seed_billing_prices_the_catalog_once_and_credits_the_demo_tenant(operator, clock):
    make_storage()
    call_command("seed_demo")
    call_command("seed_billing")
    call_command("seed_billing")
    nano = Price.objects.get(product__code="instance.flavor.t1.nano", region="default")
    # 1 vCPU × 0.01 + 0.125 GiB × 0.005 per hour; a month of 730 h rounded, a year ten months.
    assert (nano.hourly, nano.monthly, nano.yearly, nano.currency) == (
        Decimal("0.010625"), Decimal("7.76"), Decimal("77.60"), "USD")
    codes = set(Product.objects.values_list("code", flat=True))
    assert codes >= {"instance.flavor.t1.nano", "volume.gb.standard", "volume.gb.shared", "snapshot.gb", "eip.hour",
                     "eip.bandwidth_mbps", "load_balancer", "nat_gateway"}
    assert Price.objects.count() == len(codes)
    assert Product.objects.get(code="volume.gb.standard").meter == "volume.gb"
    [welcome] = Transaction.objects.filter(kind="credit")
    assert (welcome.amount, welcome.reason, welcome.tenant.name) == (Decimal("20"), "welcome credit", "Demo")
