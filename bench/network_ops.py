"""Benchmark: VPCs, subnets, ports and security group rules written into OVN's northbound database,
through the portal's services vs. ovsdbapp directly, in the same run.

A private OVN northbound ovsdb-server (tests/ovn.py start_nb, in the throwaway directory) and the
throwaway portal database of bench/_setup.py; one tenant, its owner as the actor, the tenant's
network quotas raised with apps.tenants.services.set_quota. Two series on the same server,
interleaved operation by operation (which goes first alternates):

- portal: apps.network.services as the owner (create_vpc, create_subnet, create_port,
  create_security_group, add_security_group_rule): one audited database transaction each (checks,
  quota, rows, IPAM) with the OVN write through apps.network.drivers.ovn inside it.
- direct: the same OVN rows written with ovsdbapp on a connection of its own (OvnNbApiIdlImpl,
  subclassed per connection as the driver does), one transaction per logical object as the
  portal writes them, with the same commands:
    VPC     lr_add; then the default group's pg_add + 2 pg_acl_add (create_vpc makes both, in two
            transactions)
    subnet  ls_add + lrp_add + the router-type lsp_add + dhcp_options_add + its options
    port    lsp_add (addresses, port_security, DHCPv4 options) + pg_add_ports into its security
            group and into the drop group (every port with port security is in both)
    rule    pg_acl_add on the group's port group

Scenario 1: a VPC with --subnets /24 subnets (10) and --ports ports (100) spread over them, in the
VPC's default group. Scenario 2: a security group with --rule-ports member ports (1,000; on a /22
or larger, made through the portal, timed too; the direct series makes a port group of the same
shape with as many ports of its own), then --repeat ingress rules tcp/1000+i (20) added to it:
one ACL on the port group each, whatever the number of members. First one untimed warm-up of
every verb, which also counts the SQL queries of one portal call. At the end ovn-nbctl checks the
groups' ACL and member counts, the scenario-1 switches' ports, and that every ACL row is on a
port group. Both IDL connections live in this process and receive every update (their threads
share the GIL with the timed calls), in both series alike.

Figures: per operation, mean / p50 / p95 in ms of each series and the portal/direct ratio of the
means; scenario 1's total is the sum of its operations' times. --profile then runs --ports more
portal create_port calls under cProfile (not in the table) and lists the top entries inside apps/.

    .venv/bin/python bench/network_ops.py          # --subnets 10 --ports 100 --rule-ports 1000 --repeat 20
    .venv/bin/python bench/network_ops.py --ports 20 --rule-ports 100 --repeat 5     # quick
    .venv/bin/python bench/network_ops.py --profile  # + cProfile of --ports more portal create_port calls

Needs OVN's ovsdb-server, ovsdb-tool and ovn-nbctl (Debian's ovn-central). Prints figures only;
timings are never asserted. Exit status 1 if a step failed or an ovn-nbctl check did not match.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import math
import pstats
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from ipaddress import ip_network

from _setup import ROOT, Throwaway, machine, percentile, table

MAX_RULES = 100  # apps.network.services.MAX_RULES_PER_GROUP, with the group's egress rule
RULE_PORT = 1000  # the rules open tcp/RULE_PORT+i


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subnets", type=int, default=10, help="scenario 1: /24 subnets of the VPC")
    parser.add_argument("--ports", type=int, default=100, help="scenario 1: ports, spread over the subnets")
    parser.add_argument("--rule-ports", type=int, default=1000, help="scenario 2: member ports of the group")
    parser.add_argument("--repeat", type=int, default=20, help="scenario 2: rules added per series")
    parser.add_argument("--profile", action="store_true",
                        help="also run --ports portal create_port calls under cProfile (untimed)")
    parser.add_argument("--top", type=int, default=10, help="profile entries inside apps/ shown")
    args = parser.parse_args()
    if not 1 <= args.subnets <= 254:
        parser.error("--subnets is 1 to 254 (10.x.N.0/24)")
    if not 1 <= args.ports <= 250 * args.subnets:
        parser.error(f"--ports is 1 to {250 * args.subnets} with {args.subnets} /24 subnets")
    if not 1 <= args.rule_ports <= 65000:
        parser.error("--rule-ports is 1 to 65000 (a subnet of a /16)")
    if not 1 <= args.repeat <= MAX_RULES - 1:
        parser.error(f"--repeat is 1 to {MAX_RULES - 1} (a group holds {MAX_RULES} rules, its egress one too)")
    return args


def main() -> int:
    args = parse_args()
    with Throwaway(name="network") as state:
        return Bench(args, state).run()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


@dataclass
class Switch:
    """A subnet written directly: its switch's name, the addresses left, its DHCPv4 options."""

    name: str
    addresses: object  # iterator of str
    dhcp: object  # uuid.UUID


class Direct:
    """ovsdbapp straight: an IDL connection of its own, one transaction per logical object, the
    rows the OVN driver writes (same columns and external_ids, owner `bench-direct`)."""

    def __init__(self, connection_string: str, timeout: int):
        from ovsdbapp.backend.ovs_idl import connection
        from ovsdbapp.schema.ovn_northbound import impl_idl

        from apps.network.drivers import ovn

        self.ovn = ovn
        # ovsdbapp keeps the connection on the API class: a class of our own keeps it apart from
        # the portal driver's.
        api_class = type("BenchNbApi", (impl_idl.OvnNbApiIdlImpl,), {"_ovsdb_connection": None})
        idl = connection.OvsdbIdl.from_server(connection_string, "OVN_Northbound")
        self.api = api_class(connection.Connection(idl, timeout=timeout))
        self.owner = "bench-direct"
        self.drop_group = ""
        self._macs = itertools.count(1)

    def close(self) -> None:
        self.api.ovsdb_connection.stop()

    def commit(self, *commands) -> None:
        with self.api.transaction(check_error=True) as txn:
            for command in commands:
                txn.add(command)

    def ids(self, kind: str, name: str, **extra: str) -> dict[str, str]:
        ovn = self.ovn
        return {ovn.OWNER: self.owner, ovn.KIND: kind, ovn.ID: name, ovn.TENANT: "bench-direct", **extra}

    def mac(self) -> str:
        return "02:d1:" + ":".join(f"{b:02x}" for b in next(self._macs).to_bytes(4, "big"))

    def _acl(self, group, name: str, rule):
        ovn = self.ovn
        direction = "to-lport" if rule.direction == "ingress" else "from-lport"
        return self.api.pg_acl_add(group, direction, ovn.ALLOW_PRIORITY, ovn.rule_match(rule, name), "allow-related",
                                   **{ovn.OWNER: self.owner, ovn.RULE: rule.id})

    def group(self, name: str, rules) -> str:
        """A security group's port group with an ACL per rule (ensure_security_group)."""
        from apps.network.drivers.base import SECURITY_GROUP

        group = self.api.pg_add(name, may_exist=True, external_ids=self.ids(SECURITY_GROUP, name), acls=[], ports=[])
        self.commit(group, *(self._acl(group, name, rule) for rule in rules))
        return name

    def drop(self, name: str) -> None:
        """The drop group every port with port security is in (ensure_baseline), untimed."""
        ovn, api = self.ovn, self.api
        group = api.pg_add(name, may_exist=True, external_ids={ovn.OWNER: self.owner, ovn.KIND: "baseline"},
                           acls=[], ports=[])
        acls = [("from-lport", ovn.DROP_PRIORITY, f"inport == @{name} && ip", "drop"),
                ("to-lport", ovn.DROP_PRIORITY, f"outport == @{name} && ip", "drop"),
                ("from-lport", ovn.ALLOW_PRIORITY, f"inport == @{name} && ip4 && udp.src == 68 && udp.dst == 67",
                 "allow"),
                ("from-lport", ovn.ALLOW_PRIORITY, f"inport == @{name} && ip6 && udp.src == 546 && udp.dst == 547",
                 "allow")]
        self.commit(group, *(api.pg_acl_add(group, *acl, **{ovn.OWNER: self.owner, ovn.RULE: str(n)})
                             for n, acl in enumerate(acls)))
        self.drop_group = name

    def vpc(self, name: str) -> tuple[str, str]:
        """The router, then the default group's port group (create_vpc): (router, group)."""
        from apps.network.drivers.base import ROUTER, Rule

        self.commit(self.api.lr_add(name, may_exist=True, external_ids=self.ids(ROUTER, name)))
        group = f"pg_{name.replace('-', '_')}_default"
        self.group(group, [Rule(id="egress", direction="egress", ethertype="IPv4", protocol="any"),
                           Rule(id="ingress", direction="ingress", ethertype="IPv4", protocol="any",
                                remote_group=group)])
        return name, group

    def subnet(self, router: str, name: str, cidr: str) -> Switch:
        """Switch, router port, the switch's router-type port, DHCPv4 options (ensure_switch)."""
        from apps.network.drivers.base import SWITCH

        ovn, api = self.ovn, self.api
        network = ip_network(cidr)
        hosts = (str(a) for a in network.hosts())
        gateway, mac, ids = next(hosts), self.mac(), self.ids(SWITCH, name)
        switch = api.ls_add(name, may_exist=True, external_ids=ids)
        router_port = f"lrp-{name}"
        lrp = api.lrp_add(router, router_port, mac, [f"{gateway}/{network.prefixlen}"], may_exist=True,
                          ipv6_ra_configs={}, external_ids=ids)
        peer = api.lsp_add(switch, f"rp-{name}", may_exist=True, type="router", addresses=["router"],
                           options={"router-port": router_port}, external_ids=ids)
        dhcp = api.dhcp_options_add(str(network), **self.ids(SWITCH, name, **{ovn.IP_VERSION: "4"}))
        options = api.dhcp_options_set_options(dhcp, server_id=gateway, server_mac=mac, router=gateway,
                                               lease_time=str(ovn.DHCP_LEASE_SECONDS), mtu="1442")
        self.commit(switch, lrp, peer, dhcp, options)
        return Switch(name, hosts, dhcp.result.uuid)

    def port(self, switch: Switch, groups: list[str]) -> str:
        """A switch port with port security, in its groups and the drop group (ensure_port)."""
        from apps.network.drivers.base import PORT

        api, name, mac, address = self.api, str(uuid.uuid4()), self.mac(), next(switch.addresses)
        port = api.lsp_add(switch.name, name, may_exist=True, addresses=[f"{mac} {address}"],
                           port_security=[f"{mac} {address}"], dhcpv4_options=[switch.dhcp],
                           external_ids=self.ids(PORT, name, **{self.ovn.DEVICE: ""}))
        self.commit(port, *(api.pg_add_ports(group, port) for group in sorted({*groups, self.drop_group})))
        return name

    def rule(self, group: str, number: int) -> None:
        """One ingress tcp rule (add_security_group_rule's ACL)."""
        from apps.network.drivers.base import Rule

        self.commit(self._acl(group, group, Rule(id=f"rule-{number}", direction="ingress", ethertype="IPv4",
                                                 protocol="tcp", port_min=number, port_max=number)))


class Bench:
    def __init__(self, args, state):
        self.args, self.state = args, state
        self.server = self.direct = None
        self.times: dict[tuple[str, str], list[float]] = {}  # (series, operation) → seconds, in order
        self.queries: dict[str, int] = {}  # portal verb → SQL queries of one (warm-up) call
        self.checks: list[tuple[str, bool]] = []
        self.profile_lines: list[str] = []
        self.tag = uuid.uuid4().hex[:6]  # in the direct series' names
        self.members_op = f"create_port (group 0 → {args.rule_ports:,})"
        self.rule_op = f"add_security_group_rule ({args.rule_ports:,} ports)"
        self.switches: dict[str, list[str]] = {}  # series → scenario 1's switch names
        self.groups: dict[str, tuple[str, int]] = {}  # series → scenario 2's port group, rules it should hold

    # -- set up ---------------------------------------------------------------------------
    def setup(self) -> None:
        from django.conf import settings

        from apps.compute.models import Region
        from apps.core.actor import Actor
        from apps.core.policies import OWNER
        from apps.network import backends
        from apps.tenants.models import Membership
        from apps.tenants.services import set_quota
        from tests.factories.tenants import actor_for, make_tenant
        from tests.ovn import start_nb

        self.server = start_nb(self.state.tmp / "ovn")
        settings.PORTAL_NETWORK_DRIVER = "apps.network.drivers.ovn.OvnDriver"
        settings.OVN_NB_CONNECTION = self.server.connection
        backends.forget_drivers()
        self.direct = Direct(self.server.connection, settings.OVN_NB_TIMEOUT)
        Region.objects.create(code=settings.PORTAL_DEFAULT_REGION, name="Bench region")
        tenant = make_tenant("Bench tenant", owner_username="bench-owner")
        self.owner = actor_for(Membership.objects.get(tenant=tenant, role=OWNER))
        for resource in ("vpcs", "subnets", "ports", "security_groups", "security_group_rules"):
            set_quota(Actor.system(), tenant=tenant, resource=resource, limit=10**7)
        server = subprocess.run(["ovsdb-server", "--version"], capture_output=True, text=True, check=False).stdout
        server = server.split("\n")[0]
        a = self.args
        print(f"network ops: {a.subnets} subnets + {a.ports} ports, a rule on a {a.rule_ports:,}-port group x "
              f"{a.repeat}; portal services vs ovsdbapp {version('ovsdbapp')} direct")
        print(f"  {server.strip()} on {self.server.connection}; {self.state.describe()}; {machine()}")

    # -- timing ---------------------------------------------------------------------------
    def timed(self, series: str, operation: str, fn):
        started = time.perf_counter()
        result = fn()
        self.times.setdefault((series, operation), []).append(time.perf_counter() - started)
        return result

    def pair(self, n: int, operation: str, portal, direct):
        """Both series' call, the order alternating with n; (portal's result, direct's)."""
        if n % 2 == 0:
            return self.timed("portal", operation, portal), self.timed("direct", operation, direct)
        done = self.timed("direct", operation, direct)
        return self.timed("portal", operation, portal), done

    # -- the steps ------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Every verb once per series, untimed (imports, IDL caches, the drop groups); the
        portal's calls under the query recorder."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from apps.network import services
        from apps.network.drivers.base import Rule

        def counted(verb, fn, **options):
            with CaptureQueriesContext(connection) as captured:
                result = fn(self.owner, **options)
            self.queries[verb] = len(captured.captured_queries)
            return result

        vpc = counted("create_vpc", services.create_vpc, name="warm-up", cidr="10.0.0.0/16")
        subnet = counted("create_subnet", services.create_subnet, vpc=vpc, name="warm-up", cidr="10.0.1.0/24")
        for _ in range(2):  # the first makes the drop group too
            counted("create_port", services.create_port, subnet=subnet)
        group = counted("create_security_group", services.create_security_group, vpc=vpc, name="warm-up")
        counted("add_security_group_rule", services.add_security_group_rule, group=group, direction="ingress",
                protocol="tcp", port_range_min=22, port_range_max=22)
        direct = self.direct
        direct.drop(f"pg_d{self.tag}_drop")
        router, default = direct.vpc(f"vpc-d{self.tag}-0")
        switch = direct.subnet(router, f"subnet-d{self.tag}-0", "10.0.1.0/24")
        direct.port(switch, [default])
        direct.port(switch, [default])
        group = direct.group(f"pg_d{self.tag}_warm_up", [Rule(id="egress", direction="egress", ethertype="IPv4",
                                                               protocol="any")])
        direct.rule(group, 22)

    def scenario_vpc(self) -> None:
        """A VPC, its subnets, ports spread over them."""
        from apps.network import services

        a, owner, direct = self.args, self.owner, self.direct
        vpc, (router, default) = self.pair(
            0, "create_vpc", partial(services.create_vpc, owner, name="bench", cidr="10.1.0.0/16"),
            partial(direct.vpc, f"vpc-d{self.tag}-1"))
        subnets, switches = [], []
        for i in range(a.subnets):
            cidr = f"10.1.{i + 1}.0/24"
            subnet, switch = self.pair(
                i, "create_subnet", partial(services.create_subnet, owner, vpc=vpc, name=f"net{i + 1}", cidr=cidr),
                partial(direct.subnet, router, f"subnet-d{self.tag}-1-{i + 1}", cidr))
            subnets.append(subnet)
            switches.append(switch)
        for j in range(a.ports):
            self.pair(j, "create_port", partial(services.create_port, owner, subnet=subnets[j % a.subnets]),
                      partial(direct.port, switches[j % a.subnets], [default]))
        self.switches = {"portal": [s.public_id for s in subnets], "direct": [s.name for s in switches]}

    def scenario_rules(self) -> None:
        """A group with --rule-ports members, then --repeat rules added to it."""
        from apps.network import services
        from apps.network.drivers.base import Rule

        a, owner, direct = self.args, self.owner, self.direct
        cidr = f"10.2.0.0/{max(16, min(24, 32 - math.ceil(math.log2(a.rule_ports + 3))))}"
        vpc = services.create_vpc(owner, name="rules", cidr="10.2.0.0/16")
        subnet = services.create_subnet(owner, vpc=vpc, name="members", cidr=cidr)
        group = services.create_security_group(owner, vpc=vpc, name="members")
        router, _ = direct.vpc(f"vpc-d{self.tag}-2")
        switch = direct.subnet(router, f"subnet-d{self.tag}-2", cidr)
        pg = direct.group(f"pg_d{self.tag}_members", [Rule(id="egress", direction="egress", ethertype="IPv4",
                                                            protocol="any")])
        for j in range(a.rule_ports):
            self.pair(j, self.members_op,
                      partial(services.create_port, owner, subnet=subnet, security_groups=[group.public_id]),
                      partial(direct.port, switch, [pg]))
        for i in range(a.repeat):
            self.pair(i, self.rule_op,
                      partial(services.add_security_group_rule, owner, group=group, direction="ingress",
                              protocol="tcp", port_range_min=RULE_PORT + i, port_range_max=RULE_PORT + i),
                      partial(direct.rule, pg, RULE_PORT + i))
        self.groups = {"portal": (group.port_group, group.rules.count()), "direct": (pg, 1 + a.repeat)}

    def verify(self) -> None:
        """What ovn-nbctl finds, against what the steps made."""
        nbctl, a = self.server.nbctl, self.args

        def column(table_name: str, name: str, wanted: str) -> list[str]:
            """The values of the set column `wanted` of the row `name`."""
            return nbctl("--bare", f"--columns={wanted}", "find", table_name, f"name={name}").split()

        expected_acls = 1 + a.repeat  # the group's egress rule and the added ones
        on_groups = 0
        for series, (group, rules) in self.groups.items():
            acls, ports = column("Port_Group", group, "acls"), column("Port_Group", group, "ports")
            rule_acls = [line for line in nbctl("acl-list", group).splitlines() if "tcp.dst ==" in line]
            self.checks.append(((f"{series}: port group {group}: {len(acls)} ACLs (expected {expected_acls}; "
                                 f"{rules} rules), {len(rule_acls)} of them tcp rules (expected {a.repeat}), "
                                 f"{len(ports):,} member ports (expected {a.rule_ports:,})"),
                                len(acls) == expected_acls == rules and len(rule_acls) == a.repeat
                                and len(ports) == a.rule_ports))
        for series, names in self.switches.items():
            found = sum(len(column("Logical_Switch", name, "ports")) for name in names)
            self.checks.append(((f"{series}: scenario-1 switches hold {found} ports (expected {a.ports} + "
                                 f"{a.subnets} router-type)"), found == a.ports + a.subnets))
        for group in nbctl("--bare", "--columns=name", "list", "Port_Group").split():
            on_groups += len(column("Port_Group", group, "acls"))
        total = len(nbctl("--bare", "--columns=_uuid", "list", "ACL").split())
        self.checks.append((f"ACL rows {total}, on port groups {on_groups}", total == on_groups))

    def profile(self) -> None:
        """--ports portal create_port calls over --subnets new subnets, under cProfile."""
        from apps.network import services

        a = self.args
        vpc = services.create_vpc(self.owner, name="profile", cidr="10.3.0.0/16")
        subnets = [services.create_subnet(self.owner, vpc=vpc, name=f"p{i}", cidr=f"10.3.{i + 1}.0/24")
                   for i in range(a.subnets)]
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for j in range(a.ports):
            services.create_port(self.owner, subnet=subnets[j % a.subnets])
        profiler.disable()
        elapsed = time.perf_counter() - started
        apps = str(ROOT / "apps")
        entries = sorted(((ct, nc, f"{path[len(str(ROOT)) + 1:]}:{line}({func})")
                          for (path, line, func), (_cc, nc, _tt, ct, _callers) in pstats.Stats(profiler).stats.items()
                          if path.startswith(apps)), reverse=True)
        rows = [[where, f"{calls:,}", f"{ct:.3f}", f"{100 * ct / elapsed:.0f}%", ms(ct / a.ports)]
                for ct, calls, where in entries[:a.top]]
        self.profile_lines = [(f"\ncProfile of {a.ports} portal create_port calls ({elapsed:.2f} s with the "
                               f"profiler, main thread only), top {a.top} cumulative inside apps/:"),
                              table(rows, ["function", "calls", "cumulative s", "share", "ms/port"])]

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> int:
        failed = False
        try:
            self.setup()
            self.warm_up()
            self.scenario_vpc()
            self.scenario_rules()
            self.verify()
            if self.args.profile:
                self.profile()
        except Exception:
            failed = True
            print("FAILED:")
            traceback.print_exc(file=sys.stdout)
        except BaseException:
            print("interrupted: stopping the northbound server")
            raise
        finally:
            self.cleanup()
        if self.times:
            self.report()
        return 1 if failed or not all(ok for _, ok in self.checks) else 0

    def cleanup(self) -> None:
        from apps.network import backends

        try:
            if self.direct is not None:
                self.direct.close()
        finally:
            try:
                backends.forget_drivers()
            finally:
                if self.server is not None:
                    self.server.stop()

    # -- figures ------------------------------------------------------------------------------
    def report(self) -> None:
        a = self.args
        operations = list(dict.fromkeys(op for _, op in self.times))
        scenario_1 = ("create_vpc", "create_subnet", "create_port")
        header = ["operation", "n", "portal mean", "p50", "p95", "direct mean", "p50", "p95", "portal/direct"]
        for title, ops in ((f"scenario 1: a VPC, {a.subnets} subnets, {a.ports} ports", scenario_1),
                           (f"scenario 2: a group of {a.rule_ports:,} ports, {a.repeat} rules",
                            [op for op in operations if op not in scenario_1])):
            rows = []
            for op in ops:
                portal, direct = self.times.get(("portal", op)), self.times.get(("direct", op))
                if not portal or not direct:
                    continue
                rows.append([op, str(len(portal)), *self._figures(portal), *self._figures(direct),
                             f"{statistics.mean(portal) / statistics.mean(direct):.1f}x"])
            if rows:
                print(f"\n{title}: milliseconds per operation")
                print(table(rows, header))
        totals = {s: sum(sum(self.times.get((s, op), [])) for op in scenario_1) for s in ("portal", "direct")}
        complete = all(len(self.times.get((s, "create_port"), [])) == a.ports for s in totals)
        if complete:
            print(f"scenario 1 total (the sum of its {1 + a.subnets + a.ports} operations): portal "
                  f"{totals['portal']:.2f} s, direct {totals['direct']:.2f} s, "
                  f"{totals['portal'] / totals['direct']:.1f}x")
        if self.queries:
            print("SQL queries of one portal call (warm-up): "
                  + ", ".join(f"{verb} {n}" for verb, n in self.queries.items()))
        for what, ok in self.checks:
            print(f"check {'PASS' if ok else 'FAIL'}: {what}")
        for line in self.profile_lines:
            print(line)
        rules = [self.times.get((s, self.rule_op), []) for s in ("portal", "direct")]
        if complete and all(len(r) == a.repeat for r in rules):
            p50 = [statistics.median(r) for r in rules]
            print(f"\nsummary: VPC + {a.subnets} subnets + {a.ports} ports portal {totals['portal']:.2f} s vs direct "
                  f"{totals['direct']:.2f} s ({totals['portal'] / totals['direct']:.1f}x); a rule on a "
                  f"{a.rule_ports:,}-port group p50 portal {ms(p50[0])} ms vs direct {ms(p50[1])} ms "
                  f"({p50[0] / p50[1]:.1f}x)")

    @staticmethod
    def _figures(values: list[float]) -> list[str]:
        return [ms(statistics.mean(values)), ms(statistics.median(values)), ms(percentile(values, 95))]


if __name__ == "__main__":
    sys.exit(main())
