"""End-to-end: virtual networks in a real Chromium against the real ASGI app under daphne
(tests/integration/conftest.py), with the real OVN driver on a private northbound ovsdb-server
(the `ovn` fixture) behind it.

The daphne process is another process: it gets the driver and the northbound connection
through its environment (PORTAL_NETWORK_DRIVER, OVN_NB_CONNECTION), the way `ovn` sets them
in this one, so this module serves the portal per test, next to that test's server. In the
browser, a tenant owner creates a VPC on /vpcs/ (`#create-vpc`), a subnet (`#create-subnet`)
and a network interface (`#create-port`) on its page, a security group from the VPC's "New
security group" link (`#create-security-group`, the VPC preselected) and an ingress tcp/22
rule (`#add-rule`). ovn-nbctl then finds the logical router, the logical switch, the port
group and its ACL; the VPC page's topology picture shows the subnet and the interface, and is
kept as var/test-output/network-topology.png (the whole pages as network-vpc.png and
network-security-group.png)."""

from __future__ import annotations

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed").expect

from apps.network.models import VPC, Port, SecurityGroup, Subnet
from tests.factories.tenants import PASSWORD, make_tenant
from tests.integration.conftest import serve_portal
from tests.integration.pages import expect_landed, sign_in, submit

USERNAME = "netowner"
VPC_CIDR, SUBNET_CIDR = "10.42.0.0/16", "10.42.1.0/24"


@pytest.fixture
def daphne_server(ovn, django_db_setup):
    """The portal on this test's northbound server (overrides the per-module one)."""
    with serve_portal("test_browser_network", PORTAL_NETWORK_DRIVER="apps.network.drivers.ovn.OvnDriver",
                      OVN_NB_CONNECTION=ovn.connection) as server:
        yield server


@pytest.mark.browser
@pytest.mark.ovn
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the server process must see (and write) committed rows
def test_vpc_subnet_security_group_and_rule_from_the_pages_land_in_ovn(ovn, region, page, daphne_server,
                                                                       output_dir):
    base = daphne_server.url
    tenant = make_tenant("Network Tenant", owner_username=USERNAME)
    sign_in(page, USERNAME, PASSWORD)

    # /vpcs/: empty; create a VPC.
    page.goto("/vpcs/")
    expect(page.get_by_role("heading", name="VPCs", exact=True)).to_be_visible()
    expect(page.locator("#vpcs tbody tr")).to_have_text("No VPCs.")
    form = page.locator("#create-vpc")
    form.locator("input[name=name]").fill("browser-vpc")
    form.locator("input[name=cidr]").fill(VPC_CIDR)
    submit(page, form, "Create", f"{base}/vpcs/")
    vpc = VPC.objects.get(tenant=tenant, name="browser-vpc")
    detail = f"{base}/vpcs/{vpc.public_id}/"
    expect(page).to_have_url(detail)
    expect_landed(page, "VPC created.")
    assert vpc.public_id in ovn.nbctl("lr-list")

    # A subnet, then a network interface on it.
    form = page.locator("#create-subnet")
    form.locator("input[name=name]").fill("web")
    form.locator("input[name=cidr]").fill(SUBNET_CIDR)
    form.locator("input[name=dns_nameservers]").fill("10.42.0.2")
    expect(form.locator("input[name=dhcp_enabled]")).to_be_checked()
    submit(page, form, "Create subnet", f"{detail}create-subnet")
    expect_landed(page, "Subnet created.")
    subnet = Subnet.objects.get(vpc=vpc)
    assert subnet.public_id in ovn.nbctl("ls-list")
    row = page.locator(f"#subnets tr[data-subnet='{subnet.public_id}']")
    expect(row).to_contain_text(SUBNET_CIDR)
    expect(row.locator("td").nth(3)).to_have_text("10.42.1.1")
    expect(row.locator("td").nth(6)).to_have_text("253")

    form = page.locator("#create-port")
    expect(form.locator("select[name=subnet]")).to_have_value(subnet.public_id)
    form.locator("input[name=name]").fill("eth-web")
    submit(page, form, "Create interface", f"{detail}create-port")
    expect_landed(page, "Network interface created.")
    port = Port.objects.get(subnet=subnet)
    assert str(port.uuid) in ovn.nbctl("lsp-list", subnet.public_id)
    expect(page.locator(f"#ports tr[data-port='{port.public_id}']")).to_contain_text("10.42.1.2")

    # A security group for the VPC (preselected by the VPC page's link), and an ssh rule.
    page.get_by_role("link", name="New security group").click()
    form = page.locator("#create-security-group")
    expect(form.locator("select[name=vpc]")).to_have_value(vpc.public_id)
    form.locator("input[name=name]").fill("ssh")
    submit(page, form, "Create", f"{base}/security-groups/?vpc={vpc.public_id}")  # the box posts to its page
    group = SecurityGroup.objects.get(vpc=vpc, name="ssh")
    expect(page).to_have_url(f"{base}/security-groups/{group.public_id}/")
    expect_landed(page, "Security group created.")
    assert group.port_group in ovn.nbctl("--columns=name", "list", "Port_Group")

    form = page.locator("#add-rule")
    form.locator("select[name=direction]").select_option("ingress")
    form.locator("select[name=protocol]").select_option("tcp")
    form.locator("input[name=port_range_min]").fill("22")
    form.locator("input[name=port_range_max]").fill("22")
    form.locator("input[name=remote_ip_prefix]").fill("0.0.0.0/0")
    form.locator("input[name=description]").fill("ssh from anywhere")
    submit(page, form, "Add rule", f"{base}/security-groups/{group.public_id}/add-rule")
    expect_landed(page, "Rule added.")
    rule = group.rules.get(direction="ingress")
    cells = page.locator(f"#rules tr[data-rule='{rule.public_id}'] td")
    expect(cells.nth(2)).to_have_text("tcp")
    expect(cells.nth(3)).to_have_text("22")
    expect(cells.nth(4)).to_have_text("0.0.0.0/0 (anywhere)")
    page.screenshot(path=str(output_dir / "network-security-group.png"), full_page=True)
    acls = ovn.nbctl("acl-list", group.port_group)
    assert f"outport == @{group.port_group} && ip4 && tcp && tcp.dst == 22" in acls, acls

    # The VPC's picture: router, the subnet with its CIDR, the interface on it.
    page.goto(f"/vpcs/{vpc.public_id}/")
    topology = page.locator("#topology")
    expect(topology).to_be_visible()
    expect(topology.locator(f"[data-router='{vpc.public_id}']")).to_be_visible()
    card = topology.locator(f"[data-subnet='{subnet.public_id}']")
    expect(card).to_be_visible()
    expect(card).to_contain_text(SUBNET_CIDR)
    expect(card.locator(f"[data-port='{port.public_id}']")).to_be_visible()
    expect(card.locator(f"[data-port='{port.public_id}']")).to_contain_text("10.42.1.2")
    box = topology.bounding_box()
    assert box and box["width"] > 500 and box["height"] > 150, box

    page.screenshot(path=str(output_dir / "network-vpc.png"), full_page=True)
    shot = output_dir / "network-topology.png"
    shot.unlink(missing_ok=True)
    topology.screenshot(path=str(shot))
    assert shot.is_file() and shot.stat().st_size > 5_000, "the screenshot is missing or blank"
