"""The network driver interface: the software-defined network's control plane (OVN's
northbound database in production).

Plain data in, plain data out, no Django. Each `ensure_*` makes the backend match a spec and
says what it had to change (nothing when it already matched: that is how a reconcile reports
drift); each `delete_*` removes what a spec made and does nothing when it is already gone.
Every backend object carries the owner's public id, so `inventory` can list the portal's
objects and leave everything else alone."""

from __future__ import annotations

import abc
from dataclasses import dataclass

# Kinds of backend objects, as `inventory` reports them.
ROUTER, SWITCH, PORT, SECURITY_GROUP, EXTERNAL, HAVIP, LISTENER = (
    "router", "switch", "port", "security_group", "external", "havip", "listener")


class NetworkError(Exception):
    """Base of driver failures; the message is safe to show to operators."""


class Unavailable(NetworkError):
    """The control plane did not answer (retry later)."""


@dataclass(frozen=True)
class ExternalNetworkSpec:
    """A provider network: a switch bridged to `physical_network` (VLAN `vlan`, 0: flat)."""

    name: str
    public_id: str
    physical_network: str
    vlan: int = 0


@dataclass(frozen=True)
class Gateway:
    """A router's leg on an external network: `addresses` (ADDR/PREFIX, IPv4 and maybe IPv6)
    and a default route per family to the matching `nexthops`, hosted on the gateway chassis
    (most preferred first) where NAT happens."""

    network: str  # the external network's switch
    mac: str
    addresses: tuple[str, ...]
    nexthops: tuple[str, ...]
    chassis: tuple[str, ...] = ()


@dataclass(frozen=True)
class Nat:
    """`snat` (a private CIDR leaves as `external_ip`) or `dnat_and_snat` (one-to-one)."""

    id: str
    type: str
    external_ip: str
    logical_ip: str


@dataclass(frozen=True)
class PortForward:
    id: str
    protocol: str
    external_ip: str
    external_port: int
    internal_ip: str
    internal_port: int


@dataclass(frozen=True)
class RateLimit:
    """Bandwidth of an external address, each way, in kbit/s."""

    id: str
    address: str
    kbps: int


@dataclass(frozen=True)
class RouterSpec:
    """A VPC's router (`name` is the VPC's public id), with its external gateway, NAT rules,
    port forwards and the bandwidth limits of its external addresses when it has a gateway."""

    name: str
    tenant: str
    gateway: Gateway | None = None
    nats: tuple[Nat, ...] = ()
    forwards: tuple[PortForward, ...] = ()
    limits: tuple[RateLimit, ...] = ()

    @property
    def gateway_port(self) -> str:
        return f"lrp-gw-{self.name}"


@dataclass(frozen=True)
class Route:
    destination: str
    nexthop: str


@dataclass(frozen=True)
class SwitchSpec:
    """A subnet: a switch plugged into its VPC's router at the gateway address(es), with DHCP."""

    name: str
    tenant: str
    router: str
    router_mac: str
    cidr: str
    gateway: str
    ipv6_cidr: str = ""
    ipv6_gateway: str = ""
    dhcp: bool = True
    dns: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    mtu: int = 1442

    @property
    def router_port(self) -> str:
        return f"lrp-{self.name}"


@dataclass(frozen=True)
class AddressPair:
    ip: str
    mac: str


@dataclass(frozen=True)
class PortSpec:
    """A port on a switch. `name` is a UUID (hypervisors bind the port by it); `security_groups`
    are the port groups (SecurityGroupSpec.name) it belongs to."""

    name: str
    public_id: str
    tenant: str
    switch: str
    mac: str
    addresses: tuple[str, ...]
    port_security: bool = True
    allowed_pairs: tuple[AddressPair, ...] = ()
    security_groups: tuple[str, ...] = ()
    device: str = ""  # the instance it is plugged into, for people reading the backend


@dataclass(frozen=True)
class HaVipSpec:
    """A virtual port on `switch` for `address`, claimed by whichever parent port (by name)
    announces it."""

    name: str
    tenant: str
    switch: str
    address: str
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Backend:
    """A member: address and port; `port_name` and `probe_source` (an address of its subnet the
    probes come from) when it is health-checked."""

    address: str
    port: int
    port_name: str = ""
    probe_source: str = ""


@dataclass(frozen=True)
class HealthCheck:
    interval: int = 5
    timeout: int = 3
    success_count: int = 2
    failure_count: int = 3


@dataclass(frozen=True)
class ListenerSpec:
    """One listener of a load balancer: connections to any of `addresses` (the VIP, an EIP) on
    `port` spread over `backends`; on the VPC's router and its switches."""

    name: str
    public_id: str
    tenant: str
    protocol: str
    addresses: tuple[str, ...]
    port: int
    backends: tuple[Backend, ...]
    router: str
    switches: tuple[str, ...]
    source_ip_affinity: bool = False
    health: HealthCheck | None = None


@dataclass(frozen=True)
class Rule:
    """One allow rule of a security group. `remote_group` is a port group name; `port_min` /
    `port_max` are a destination port range (tcp/udp) or an ICMP type and code."""

    id: str
    direction: str  # ingress | egress
    ethertype: str  # IPv4 | IPv6
    protocol: str  # tcp | udp | icmp | any
    port_min: int | None = None
    port_max: int | None = None
    remote_prefix: str = ""
    remote_group: str = ""


@dataclass(frozen=True)
class SecurityGroupSpec:
    name: str
    public_id: str
    tenant: str
    rules: tuple[Rule, ...] = ()


class NetworkDriver(abc.ABC):
    @abc.abstractmethod
    def ensure_router(self, spec: RouterSpec) -> list[str]:
        ...

    @abc.abstractmethod
    def delete_router(self, name: str) -> None:
        """The router, its ports, NAT, forwards and the rate limits it owns elsewhere."""

    @abc.abstractmethod
    def ensure_external_network(self, spec: ExternalNetworkSpec) -> list[str]:
        ...

    @abc.abstractmethod
    def delete_external_network(self, name: str) -> None:
        ...

    @abc.abstractmethod
    def ensure_switch(self, spec: SwitchSpec) -> list[str]:
        ...

    @abc.abstractmethod
    def delete_switch(self, name: str) -> None:
        """The switch, its ports, its port on the router and its DHCP options."""

    @abc.abstractmethod
    def ensure_security_group(self, spec: SecurityGroupSpec) -> list[str]:
        ...

    @abc.abstractmethod
    def delete_security_group(self, name: str) -> None:
        ...

    @abc.abstractmethod
    def ensure_port(self, spec: PortSpec) -> list[str]:
        ...

    @abc.abstractmethod
    def delete_port(self, name: str) -> None:
        ...

    @abc.abstractmethod
    def ensure_havip(self, spec: HaVipSpec) -> list[str]:
        ...

    @abc.abstractmethod
    def delete_havip(self, name: str) -> None:
        ...

    @abc.abstractmethod
    def ensure_listener(self, spec: ListenerSpec) -> list[str]:
        ...

    @abc.abstractmethod
    def delete_listener(self, name: str) -> None:
        ...

    def backend_health(self, name: str) -> dict[tuple[str, int], str]:
        """(address, port) → online / offline as the health checks last saw them; empty when
        unknown (no checks, or the control plane does not report them)."""
        return {}

    @abc.abstractmethod
    def port_is_up(self, name: str) -> bool | None:
        """Whether a hypervisor has bound the port (None: the port does not exist)."""

    def ensure_baseline(self) -> list[str]:
        """What every port relies on (e.g. the default-deny group); nothing by default."""
        return []

    @abc.abstractmethod
    def inventory(self) -> dict[str, set[str]]:
        """The names of the portal's objects in the backend, by kind."""
