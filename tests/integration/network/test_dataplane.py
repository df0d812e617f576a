"""The data plane, for real: QEMU guests (the tiny image, software emulation) on networks the
portal wrote into OVN, with the whole OVN stack running here (northd, ovn-controller and
ovs-vswitchd's userspace datapath). DHCP gives each guest the address the portal's IPAM chose;
guests of one VPC reach each other, guests of another tenant's VPC do not; a security group rule
opens and closes a TCP port of a running guest at once.

Guests are driven through their serial console (a pty; its root shell answers in the serial log)."""

from __future__ import annotations

import re
import secrets
import time

import pytest

from apps.compute import services as compute
from apps.compute.models import Instance
from apps.network import services as network
from apps.network.models import Port
from apps.tenants.models import Membership
from tests.factories.tenants import actor_for, make_tenant
from tests.integration.guests import remove_instances, settled, type_on_serial, wait_for_line

pytestmark = [pytest.mark.ovn, pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BOOT_TIMEOUT = 120  # seconds to BOOT-OK and a DHCP lease under TCG on a noisy machine
WEB_PORT = 8080  # the tiny guest's busybox httpd


@pytest.fixture
def sdn(ovn_stack, settings):
    """The portal writes into the full stack's northbound database."""
    from apps.network import backends

    settings.PORTAL_NETWORK_DRIVER = "apps.network.drivers.ovn.OvnDriver"
    settings.OVN_NB_CONNECTION = ovn_stack.nb.connection
    settings.PORTAL_OVS_DATAPATH = "netdev"
    backends.forget_drivers()
    yield ovn_stack
    backends.forget_drivers()


@pytest.fixture
def owners(tiny_image, sdn, libvirt_driver):
    made = {}

    def owner(name: str):
        tenant = make_tenant(f"Net {name}", owner_username=f"net{name.lower()}")
        made[name] = tenant
        return actor_for(Membership.objects.get(tenant=tenant))

    yield owner
    for tenant in made.values():
        remove_instances(tenant, libvirt_driver)


def boot(owner, image, subnet, name: str) -> tuple[Instance, str]:
    [vm] = compute.create_instances(owner, name=name, flavor="t1.nano", image=image.public_id,
                                    subnet=subnet.public_id)
    vm = settled(vm)
    assert vm.status == Instance.RUNNING, vm.status_reason
    lease = wait_for_line(vm, r"NET-UP eth0=([\d.]+)/(\d+) router=([\d.]+) mtu=(\d+)", BOOT_TIMEOUT)
    address = Port.objects.get(instance=vm).addresses.get(address__contains=".").address
    # DHCP answers with what the portal's IPAM chose, the subnet's gateway and MTU.
    assert lease.groups() == (address, "24", subnet.gateway_ip, str(subnet.mtu))
    return vm, address


def in_guest(vm: Instance, command: str, timeout: float = 30) -> int:
    """Run a shell command on the guest's console; its exit status. The echoed command shows
    `$?`, the answer a number, so the pattern only matches the answer."""
    token = secrets.token_hex(3)
    type_on_serial(vm.public_id, f"{command} >/dev/null 2>&1; echo RC-{token}-$?")
    return int(wait_for_line(vm, rf"RC-{token}-(\d+)", timeout).group(1))


def fetch_command(address: str) -> str:
    """An HTTP GET of the guest's page with busybox nc (busybox-static's wget crashes); fails
    unless the page comes back."""
    return f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} {WEB_PORT} | grep -q tiny"


def eventually(vm: Instance, command: str, want: int, timeout: float = 60) -> int:
    """Retry until the command's status is `want` (the first packets wait for the port's
    binding and flows); the last status."""
    deadline = time.monotonic() + timeout
    status = in_guest(vm, command)
    while status != want and time.monotonic() < deadline:
        status = in_guest(vm, command)
    return status


def test_guests_on_ovn_get_dhcp_reach_their_vpc_and_follow_security_groups(owners, tiny_image, sdn):
    alice, bob = owners("A"), owners("B")
    vpc_a = network.create_vpc(alice, name="a", cidr="10.50.0.0/16")
    subnet_a = network.create_subnet(alice, vpc=vpc_a, name="a1", cidr="10.50.1.0/24")
    vpc_b = network.create_vpc(bob, name="b", cidr="10.60.0.0/16")
    subnet_b = network.create_subnet(bob, vpc=vpc_b, name="b1", cidr="10.60.1.0/24")

    client, client_ip = boot(alice, tiny_image, subnet_a, "client")
    server, server_ip = boot(alice, tiny_image, subnet_a, "server")
    stranger, stranger_ip = boot(bob, tiny_image, subnet_b, "stranger")
    assert re.search(r"up", sdn.nb.nbctl("lsp-get-up", str(Port.objects.get(instance=server).uuid)))

    # One VPC: the default group lets its members talk.
    ping = f"ping -c 2 -W 2 {server_ip}"
    assert eventually(client, ping, 0) == 0
    fetch = fetch_command(server_ip)
    assert eventually(client, fetch, 0) == 0
    # Another tenant's VPC: no path either way.
    assert in_guest(stranger, f"ping -c 2 -W 2 {client_ip}") != 0
    assert in_guest(client, f"ping -c 2 -W 2 {stranger_ip}") != 0

    # The server moves to a group without ingress rules: closed at once, then opened and closed
    # again by a rule (stateful: the replies need no rule).
    web = network.create_security_group(alice, vpc=vpc_a, name="web")
    network.update_port(alice, port=Port.objects.get(instance=server), security_groups=[web.public_id])
    sdn.wait_hv()
    assert in_guest(client, fetch) != 0
    rule = network.add_security_group_rule(alice, group=web, direction="ingress", protocol="tcp",
                                           port_range_min=WEB_PORT, port_range_max=WEB_PORT)
    sdn.wait_hv()
    assert eventually(client, fetch, 0, timeout=20) == 0
    assert in_guest(client, ping) != 0  # only the port was opened
    network.delete_security_group_rule(alice, rule=rule)
    sdn.wait_hv()
    assert in_guest(client, fetch) != 0
