"""Load balancers and HA VIPs on the data plane: three tiny guests (a client, two web servers) in
one subnet of the full OVN stack. A listener spreads the client's connections over both members,
weight 0 drains one; ovn-controller's health checks see a member's web server stop and start
again (the southbound's Service_Monitor, through member_health) and the listener follows them. An
HA VIP answers from the parent that claimed it with a gratuitous ARP, and moves; a port that is
not a parent cannot take it."""

from __future__ import annotations

import re
import secrets
from collections import Counter

import pytest

from apps.network import lb_services as lbs
from apps.network import services as network
from apps.network.models import Port
from tests.integration.guests import serial, type_on_serial, wait_for_line
# owners and sdn are fixtures: imported, pytest finds them here
from tests.integration.network.test_dataplane import (  # noqa: F401
    WEB_PORT,
    boot,
    in_guest,
    owners,
    sdn,
)
from tests.integration.network.test_dataplane_edge import until

pytestmark = [pytest.mark.ovn, pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LB_PORT = 80
TRIES = 12  # fetches per round: both members answer within them (a miss is 2 in 4096)


@pytest.fixture
def southbound(sdn, settings):
    """The driver also reads health checks from the stack's southbound database."""
    from apps.network import backends

    settings.OVN_SB_CONNECTION = sdn.sb_connection
    backends.forget_drivers()
    return sdn


def answers(vm, address: str, port: int, tries: int = TRIES) -> Counter:
    """Which guests' pages TRIES HTTP GETs of address:port from VM brought (each a new
    connection; busybox nc, as fetch_command); failed ones count nothing."""
    token = secrets.token_hex(3)
    get = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} {port}"
    # Answers come out as TOKEN=<instance id>; the echoed command shows "TOKEN=/p" only.
    type_on_serial(vm.public_id, f"for i in $(seq {tries}); do {get} | sed -n 's/^tiny /{token}=/p'; done; "
                                 f"echo END-{token}-$?")
    wait_for_line(vm, rf"END-{token}-\d", tries * 5 + 30)
    return Counter(re.findall(rf"{token}=([\w-]+)", serial(vm)))


def test_load_balancer_and_ha_vip_carry_traffic(owners, tiny_image, southbound):
    stack = southbound
    alice = owners("L")
    vpc = network.create_vpc(alice, name="lb", cidr="10.90.0.0/16")
    subnet = network.create_subnet(alice, vpc=vpc, name="l1", cidr="10.90.1.0/24")
    client, _ = boot(alice, tiny_image, subnet, "client")
    web1, _ = boot(alice, tiny_image, subnet, "web1")
    web2, _ = boot(alice, tiny_image, subnet, "web2")
    one, two = web1.public_id, web2.public_id

    # A tcp/80 listener on both web servers: once their health checks pass, the client's
    # connections reach each.
    lb = lbs.create_load_balancer(alice, subnet=subnet, name="front")
    listener = lbs.add_listener(alice, load_balancer=lb, protocol="tcp", port=LB_PORT, health_interval=2,
                                health_timeout=1, health_success=1, health_failure=2)
    m1 = lbs.add_member(alice, listener=listener, port=WEB_PORT, instance=web1)
    m2 = lbs.add_member(alice, listener=listener, port=WEB_PORT, instance=web2)
    both_online = {m1.pk: "online", m2.pk: "online"}
    assert until(lambda: lbs.member_health(listener) == both_online, 30), lbs.member_health(listener)
    stack.wait_hv()
    assert until(lambda: sum(answers(client, lb.vip, LB_PORT, 2).values()) > 0), stack.log_tails()
    assert set(answers(client, lb.vip, LB_PORT)) == {one, two}

    # Weight 0 drains web1.
    lbs.update_member(alice, member=m1, weight=0)
    stack.wait_hv()
    assert answers(client, lb.vip, LB_PORT) == Counter({two: TRIES})
    assert lbs.member_health(listener)[m1.pk] == "drained"
    lbs.update_member(alice, member=m1, weight=1)

    # Health checks: web2's server stops, it goes offline and out; back again.
    assert until(lambda: lbs.member_health(listener) == both_online, 30), lbs.member_health(listener)
    assert in_guest(web2, "killall httpd") == 0
    assert until(lambda: lbs.member_health(listener) == {**both_online, m2.pk: "offline"}, 30)
    assert until(lambda: answers(client, lb.vip, LB_PORT) == Counter({one: TRIES}), 30)
    assert in_guest(web2, f"httpd -p {WEB_PORT} -h /www") == 0
    assert until(lambda: lbs.member_health(listener) == both_online, 30), lbs.member_health(listener)
    assert until(lambda: set(answers(client, lb.vip, LB_PORT)) == {one, two}, 30)

    # An HA VIP of web1 and web2: the one that claims it (gratuitous ARP) answers for it.
    ports = {vm.public_id: Port.objects.get(instance=vm) for vm in (client, web1, web2)}
    havip = network.create_havip(alice, subnet=subnet, name="vip", ports=[ports[one].public_id,
                                                                         ports[two].public_id])
    vip = havip.allocation.address
    stack.wait_hv()

    def claim(vm) -> int:
        return in_guest(vm, f"ip addr add {vip}/24 dev eth0 && arping -U -c 2 -I eth0 {vip}")

    def bound_to() -> str:
        """The parent ovn-controller bound the virtual port to (southbound)."""
        return stack.sbctl("--bare", "--columns=virtual_parent", "find", "Port_Binding",
                           f"logical_port={havip.public_id}").strip()

    assert claim(web1) == 0
    assert until(lambda: answers(client, vip, WEB_PORT, 2) == Counter({one: 2})), stack.log_tails()
    assert until(lambda: bound_to() == ports[one].switch_port, 10)
    assert in_guest(web1, f"ip addr del {vip}/24 dev eth0") == 0
    assert claim(web2) == 0
    assert until(lambda: answers(client, vip, WEB_PORT, 2) == Counter({two: 2}))
    assert until(lambda: bound_to() == ports[two].switch_port, 10)
    assert until(lambda: answers(web1, vip, WEB_PORT, 2) == Counter({two: 2}), 20)
    # The client is no parent: once web2 lets go, port security drops the client's claim.
    assert in_guest(web2, f"ip addr del {vip}/24 dev eth0") == 0
    assert claim(client) == 0
    assert answers(web1, vip, WEB_PORT, 2) == Counter()
    assert bound_to() == ports[two].switch_port
