"""OVN northbound driver, through ovsdbapp (as OpenStack's OVN driver does).

One IDL connection per process (made again after a fork: django-q2 forks its workers), reads
from its local cache, one transaction per logical change. What the portal makes:

  VPC       Logical_Router `vpc-…`
  subnet    Logical_Switch `subnet-…`; its router port `lrp-subnet-…` (gateway addresses,
            router MAC, IPv6 RAs) and the switch's `router` port `rp-subnet-…`; DHCP_Options
            rows for IPv4 / IPv6 (found by external_ids)
  port      Logical_Switch_Port named by the port's UUID (libvirt's interfaceid)
  group     Port_Group `pg_sg_…` with one allow-related ACL per rule; ports with port
            security are also in `portal_drop`, whose ACLs drop all other IP traffic
  external  Logical_Switch `ext-<name>` with a localnet port `ln-ext-<name>` (VLAN tag)
  gateway   the VPC router's port `lrp-gw-vpc-…` on an external switch (peer `rp-gw-vpc-…`),
            hosted on gateway chassis, with a default route; NAT rows (EIPs: dnat_and_snat,
            NAT gateways: snat), a Load_Balancer `pf-dnat-…` per port mapping, and QoS rows
            on the external switch limiting each EIP's bandwidth
  HA VIP    a `virtual` Logical_Switch_Port `havip-…` (virtual-ip, virtual-parents); the
            parents' port security lets them send from the address
  listener  a Load_Balancer `lb-lsnr-…` (VIP and EIP on the listener's port → members) with
            health checks, on the VPC's router and switches; health read from the southbound
            Service_Monitor table

Every row carries external_ids `portal:owner`, `portal:kind`, `portal:id` (the public id) and
`portal:tenant`."""

from __future__ import annotations

import os
import threading
from ipaddress import ip_network

from ovsdbapp import exceptions as ovsdb_exceptions
from ovsdbapp.backend.ovs_idl import command as ovsdb_command
from ovsdbapp.backend.ovs_idl import connection, idlutils

from apps.network.drivers.base import (
    EXTERNAL,
    HAVIP,
    LISTENER,
    PORT,
    ROUTER,
    SECURITY_GROUP,
    SWITCH,
    NetworkDriver,
    ExternalNetworkSpec,
    NetworkError,
    PortForward,
    PortSpec,
    RouterSpec,
    Rule,
    SecurityGroupSpec,
    SwitchSpec,
    Unavailable,
)

OWNER, KIND, ID, TENANT, RULE, IP_VERSION, DEVICE = (
    "portal:owner", "portal:kind", "portal:id", "portal:tenant", "portal:rule", "portal:ip_version", "portal:device")
NAT_ID, FORWARD_ID, LIMIT_ID = "portal:nat", "portal:forward", "portal:limit"
DROP_GROUP = "portal_drop"
# Below the rules: ports with port security drop the IP traffic no rule allows (OVN lets
# ARP and IPv6 neighbour discovery through on its own).
DROP_PRIORITY, ALLOW_PRIORITY = 1001, 1002
DHCP_LEASE_SECONDS = 43200
QOS_PRIORITY = 2000
_ANYWHERE = {"0.0.0.0/0", "::/0"}
_TABLES = {ROUTER: "Logical_Router", SWITCH: "Logical_Switch", PORT: "Logical_Switch_Port",
           SECURITY_GROUP: "Port_Group", EXTERNAL: "Logical_Switch", HAVIP: "Logical_Switch_Port",
           LISTENER: "Load_Balancer"}


class _SetColumns(ovsdb_command.BaseCommand):
    """Set columns to exactly these values (ovsdbapp's db_set merges map columns)."""

    def __init__(self, api, table, record, columns: dict):
        super().__init__(api)
        self.table, self.record, self.columns = table, record, columns

    def run_idl(self, txn):
        row = self.api.lookup(self.table, self.record)
        for column, value in self.columns.items():
            setattr(row, column, value)


def _normal(value):
    """A column's value in a comparable form: rows as their uuids, lists as sorted strings."""
    if isinstance(value, (list, tuple, set)):
        return sorted(str(getattr(v, "uuid", v)) for v in value)
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return value


def _ovn_set(values) -> str:
    """OVN's syntax for a set inside an option: `{a, b}`."""
    return "{" + ", ".join(values) + "}"


def _same_nat(row, nat) -> bool:
    """ovsdbapp writes an IPv6 logical address as ADDR/128: compare addresses, not spellings."""
    return (row.type, row.external_ip, ip_network(row.logical_ip, strict=False)) == (
        nat.type, nat.external_ip, ip_network(nat.logical_ip, strict=False))


def rule_match(rule: Rule, port_group: str) -> str:
    """An ACL match for a rule: ingress rules match what is sent to the group's ports, egress
    rules what they send."""
    ip = "ip4" if rule.ethertype == "IPv4" else "ip6"
    if rule.direction == "ingress":
        parts, remote = [f"outport == @{port_group}", ip], f"{ip}.src"
    else:
        parts, remote = [f"inport == @{port_group}", ip], f"{ip}.dst"
    if rule.remote_group:
        parts.append(f"{remote} == ${rule.remote_group}_{ip}")
    elif rule.remote_prefix and rule.remote_prefix not in _ANYWHERE:
        parts.append(f"{remote} == {rule.remote_prefix}")
    if rule.protocol in ("tcp", "udp"):
        parts.append(rule.protocol)
        low, high = rule.port_min, rule.port_max
        if low is not None and high is not None and (low, high) != (1, 65535):
            parts.append(f"{rule.protocol}.dst == {low}" if low == high
                         else f"{rule.protocol}.dst >= {low} && {rule.protocol}.dst <= {high}")
    elif rule.protocol == "icmp":
        icmp = "icmp4" if ip == "ip4" else "icmp6"
        parts.append(icmp)
        if rule.port_min is not None:
            parts.append(f"{icmp}.type == {rule.port_min}")
        if rule.port_max is not None:
            parts.append(f"{icmp}.code == {rule.port_max}")
    return " && ".join(parts)


def _acl(rule: Rule, port_group: str) -> tuple[str, int, str, str]:
    direction = "to-lport" if rule.direction == "ingress" else "from-lport"
    return direction, ALLOW_PRIORITY, rule_match(rule, port_group), "allow-related"


_BASELINE = {
    "drop-from": ("from-lport", DROP_PRIORITY, f"inport == @{DROP_GROUP} && ip", "drop"),
    "drop-to": ("to-lport", DROP_PRIORITY, f"outport == @{DROP_GROUP} && ip", "drop"),
    # OVN answers DHCP after the ACL stage, so the requests must get through the drop.
    "dhcp4": ("from-lport", ALLOW_PRIORITY, f"inport == @{DROP_GROUP} && ip4 && udp.src == 68 && udp.dst == 67",
              "allow"),
    "dhcp6": ("from-lport", ALLOW_PRIORITY, f"inport == @{DROP_GROUP} && ip6 && udp.src == 546 && udp.dst == 547",
              "allow"),
}


class OvnDriver(NetworkDriver):
    def __init__(self, connection_string: str, *, owner: str = "cloudportal", timeout: int = 10,
                 private_key: str = "", certificate: str = "", ca_cert: str = "", sb_connection: str = ""):
        self.connection_string = connection_string
        self.sb_connection = sb_connection
        self._sb = None
        self.owner = owner
        self.timeout = timeout
        self.ssl = (private_key, certificate, ca_cert)
        self._api = None
        self._pid = None
        self._lock = threading.Lock()
        self._dhcp_index: dict[str, dict[str, object]] = {}
        self._members: dict[str, set] = {}
        self._members_seqno = None

    # --- connection -----------------------------------------------------------------------

    @property
    def api(self):
        with self._lock:
            if self._api is None or self._pid != os.getpid():
                self._api, self._pid = self._connect(), os.getpid()
            return self._api

    def _connect(self):
        from ovs import stream
        from ovsdbapp.schema.ovn_northbound import impl_idl

        key, cert, ca = self.ssl
        if key:
            stream.Stream.ssl_set_private_key_file(key)
            stream.Stream.ssl_set_certificate_file(cert)
            stream.Stream.ssl_set_ca_cert_file(ca)
        # ovsdbapp keeps the connection on the API class: a class of our own per connection
        # keeps drivers (and a forked worker's new connection) apart.
        api_class = type("PortalNbApi", (impl_idl.OvnNbApiIdlImpl,), {"_ovsdb_connection": None})
        try:
            idl = connection.OvsdbIdl.from_server(self.connection_string, "OVN_Northbound")
            return api_class(connection.Connection(idl, timeout=self.timeout))
        except Exception as exc:  # ovs raises bare Exceptions for unreachable servers
            raise Unavailable(f"OVN northbound {self.connection_string} does not answer: {exc}") from exc

    def _southbound(self):
        """Read-only southbound view of the health checks' results (Service_Monitor), or None."""
        from ovsdbapp.schema.ovn_southbound import impl_idl as sb_idl

        if not self.sb_connection:
            return None
        with self._lock:
            if self._sb is None or self._pid != os.getpid():
                api_class = type("PortalSbApi", (sb_idl.OvnSbApiIdlImpl,), {"_ovsdb_connection": None})
                try:
                    idl = connection.OvsdbIdl.from_server(self.sb_connection, "OVN_Southbound",
                                                          helper_tables=["Service_Monitor"])
                    self._sb = api_class(connection.Connection(idl, timeout=self.timeout))
                except Exception as exc:  # as for the northbound: bare Exceptions when unreachable
                    raise Unavailable(f"OVN southbound {self.sb_connection} does not answer: {exc}") from exc
            return self._sb

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                for api in (self._api, self._sb):
                    if api is not None:
                        api.ovsdb_connection.stop()
            self._api = self._sb = None

    def _commit(self, commands: list) -> None:
        if not commands:
            return
        try:
            with self.api.transaction(check_error=True) as txn:
                for command in commands:
                    txn.add(command)
        except ovsdb_exceptions.TimeoutException as exc:
            raise Unavailable(f"OVN northbound timed out: {exc}") from exc
        except (RuntimeError, idlutils.RowNotFound) as exc:
            raise NetworkError(f"OVN northbound refused the change: {exc}") from exc

    # --- reads from the local cache --------------------------------------------------------

    def _row(self, table: str, name: str):
        return self.api.lookup(table, name, default=None)

    def _rows(self, table: str) -> list:
        api = self.api
        with api.ovsdb_connection.lock:
            return list(api.tables[table].rows.values())

    def _ours(self, row, kind: str) -> bool:
        ids = row.external_ids
        return ids.get(OWNER) == self.owner and ids.get(KIND) == kind

    def _ids(self, kind: str, public_id: str, tenant: str, **extra: str) -> dict[str, str]:
        return {OWNER: self.owner, KIND: kind, ID: public_id, TENANT: tenant, **extra}

    def _sync(self, table: str, row, wanted: dict, label: str, commands: list) -> list[str]:
        """Commands that make `row`'s columns equal `wanted`, and the names of those that differ."""
        changed = [column for column, value in wanted.items() if _normal(getattr(row, column)) != _normal(value)]
        if changed:
            commands.append(_SetColumns(self.api, table, row.uuid, {c: wanted[c] for c in changed}))
        return [f"{label}: {column} differed" for column in changed]

    # --- routers (VPCs) -------------------------------------------------------------------

    def ensure_router(self, spec: RouterSpec) -> list[str]:
        ids = self._ids(ROUTER, spec.name, spec.tenant)
        row = self._row("Logical_Router", spec.name)
        commands: list = []
        if row is None:
            router = self.api.lr_add(spec.name, may_exist=True, external_ids=ids)
            commands.append(router)
            changes = [f"router {spec.name}: created"]
            nats, balancers = {}, {}
        else:
            router = spec.name
            changes = self._sync("Logical_Router", row, {"external_ids": ids}, f"router {spec.name}", commands)
            nats = {n.external_ids.get(NAT_ID): n for n in row.nat}
            balancers = {lb.external_ids.get(FORWARD_ID): lb for lb in row.load_balancer}
        changes += self._ensure_gateway(spec, router, row, commands)
        changes += self._ensure_nat(spec, router, nats, commands, quiet=row is None)
        changes += self._ensure_forwards(spec, router, balancers, commands, quiet=row is None)
        changes += self._ensure_limits(spec, commands)
        self._commit(commands)
        return changes

    def _ensure_gateway(self, spec: RouterSpec, router, row, commands: list) -> list[str]:
        api, label, changes = self.api, f"router {spec.name} gateway", []
        port = self._row("Logical_Router_Port", spec.gateway_port)
        peer_name = f"rp-gw-{spec.name}"
        peer = self._row("Logical_Switch_Port", peer_name)
        routes = [r for r in (row.static_routes if row is not None else []) if r.external_ids.get(ID) == spec.name]
        gw = spec.gateway
        if gw is None:
            if port is not None:
                commands.append(api.lrp_del(spec.gateway_port, if_exists=True))
                changes.append(f"{label}: removed")
            if peer is not None:
                commands.append(api.lsp_del(peer_name, if_exists=True))
            commands += [api.db_remove("Logical_Router", spec.name, "static_routes", r.uuid) for r in routes]
            return changes
        ids = self._ids(ROUTER, spec.name, spec.tenant)
        columns = {"mac": gw.mac, "networks": list(gw.addresses), "external_ids": ids}
        chassis = {(name, len(gw.chassis) - i) for i, name in enumerate(gw.chassis)}
        if port is None:
            commands.append(api.lrp_add(router, spec.gateway_port, gw.mac, list(gw.addresses), may_exist=True,
                                        external_ids=ids))
            changes.append(f"{label}: created")
            current_chassis: set = set()
        else:
            changes += self._sync("Logical_Router_Port", port, columns, label, commands)
            current_chassis = {(c.chassis_name, c.priority) for c in port.gateway_chassis}
        if chassis != current_chassis:
            if port is not None:
                commands.append(_SetColumns(api, "Logical_Router_Port", spec.gateway_port, {"gateway_chassis": []}))
                changes.append(f"{label}: chassis differed")
            commands += [api.lrp_set_gateway_chassis(spec.gateway_port, name, priority) for name, priority in chassis]
        peer_columns = {"type": "router", "addresses": ["router"], "options": {"router-port": spec.gateway_port},
                        "external_ids": ids}
        if peer is None:
            commands.append(api.lsp_add(gw.network, peer_name, may_exist=True, **peer_columns))
            if port is not None:
                changes.append(f"{label}: external switch port missing")
        else:
            changes += self._sync("Logical_Switch_Port", peer, peer_columns, f"{label} external port", commands)
        defaults = sorted(("::/0" if ":" in hop else "0.0.0.0/0", hop) for hop in gw.nexthops)
        if sorted((r.ip_prefix, r.nexthop) for r in routes) != defaults:
            commands += [api.db_remove("Logical_Router", spec.name, "static_routes", r.uuid) for r in routes]
            for prefix, hop in defaults:
                route = api.lr_route_add(router, prefix, hop, may_exist=False)
                commands += [route, _SetColumns(api, "Logical_Router_Static_Route", route,
                                                {"external_ids": {OWNER: self.owner, ID: spec.name}})]
            if port is not None:
                changes.append(f"{label}: default routes differed")
        return changes

    def _ensure_nat(self, spec: RouterSpec, router, current: dict, commands: list, *, quiet: bool) -> list[str]:
        api, changes = self.api, []
        wanted = {n.id: n for n in spec.nats}
        for key, row in current.items():
            nat = wanted.get(key)
            if nat is None or not _same_nat(row, nat):
                commands.append(api.db_remove("Logical_Router", spec.name, "nat", row.uuid))
                changes.append(f"router {spec.name}: NAT {key} " + ("removed" if nat is None else "differed"))
        for key, nat in wanted.items():
            row = current.get(key)
            if row is None or not _same_nat(row, nat):
                add = api.lr_nat_add(router, nat.type, nat.external_ip, nat.logical_ip)
                commands += [add, _SetColumns(api, "NAT", add, {"external_ids": {OWNER: self.owner, NAT_ID: key}})]
                if row is None and not quiet:
                    changes.append(f"router {spec.name}: NAT {key} missing")
        return changes

    def _ensure_forwards(self, spec: RouterSpec, router, current: dict, commands: list, *,
                         quiet: bool) -> list[str]:
        """A port forward is a load balancer with one VIP on the router (as Neutron does)."""
        api, changes = self.api, []
        wanted = {f.id: f for f in spec.forwards}

        def vips(forward: PortForward) -> dict[str, str]:
            return {f"{forward.external_ip}:{forward.external_port}": f"{forward.internal_ip}:{forward.internal_port}"}

        for key, lb in current.items():
            forward = wanted.get(key)
            if forward is None or (dict(lb.vips), lb.protocol) != (vips(forward), [forward.protocol]):
                commands.append(api.lb_del(lb.uuid, if_exists=True))
                changes.append(f"router {spec.name}: forward {key} " + ("removed" if forward is None else "differed"))
        for key, forward in wanted.items():
            lb = current.get(key)
            if lb is None or (dict(lb.vips), lb.protocol) != (vips(forward), [forward.protocol]):
                ids = {OWNER: self.owner, FORWARD_ID: key, ID: spec.name}
                balancer = api.db_create("Load_Balancer", name=f"pf-{key}", vips=vips(forward),
                                         protocol=forward.protocol, external_ids=ids)
                commands += [balancer, api.db_add("Logical_Router", router, "load_balancer", balancer)]
                if lb is None and not quiet:
                    changes.append(f"router {spec.name}: forward {key} missing")
        return changes

    def _qos_rows(self, router: str) -> list:
        return [q for q in self._rows("QoS") if q.external_ids.get(ID) == router
                and q.external_ids.get(OWNER) == self.owner]

    def _ensure_limits(self, spec: RouterSpec, commands: list) -> list[str]:
        """Each external address's bandwidth, metered where the router meets the external
        switch: what leaves through the gateway port and what enters through it."""
        api, changes = self.api, []
        wanted: dict[tuple[str, str], tuple[str, str, int]] = {}
        if spec.gateway is not None:
            peer = f"rp-gw-{spec.name}"
            for limit in spec.limits:
                ip = "ip6" if ":" in limit.address else "ip4"
                wanted[(limit.id, "from-lport")] = (f'inport == "{peer}" && {ip}.src == {limit.address}',
                                                     spec.gateway.network, limit.kbps)
                wanted[(limit.id, "to-lport")] = (f'outport == "{peer}" && {ip}.dst == {limit.address}',
                                                   spec.gateway.network, limit.kbps)
        current = {(q.external_ids.get(LIMIT_ID), q.direction): q for q in self._qos_rows(spec.name)}
        switches = {q.uuid: s.name for s in self._rows("Logical_Switch") for q in s.qos_rules}
        for key, row in current.items():
            want = wanted.get(key)
            if want is None or (row.match, switches.get(row.uuid), dict(row.bandwidth).get("rate")) != want:
                commands.append(api.db_remove("Logical_Switch", switches[row.uuid], "qos_rules", row.uuid))
                changes.append(f"router {spec.name}: rate limit {key[0]} {key[1]} "
                               + ("removed" if want is None else "differed"))
        for (limit_id, direction), (match, switch, kbps) in wanted.items():
            row = current.get((limit_id, direction))
            if row is None or (row.match, switches.get(row.uuid), dict(row.bandwidth).get("rate")) != (
                    match, switch, kbps):
                ids = {OWNER: self.owner, ID: spec.name, LIMIT_ID: limit_id}
                commands.append(api.qos_add(switch, direction, QOS_PRIORITY, match, rate=kbps, burst=kbps,
                                            external_ids=ids))
        return changes

    def delete_router(self, name: str) -> None:
        api = self.api
        commands = [api.lsp_del(f"rp-gw-{name}", if_exists=True)]
        commands += [api.lb_del(lb.uuid, if_exists=True) for lb in self._rows("Load_Balancer")
                     if lb.external_ids.get(ID) == name and lb.external_ids.get(OWNER) == self.owner]
        switches = {q.uuid: s.name for s in self._rows("Logical_Switch") for q in s.qos_rules}
        commands += [api.db_remove("Logical_Switch", switches[q.uuid], "qos_rules", q.uuid)
                     for q in self._qos_rows(name) if q.uuid in switches]
        commands.append(api.lr_del(name, if_exists=True))
        self._commit(commands)

    # --- external networks ------------------------------------------------------------------

    def ensure_external_network(self, spec: ExternalNetworkSpec) -> list[str]:
        api, commands, changes = self.api, [], []
        ids = {OWNER: self.owner, KIND: EXTERNAL, ID: spec.public_id}
        switch = self._row("Logical_Switch", spec.name)
        if switch is None:
            commands.append(api.ls_add(spec.name, may_exist=True, external_ids=ids))
            changes.append(f"external network {spec.name}: created")
        else:
            changes += self._sync("Logical_Switch", switch, {"external_ids": ids}, f"external {spec.name}", commands)
        localnet = f"ln-{spec.name}"
        columns = {"type": "localnet", "addresses": ["unknown"], "options": {"network_name": spec.physical_network},
                   "tag": [spec.vlan] if spec.vlan else [], "external_ids": ids}
        row = self._row("Logical_Switch_Port", localnet)
        if row is None:
            # lsp_add's own `tag` is for container ports (with a parent); the VLAN is set after.
            add = api.lsp_add(spec.name if switch is not None else commands[0], localnet, may_exist=True,
                              **{k: v for k, v in columns.items() if k != "tag"})
            commands += [add, _SetColumns(api, "Logical_Switch_Port", add, {"tag": columns["tag"]})]
        else:
            changes += self._sync("Logical_Switch_Port", row, columns, f"external {spec.name} localnet", commands)
        self._commit(commands)
        return changes

    def delete_external_network(self, name: str) -> None:
        self._commit([self.api.ls_del(name, if_exists=True)])

    # --- switches (subnets) ---------------------------------------------------------------

    def _dhcp_rows(self, switch: str, *, fresh: bool = False) -> dict[str, object]:
        """A switch's DHCP options by IP version. DHCP_Options has no index on external_ids, so
        a map of every switch's rows is kept and rebuilt (one scan) when it may be stale: a
        switch it does not know, a row that is gone, or `fresh` (the switch's own writers)."""
        index = self._dhcp_index
        table = self.api.tables["DHCP_Options"].rows
        known = index.get(switch)
        if fresh or known is None or any(uuid not in table for uuid in known.values()):
            index = self._dhcp_index = {name: {} for name in self._names("Logical_Switch")}
            for row in self._rows("DHCP_Options"):
                ids = row.external_ids
                if ids.get(OWNER) == self.owner and ids.get(ID):
                    index.setdefault(ids[ID], {})[ids.get(IP_VERSION)] = row.uuid
            known = index.get(switch, {})
        return {version: table[uuid] for version, uuid in known.items() if uuid in table}

    def _group_members(self) -> dict[str, set]:
        """Port group name → its ports' uuids. Reading a group's ports builds a row object per
        member, so the map is kept while the local copy of the database has not changed
        (reconciling n ports would read every group n times otherwise)."""
        idl = self.api.idl
        if self._members_seqno != idl.change_seqno:
            self._members = {g.name: {p.uuid for p in g.ports} for g in self._rows("Port_Group")}
            self._members_seqno = idl.change_seqno
        return self._members

    def _names(self, table: str) -> list[str]:
        return [row.name for row in self._rows(table)]

    @staticmethod
    def _dhcp_options(spec: SwitchSpec) -> dict[str, dict[str, str]]:
        """What OVN's DHCP answers with, per IP version (`4`, `6`)."""
        wanted: dict[str, dict[str, str]] = {}
        v4_dns = [d for d in spec.dns if ":" not in d]
        v6_dns = [d for d in spec.dns if ":" in d]
        options = {"server_id": spec.gateway, "server_mac": spec.router_mac, "router": spec.gateway,
                   "lease_time": str(DHCP_LEASE_SECONDS), "mtu": str(spec.mtu)}
        if v4_dns:
            options["dns_server"] = _ovn_set(v4_dns)
        if spec.routes:
            # With option 121 clients ignore `router`, so the default route goes in too.
            routes = [f"{r.destination},{r.nexthop}" for r in spec.routes] + [f"0.0.0.0/0,{spec.gateway}"]
            options["classless_static_route"] = _ovn_set(routes)
        wanted["4"] = options
        if spec.ipv6_cidr:
            wanted["6"] = {"server_id": spec.router_mac, **({"dns_server": _ovn_set(v6_dns)} if v6_dns else {})}
        return wanted

    def ensure_switch(self, spec: SwitchSpec) -> list[str]:
        api, commands, changes = self.api, [], []
        ids = self._ids(SWITCH, spec.name, spec.tenant)
        label = f"switch {spec.name}"

        switch = self._row("Logical_Switch", spec.name)
        if switch is None:
            commands.append(api.ls_add(spec.name, may_exist=True, external_ids=ids))
            changes.append(f"{label}: created")
        else:
            changes += self._sync("Logical_Switch", switch, {"external_ids": ids}, label, commands)

        networks = [f"{spec.gateway}/{ip_network(spec.cidr).prefixlen}"]
        ra = {}
        if spec.ipv6_cidr:
            networks.append(f"{spec.ipv6_gateway}/{ip_network(spec.ipv6_cidr).prefixlen}")
            ra = {"address_mode": "dhcpv6_stateful", "send_periodic": "true", "mtu": str(spec.mtu)}
        router_port = self._row("Logical_Router_Port", spec.router_port)
        lrp_columns = {"mac": spec.router_mac, "networks": networks, "ipv6_ra_configs": ra, "external_ids": ids}
        if router_port is None:
            commands.append(api.lrp_add(spec.router, spec.router_port, spec.router_mac, networks, may_exist=True,
                                        ipv6_ra_configs=ra, external_ids=ids))
            changes.append(f"{label}: router port created")
        else:
            changes += self._sync("Logical_Router_Port", router_port, lrp_columns, f"{label} router port", commands)

        peer_name = f"rp-{spec.name}"
        peer = self._row("Logical_Switch_Port", peer_name)
        peer_columns = {"type": "router", "addresses": ["router"], "options": {"router-port": spec.router_port},
                        "external_ids": ids}
        if peer is None:
            commands.append(api.lsp_add(spec.name if switch is not None else commands[0], peer_name,
                                        may_exist=True, **peer_columns))
            changes.append(f"{label}: router-side switch port created")
        else:
            changes += self._sync("Logical_Switch_Port", peer, peer_columns, f"{label} router-side port", commands)

        changes += self._ensure_dhcp(spec, commands)
        self._commit(commands)
        self._dhcp_index.pop(spec.name, None)  # its rows may be new: found again on the next lookup
        return changes

    def _ensure_dhcp(self, spec: SwitchSpec, commands: list) -> list[str]:
        api, changes = self.api, []
        wanted = self._dhcp_options(spec) if spec.dhcp else {}
        current = self._dhcp_rows(spec.name, fresh=True)
        cidrs = {"4": spec.cidr, "6": spec.ipv6_cidr}
        for version, row in current.items():
            if version not in wanted:
                commands.append(api.dhcp_options_del(row.uuid))
                changes.append(f"switch {spec.name}: DHCPv{version} options removed")
        for version, options in wanted.items():
            ids = self._ids(SWITCH, spec.name, spec.tenant, **{IP_VERSION: version})
            row = current.get(version)
            if row is None:
                add = api.dhcp_options_add(cidrs[version], **ids)
                commands += [add, _SetColumns(api, "DHCP_Options", add, {"options": options})]
                changes.append(f"switch {spec.name}: DHCPv{version} options created")
            else:
                columns = {"cidr": str(ip_network(cidrs[version])), "options": options, "external_ids": ids}
                changes += self._sync("DHCP_Options", row, columns, f"switch {spec.name} DHCPv{version}", commands)
        return changes

    def delete_switch(self, name: str) -> None:
        api = self.api
        commands = [api.lrp_del(f"lrp-{name}", if_exists=True), api.ls_del(name, if_exists=True)]
        commands += [api.dhcp_options_del(row.uuid) for row in self._dhcp_rows(name, fresh=True).values()]
        self._commit(commands)
        self._dhcp_index.pop(name, None)

    # --- security groups --------------------------------------------------------------------

    def _ensure_port_group(self, name: str, ids: dict, acls: dict[str, tuple], commands: list) -> list[str]:
        """The port group `name` with exactly these ACLs (by key: direction, priority, match,
        action); other ACLs on it are removed."""
        api, changes = self.api, []
        group = self._row("Port_Group", name)
        created = group is None
        if created:
            group = api.pg_add(name, may_exist=True, external_ids=ids, acls=[], ports=[])
            commands.append(group)
            changes.append(f"port group {name}: created")
            current = {}
        else:
            changes += self._sync("Port_Group", group, {"external_ids": ids}, f"port group {name}", commands)
            current = {acl.external_ids.get(RULE): acl for acl in group.acls}
        for key, acl in current.items():
            if key not in acls or (acl.direction, acl.priority, acl.match, acl.action) != acls[key]:
                commands.append(api.db_remove("Port_Group", name, "acls", acl.uuid))
                changes.append(f"port group {name}: ACL {key} removed" if key not in acls
                               else f"port group {name}: ACL {key} differed")
        for key, (direction, priority, match, action) in acls.items():
            acl = current.get(key)
            if acl is None or (acl.direction, acl.priority, acl.match, acl.action) != acls[key]:
                commands.append(api.pg_acl_add(group if isinstance(group, ovsdb_command.BaseCommand) else name,
                                               direction, priority, match, action,
                                               **{OWNER: self.owner, RULE: key}))
                # A new group's ACLs are part of "created"; an existing group's missing ones
                # are drift, also when it has lost all of them.
                if acl is None and not created:
                    changes.append(f"port group {name}: ACL {key} missing")
        return changes

    def ensure_baseline(self) -> list[str]:
        commands: list = []
        changes = self._ensure_port_group(DROP_GROUP, {OWNER: self.owner, KIND: "baseline"}, _BASELINE, commands)
        self._commit(commands)
        return changes

    def ensure_security_group(self, spec: SecurityGroupSpec) -> list[str]:
        commands: list = []
        acls = {rule.id: _acl(rule, spec.name) for rule in spec.rules}
        changes = self._ensure_port_group(spec.name, self._ids(SECURITY_GROUP, spec.public_id, spec.tenant), acls,
                                          commands)
        self._commit(commands)
        return changes

    def delete_security_group(self, name: str) -> None:
        self._commit([self.api.pg_del(name, if_exists=True)])

    # --- ports ------------------------------------------------------------------------------

    def ensure_port(self, spec: PortSpec) -> list[str]:
        api, commands, changes = self.api, [], []
        label = f"port {spec.public_id}"
        if spec.port_security and self._row("Port_Group", DROP_GROUP) is None:
            self.ensure_baseline()
        addresses = " ".join(spec.addresses)
        security: list[str] = []
        if spec.port_security:
            same_mac = [p.ip for p in spec.allowed_pairs if not p.mac or p.mac == spec.mac]
            security = [" ".join([spec.mac, addresses, *same_mac])]
            security += [f"{p.mac} {p.ip}" for p in spec.allowed_pairs if p.mac and p.mac != spec.mac]
        dhcp = self._dhcp_rows(spec.switch)
        has_v4 = any(":" not in a for a in spec.addresses)
        has_v6 = any(":" in a for a in spec.addresses)
        columns = {
            "addresses": [f"{spec.mac} {addresses}"],
            "port_security": security,
            "dhcpv4_options": [dhcp["4"].uuid] if "4" in dhcp and has_v4 else [],
            "dhcpv6_options": [dhcp["6"].uuid] if "6" in dhcp and has_v6 else [],
            "external_ids": self._ids(PORT, spec.public_id, spec.tenant, **{DEVICE: spec.device}),
        }
        row = self._row("Logical_Switch_Port", spec.name)
        if row is None:
            port = api.lsp_add(spec.switch, spec.name, may_exist=True, addresses=columns["addresses"],
                               port_security=security, external_ids=columns["external_ids"])
            commands += [port, _SetColumns(api, "Logical_Switch_Port", port,
                                           {k: columns[k] for k in ("dhcpv4_options", "dhcpv6_options")})]
            changes.append(f"{label}: created")
            member_of: set[str] = set()
        else:
            port = spec.name
            changes += self._sync("Logical_Switch_Port", row, columns, label, commands)
            member_of = {name for name, members in self._group_members().items() if row.uuid in members}
        groups = set(spec.security_groups) | ({DROP_GROUP} if spec.port_security else set())
        for name in sorted(groups - member_of):
            commands.append(api.pg_add_ports(name, port))
            if row is not None:
                changes.append(f"{label}: missing from port group {name}")
        for name in sorted(member_of - groups):
            commands.append(api.pg_del_ports(name, spec.name, if_exists=True))
            changes.append(f"{label}: removed from port group {name}")
        self._commit(commands)
        return changes

    def delete_port(self, name: str) -> None:
        self._commit([self.api.lsp_del(name, if_exists=True)])

    def ensure_havip(self, spec: HaVipSpec) -> list[str]:
        """No fixed MAC: the owner answers for the address with its own."""
        columns = {"type": "virtual", "addresses": [],
                   "options": {"virtual-ip": spec.address, "virtual-parents": ",".join(spec.parents)},
                   "external_ids": self._ids(HAVIP, spec.name, spec.tenant)}
        row = self._row("Logical_Switch_Port", spec.name)
        commands: list = []
        if row is None:
            commands.append(self.api.lsp_add(spec.switch, spec.name, may_exist=True, **columns))
            changes = [f"HA VIP {spec.name}: created"]
        else:
            changes = self._sync("Logical_Switch_Port", row, columns, f"HA VIP {spec.name}", commands)
        self._commit(commands)
        return changes

    def delete_havip(self, name: str) -> None:
        self._commit([self.api.lsp_del(name, if_exists=True)])

    # --- load balancers -----------------------------------------------------------------------

    def ensure_listener(self, spec: ListenerSpec) -> list[str]:
        """One Load_Balancer per listener: its VIPs, backends, affinity, health checks (one per
        VIP, probing each backend from `probe_source` through its logical port), on the router and
        the VPC's switches (so clients on the backends' own subnets reach it too)."""
        api, commands, changes, label = self.api, [], [], f"listener {spec.public_id}"
        backends = ",".join(f"{b.address}:{b.port}" for b in spec.backends)
        columns = {
            "vips": {f"{address}:{spec.port}": backends for address in spec.addresses},
            "protocol": [spec.protocol],
            "selection_fields": ["ip_src"] if spec.source_ip_affinity else [],
            "ip_port_mappings": {b.address: f"{b.port_name}:{b.probe_source}" for b in spec.backends
                                 if spec.health and b.port_name},
            "external_ids": self._ids(LISTENER, spec.public_id, spec.tenant),
        }
        row = self._row("Load_Balancer", spec.name)
        if row is None:
            balancer = api.db_create("Load_Balancer", name=spec.name, **columns)
            commands.append(balancer)
            changes.append(f"{label}: created")
            checks, routers, switches = {}, set(), set()
        else:
            balancer = row.uuid
            changes += self._sync("Load_Balancer", row, columns, label, commands)
            checks = {check.vip: check for check in row.health_check}
            routers = {r.name for r in self._rows("Logical_Router") if row in r.load_balancer}
            switches = {s.name for s in self._rows("Logical_Switch") if row in s.load_balancer}
        options = {}
        if spec.health:
            h = spec.health
            options = {"interval": str(h.interval), "timeout": str(h.timeout), "success_count": str(h.success_count),
                       "failure_count": str(h.failure_count)}
        wanted = {vip: options for vip in columns["vips"]} if spec.health else {}
        for vip, check in checks.items():
            if wanted.get(vip) != dict(check.options):
                commands.append(api.db_remove("Load_Balancer", balancer, "health_check", check.uuid))
                changes.append(f"{label}: health check of {vip} " + ("removed" if vip not in wanted else "differed"))
        for vip, opts in wanted.items():
            if vip not in checks or dict(checks[vip].options) != opts:
                check = api.db_create("Load_Balancer_Health_Check", vip=vip, options=opts,
                                      external_ids={OWNER: self.owner, ID: spec.public_id})
                commands += [check, api.db_add("Load_Balancer", balancer, "health_check", check)]
        for table, current, want in (("Logical_Router", routers, {spec.router}),
                                     ("Logical_Switch", switches, set(spec.switches))):
            commands += [api.db_add(table, name, "load_balancer", balancer) for name in sorted(want - current)]
            commands += [api.db_remove(table, name, "load_balancer", balancer) for name in sorted(current - want)]
            if row is not None and want != current:
                changes.append(f"{label}: attachments differed")
        self._commit(commands)
        return changes

    def delete_listener(self, name: str) -> None:
        row = self._row("Load_Balancer", name)
        if row is not None:
            self._commit([self.api.lb_del(row.uuid, if_exists=True)])

    def backend_health(self, name: str) -> dict[tuple[str, int], str]:
        row = self._row("Load_Balancer", name)
        southbound = self._southbound()
        if row is None or southbound is None or not row.health_check:
            return {}
        protocol = row.protocol[0] if row.protocol else "tcp"
        with southbound.ovsdb_connection.lock:
            monitors = list(southbound.tables["Service_Monitor"].rows.values())
        found = {(m.ip, m.port): m.status[0] for m in monitors
                 if m.status and (m.protocol[0] if m.protocol else "tcp") == protocol}
        wanted = {tuple(b.rsplit(":", 1)) for vip in row.vips.values() for b in vip.split(",") if b}
        return {(ip, int(port)): found[(ip, int(port))] for ip, port in wanted if (ip, int(port)) in found}

    def port_is_up(self, name: str) -> bool | None:
        row = self._row("Logical_Switch_Port", name)
        if row is None:
            return None
        return bool(row.up and row.up[0])

    def inventory(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for kind, table in _TABLES.items():
            found[kind] = {row.name for row in self._rows(table) if self._ours(row, kind)}
        return found
