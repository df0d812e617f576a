"""The full OVN stack (the `ovn_stack` fixture, tests/ovn.py) moves real packets: network
namespaces bound to logical switch ports ping each other through a logical switch and a logical
router, and an ACL really drops traffic. Built with ovn-nbctl directly, not through the portal."""

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ovn, pytest.mark.integration]

LS1_MAC, LS1_IP = "52:54:00:70:00:01", "10.70.0.1"
LS2_MAC, LS2_IP = "52:54:00:70:00:02", "10.70.0.2"


def add_lsp(stack, switch, lsp, mac, ip):
    stack.nb.nbctl("lsp-add", switch, lsp, "--", "lsp-set-addresses", lsp, f"{mac} {ip}",
                   "--", "lsp-set-port-security", lsp, f"{mac} {ip}")


def replies(stack, netns, address, count=3, wait=2.0):
    """ICMP echo replies out of COUNT; the daemons' logs in the message of a failing assert."""
    got = stack.ping(netns, address, count=count, wait=wait)
    return got, f"{got}/{count} replies from {address} in {netns}\n{stack.log_tails()}"


def test_switch_ports_ping_and_an_acl_drops(ovn_stack):
    ovn_stack.nb.nbctl("ls-add", "ls-test")
    add_lsp(ovn_stack, "ls-test", "lsp-1", LS1_MAC, LS1_IP)
    add_lsp(ovn_stack, "ls-test", "lsp-2", LS2_MAC, LS2_IP)
    one = ovn_stack.add_netns_port("one", "lsp-1", LS1_MAC, f"{LS1_IP}/24")
    ovn_stack.add_netns_port("two", "lsp-2", LS2_MAC, f"{LS2_IP}/24")
    ovn_stack.wait_port_up("lsp-1", "lsp-2")
    ovn_stack.wait_hv()
    assert ovn_stack.nb.nbctl("lsp-get-up", "lsp-1").strip() == "up"
    assert ovn_stack.nb.nbctl("lsp-get-up", "lsp-2").strip() == "up"

    got, why = replies(ovn_stack, one, LS2_IP)
    assert got == 3, why

    ovn_stack.nb.nbctl("--wait=hv", "acl-add", "ls-test", "to-lport", "1002", 'outport == "lsp-2" && icmp4', "drop")
    got, why = replies(ovn_stack, one, LS2_IP, wait=0.5)  # a reply takes ~1 ms; waiting for none
    assert got == 0, why

    ovn_stack.nb.nbctl("--wait=hv", "acl-del", "ls-test")
    got, why = replies(ovn_stack, one, LS2_IP)
    assert got == 3, why


def test_router_joins_two_subnets(ovn_stack):
    nbctl = ovn_stack.nb.nbctl
    nbctl("lr-add", "lr-test")
    endpoints = []
    for n in (1, 2):
        switch, lrp, gateway = f"ls-{n}", f"lrp-{n}", f"10.71.{n}.1"
        nbctl("ls-add", switch)
        nbctl("lrp-add", "lr-test", lrp, f"02:00:00:71:0{n}:01", f"{gateway}/24")
        nbctl("lsp-add", switch, f"{switch}-router", "--", "lsp-set-type", f"{switch}-router", "router",
              "--", "lsp-set-addresses", f"{switch}-router", "router",
              "--", "lsp-set-options", f"{switch}-router", f"router-port={lrp}")
        mac, ip = f"52:54:00:71:0{n}:10", f"10.71.{n}.10"
        add_lsp(ovn_stack, switch, f"vm-{n}", mac, ip)
        endpoints.append(ovn_stack.add_netns_port(f"vm{n}", f"vm-{n}", mac, f"{ip}/24", gateway=gateway))
    ovn_stack.wait_port_up("vm-1", "vm-2")
    ovn_stack.wait_hv()

    got, why = replies(ovn_stack, endpoints[0], "10.71.1.1")  # the router answers on its own port
    assert got == 3, why
    got, why = replies(ovn_stack, endpoints[0], "10.71.2.10")
    assert got == 3, why
    got, why = replies(ovn_stack, endpoints[1], "10.71.1.10")
    assert got == 3, why


def test_tcp_crosses_the_switch(ovn_stack):
    """TCP needs the namespaces' own checksums (add_netns_port turns TX offload off)."""
    ovn_stack.nb.nbctl("ls-add", "ls-test")
    add_lsp(ovn_stack, "ls-test", "lsp-1", LS1_MAC, LS1_IP)
    add_lsp(ovn_stack, "ls-test", "lsp-2", LS2_MAC, LS2_IP)
    client = ovn_stack.add_netns_port("client", "lsp-1", LS1_MAC, f"{LS1_IP}/24")
    server_ns = ovn_stack.add_netns_port("server", "lsp-2", LS2_MAC, f"{LS2_IP}/24")
    ovn_stack.wait_port_up("lsp-1", "lsp-2")
    ovn_stack.wait_hv()
    # echoes one message back 1000 times over: bigger than one segment
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, sys.executable, "-c",
         f"import socket\nwith socket.create_server(('{LS2_IP}', 8080)) as s:\n"
         "    s.settimeout(20); c, _ = s.accept(); c.sendall(c.recv(64) * 1000); c.close()"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client_code = (f"import socket, time\ndeadline = time.monotonic() + 10\n"
                       f"while True:\n"
                       f"    try:\n        c = socket.create_connection(('{LS2_IP}', 8080), timeout=5); break\n"
                       f"    except ConnectionRefusedError:\n"
                       f"        if time.monotonic() > deadline: raise\n        time.sleep(0.05)\n"
                       f"c.sendall(b'0123456789'); data = b''\n"
                       f"while chunk := c.recv(65536): data += chunk\n"
                       f"print(len(data))")
        done = ovn_stack.netns_exec(client, sys.executable, "-c", client_code, timeout=30)
        assert done.returncode == 0 and done.stdout.strip() == "10000", (done.stderr, ovn_stack.log_tails())
    finally:
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:  # `ip netns exec` execs python: this PID is the server
            server.kill()
            server.wait()
