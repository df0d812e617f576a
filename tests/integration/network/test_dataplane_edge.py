"""North-south on the data plane: an external network on the test chassis (a provider bridge
with "the internet", a network namespace as its upstream router), tiny guests of a VPC behind it.
An EIP bound to a guest answers pings and HTTP from outside and lets the guest out; a guest
without one is cut off until a NAT gateway translates it to the gateway's EIP (which the
outside sees as the source); a port mapping forwards the gateway's EIP:port to a guest while it
exists; an unbound EIP answers no more."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.conf import settings

from apps.compute.models import Region
from apps.core.actor import Actor
from apps.network import edge_services as edge
from apps.network import services as network
# owners and sdn are fixtures: imported, pytest finds them here
from tests.integration.network.test_dataplane import (  # noqa: F401
    WEB_PORT,
    boot,
    eventually,
    in_guest,
    owners,
    sdn,
)

pytestmark = [pytest.mark.ovn, pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

UPSTREAM, UPSTREAM_MAC = "198.18.0.1", "02:00:c6:12:00:01"  # the external network's gateway
LISTEN_PORT = 9000  # the upstream's listener that records who connects
MAPPED_PORT = 2222

# An HTTP GET from a namespace; the response, or ERROR and why.
_FETCH = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    print(data.decode(errors="replace"))
except OSError as exc:
    print(f"ERROR {exc!r}")
"""

# Accepts one TCP connection (within argv[2] seconds); prints LISTENING, then the peer's address.
_ACCEPT = r"""
import socket, sys
with socket.create_server(("0.0.0.0", int(sys.argv[1]))) as server:
    server.settimeout(float(sys.argv[2]))
    print("LISTENING", flush=True)
    conn, (peer, _) = server.accept()
    conn.close()
    print(peer, flush=True)
"""


def until(check, timeout: float = 60) -> bool:
    """Poll CHECK() until true (the first packets wait for ARP and flows); whether it became so."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def fetch(stack, netns: str, address: str, port: int) -> str:
    return stack.netns_exec(netns, sys.executable, "-c", _FETCH, address, str(port)).stdout


def source_seen(stack, netns: str, vm) -> str:
    """The source address the upstream sees when the guest connects to it."""
    listener = subprocess.Popen(["ip", "netns", "exec", stack.netns_name(netns), sys.executable, "-c", _ACCEPT,
                                 str(LISTEN_PORT), "90"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "LISTENING", listener.stderr.read()
        assert eventually(vm, f"echo hi | nc -w 3 {UPSTREAM} {LISTEN_PORT}", 0) == 0
        out, _ = listener.communicate(timeout=30)
        return out.strip()
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


VLAN = 100  # tagged by OVN on the localnet port, untagged by the upstream's access port (flat works alike)


def test_eips_nat_gateway_and_port_mapping_carry_traffic(owners, tiny_image, sdn):
    vlan = VLAN
    # The operator's external network, hosted on this chassis; the upstream router on its wire.
    region = Region.objects.get(code=settings.PORTAL_DEFAULT_REGION)
    edge.create_external_network(Actor.system(), name="public", region=region, cidr="198.18.0.0/24",
                                 gateway_ip=UPSTREAM, ranges=[{"start": "198.18.0.10", "end": "198.18.0.50"}],
                                 physical_network="physnet1", vlan=vlan, gateway_chassis=[sdn.chassis])
    bridge = sdn.add_provider_bridge("physnet1", "br-ex")
    internet = sdn.add_netns_on_bridge("internet", bridge, UPSTREAM_MAC, f"{UPSTREAM}/24", vlan=vlan)

    alice = owners("E")
    vpc = network.create_vpc(alice, name="edge", cidr="10.80.0.0/16")
    subnet = network.create_subnet(alice, vpc=vpc, name="e1", cidr="10.80.1.0/24")
    # The outside gets in only where a rule lets it: ping and the web port, from anywhere.
    default = vpc.security_groups.get(is_default=True)
    network.add_security_group_rule(alice, group=default, direction="ingress", protocol="icmp")
    network.add_security_group_rule(alice, group=default, direction="ingress", protocol="tcp",
                                    port_range_min=WEB_PORT, port_range_max=WEB_PORT)
    a, _ = boot(alice, tiny_image, subnet, "a")
    b, b_ip = boot(alice, tiny_image, subnet, "b")
    ping_upstream = f"ping -c 2 -W 2 {UPSTREAM}"

    # An EIP on A: reachable from outside, and A's way out (seen as the EIP).
    eip = edge.allocate_eip(alice, external_network="public")
    edge.bind_eip(alice, eip=eip, instance=a)
    sdn.wait_hv()
    assert until(lambda: sdn.ping(internet, eip.address, count=1) == 1), sdn.log_tails()
    assert until(lambda: f"tiny {a.public_id}" in fetch(sdn, internet, eip.address, WEB_PORT))
    assert eventually(a, ping_upstream, 0) == 0
    assert source_seen(sdn, internet, a) == eip.address

    # B has no EIP: its packets leave with a private source, no reply finds its way back...
    assert in_guest(b, ping_upstream) != 0
    # ...until a NAT gateway translates the VPC to its own EIP.
    eip2 = edge.allocate_eip(alice, external_network="public")
    nat = edge.create_nat_gateway(alice, vpc=vpc, eip=eip2, name="egress")
    sdn.wait_hv()
    assert eventually(b, ping_upstream, 0) == 0
    assert source_seen(sdn, internet, b) == eip2.address

    # A port mapping on the NAT gateway's EIP reaches B's web server while it exists.
    mapping = edge.add_port_mapping(alice, nat=nat, protocol="tcp", external_port=MAPPED_PORT, internal_ip=b_ip,
                                    internal_port=WEB_PORT)
    sdn.wait_hv()
    assert until(lambda: f"tiny {b.public_id}" in fetch(sdn, internet, eip2.address, MAPPED_PORT))
    edge.delete_port_mapping(alice, mapping=mapping)
    sdn.wait_hv()
    assert "tiny" not in fetch(sdn, internet, eip2.address, MAPPED_PORT)

    # Unbound, A's EIP answers no more.
    edge.unbind_eip(alice, eip=eip)
    sdn.wait_hv()
    assert sdn.ping(internet, eip.address) == 0
