"""Instances' network interfaces: made with the instance on a subnet, plugged into its domain,
moved between instances, freed with it (fake hypervisor and fake SDN; tasks run inline)."""

import pytest

from apps.compute import services as compute
from apps.compute.drivers.base import DriverError
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Image, Instance
from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.network import services
from apps.network.drivers.base import PORT
from apps.network.models import Port
from apps.tenants.models import Quota
from tests.factories.compute import make_inventory


@pytest.fixture
def owner(a_owner, actor, db):
    make_inventory()
    return actor(a_owner)


@pytest.fixture
def subnet(owner):
    vpc = services.create_vpc(owner, name="net", cidr="10.1.0.0/16")
    return services.create_subnet(owner, vpc=vpc, name="app", cidr="10.1.2.0/24")


def launch(run_tasks, owner, **options):
    image = Image.objects.get(name="tiny").public_id
    instances = run_tasks(compute.create_instances, owner, name="vm", flavor="t1.nano", image=image, **options)
    for instance in instances:
        instance.refresh_from_db()
    return instances


def domain_nics(instance) -> tuple[str, ...]:
    return FakeDriver(instance.host.uri).domain_info(instance.public_id).nics


def ports_in_use(tenant) -> int:
    return Quota.objects.get(tenant=tenant, resource="ports").in_use


def test_an_instance_on_a_subnet_gets_its_primary_interface_in_the_sdn_and_its_domain(
        owner, subnet, run_tasks, fake_network, api, a_owner):
    [vm] = launch(run_tasks, owner, subnet=subnet.public_id, ip_address="10.1.2.50")

    assert vm.status == Instance.RUNNING
    port = Port.objects.get(instance=vm)
    assert (port.device_index, port.delete_on_termination) == (0, True)
    assert [a.address for a in port.addresses.all()] == ["10.1.2.50"]
    assert domain_nics(vm) == (port.mac_address,)
    spec = fake_network.state[PORT][port.switch_port]
    assert spec.device == vm.public_id and spec.addresses == ("10.1.2.50",)
    assert spec.security_groups == (subnet.vpc.security_groups.get(is_default=True).port_group,)
    body = api(a_owner).get(f"/api/v1/instances/{vm.public_id}").json()
    assert body["interfaces"] == [{"port": port.public_id, "subnet": subnet.public_id,
                                   "mac_address": port.mac_address, "device_index": 0,
                                   "ip_addresses": ["10.1.2.50"]}]


def test_a_batch_gets_one_interface_each_and_deleting_frees_them(owner, subnet, run_tasks, fake_network, tenant_a):
    vms = launch(run_tasks, owner, subnet=subnet.public_id, count=3)
    addresses = sorted(a.address for vm in vms for a in Port.objects.get(instance=vm).addresses.all())
    assert addresses == ["10.1.2.2", "10.1.2.3", "10.1.2.4"]
    assert ports_in_use(tenant_a) == 3

    run_tasks(compute.delete_instance, owner, instance=vms[0])

    assert not Port.objects.filter(addresses__address="10.1.2.2").exists()
    assert ports_in_use(tenant_a) == 2
    assert len(fake_network.state[PORT]) == 2


@pytest.mark.parametrize("options, field", [
    ({"subnet": "subnet-zzzzzzzz"}, "subnet"),
    ({"security_groups": []}, "subnet"),
    ({"subnet": "SUBNET", "ip_address": "10.1.2.7", "count": 2}, "ip_address"),
    ({"subnet": "SUBNET", "ip_address": "10.9.9.9"}, "ip_address"),
])
def test_bad_interface_requests_make_nothing(options, field, owner, subnet, run_tasks, fake_network):
    options = {k: subnet.public_id if v == "SUBNET" else v for k, v in options.items()}
    with pytest.raises((ValidationFailed, NotFound)) as caught:
        launch(run_tasks, owner, **options)
    assert field in caught.value.fields
    assert not Instance.objects.exists() and not Port.objects.exists()
    assert fake_network.state[PORT] == {}


def test_another_tenants_subnet_is_unknown(owner, subnet, run_tasks, b_owner, actor):
    with pytest.raises(NotFound):
        launch(run_tasks, actor(b_owner), subnet=subnet.public_id)


def test_a_port_moves_between_instances_hot(owner, subnet, run_tasks, fake_network):
    first, second = launch(run_tasks, owner, subnet=subnet.public_id, count=2)
    eni = services.create_port(owner, subnet=subnet, name="floating-nic")

    services.attach_port(owner, port=eni, instance=first)
    eni.refresh_from_db()
    assert (eni.instance, eni.device_index) == (first, 1)
    assert eni.mac_address in domain_nics(first)
    assert fake_network.state[PORT][eni.switch_port].device == first.public_id
    with pytest.raises(Conflict):
        services.attach_port(owner, port=eni, instance=second)

    services.detach_port(owner, port=eni)
    services.attach_port(owner, port=eni, instance=second)
    assert eni.mac_address not in domain_nics(first) and eni.mac_address in domain_nics(second)

    # The primary interface goes with its instance; a secondary one stays, detached.
    with pytest.raises(Conflict) as caught:
        services.detach_port(owner, port=Port.objects.get(instance=first, device_index=0))
    assert caught.value.code == "primary_interface"
    run_tasks(compute.delete_instance, owner, instance=second)
    eni.refresh_from_db()
    assert eni.instance is None and fake_network.state[PORT][eni.switch_port].device == ""


def test_a_hypervisor_refusing_the_plug_leaves_the_port_detached(owner, subnet, run_tasks, fake_network,
                                                                 monkeypatch):
    [vm] = launch(run_tasks, owner, subnet=subnet.public_id)
    eni = services.create_port(owner, subnet=subnet)

    def refuse(self, name, nic):
        raise DriverError("no more PCI slots")

    monkeypatch.setattr(FakeDriver, "attach_interface", refuse)
    with pytest.raises(Conflict) as caught:
        services.attach_port(owner, port=eni, instance=vm)
    assert "no more PCI slots" in caught.value.message
    eni.refresh_from_db()
    assert eni.instance is None and fake_network.state[PORT][eni.switch_port].device == ""


def test_an_sdn_outage_fails_the_build_with_the_reason(owner, subnet, run_tasks, fake_network):
    fake_network.fail_on.add("ensure_port")
    [vm] = launch(run_tasks, owner, subnet=subnet.public_id)
    assert vm.status == Instance.ERROR and "network" in vm.status_reason


def test_the_create_page_puts_an_instance_on_a_subnet_and_its_page_shows_the_interface(
        owner, subnet, a_owner, django_capture_on_commit_callbacks, client):
    client.force_login(a_owner.user)
    web = services.create_security_group(owner, vpc=subnet.vpc, name="web")
    form = {"name": "paged", "flavor": "t1.nano", "image": Image.objects.get(name="tiny").public_id, "count": 1,
            "subnet": subnet.public_id, "security_groups": [web.public_id], "ip_address": "10.1.2.77"}
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/instances/", form).status_code == 302
    vm = Instance.objects.get(name="paged")
    port = Port.objects.get(instance=vm)
    assert [g.name for g in port.security_groups.all()] == ["web"]

    page = client.get(f"/instances/{vm.public_id}/").content.decode()
    row = page[page.index(f'data-port="{port.public_id}"'):]
    row = row[:row.index("</tr>")]
    assert "10.1.2.77" in row and port.mac_address in row and ">web<" in row and "eth0" in page

    taken = client.post("/instances/", {**form, "name": "again"})
    assert taken.status_code == 409 and f"Taken by {port.public_id}." in taken.content.decode()
