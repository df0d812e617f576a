"""In-process stand-in for the network control plane, for unit tests: it keeps the specs it was
given, process-wide like the backend it imitates (`state`), checks references the way OVN's
schema does (a switch needs its router, a port its switch and groups) and can be told to fail
(`fail_on`). `reset()` empties it."""

from __future__ import annotations

import threading

from apps.network.drivers.base import (
    EXTERNAL,
    HAVIP,
    LISTENER,
    PORT,
    ROUTER,
    SECURITY_GROUP,
    SWITCH,
    ExternalNetworkSpec,
    HaVipSpec,
    ListenerSpec,
    NetworkDriver,
    NetworkError,
    PortSpec,
    RouterSpec,
    SecurityGroupSpec,
    SwitchSpec,
    Unavailable,
)

state: dict[str, dict[str, object]] = {ROUTER: {}, SWITCH: {}, PORT: {}, SECURITY_GROUP: {}, EXTERNAL: {},
                                       HAVIP: {}, LISTENER: {}}
# Listener name → {(address, port): "online" | "offline"}: what tests make the health checks report.
health: dict[str, dict[tuple[str, int], str]] = {}
# Method names that raise Unavailable until removed (tests of "nothing half-made").
fail_on: set[str] = set()
_lock = threading.Lock()


def reset() -> None:
    with _lock:
        for objects in state.values():
            objects.clear()
        fail_on.clear()
        health.clear()


class FakeNetworkDriver(NetworkDriver):
    def __init__(self, *args, **kwargs):
        pass

    def _put(self, method: str, kind: str, spec) -> list[str]:
        if method in fail_on:
            raise Unavailable(f"fake control plane: {method} fails")
        with _lock:
            previous = state[kind].get(spec.name)
            state[kind][spec.name] = spec
        if previous is None:
            return [f"{kind} {spec.name}: created"]
        return [] if previous == spec else [f"{kind} {spec.name}: differed"]

    def _drop(self, method: str, kind: str, name: str) -> None:
        if method in fail_on:
            raise Unavailable(f"fake control plane: {method} fails")
        with _lock:
            state[kind].pop(name, None)

    def ensure_router(self, spec: RouterSpec) -> list[str]:
        if spec.gateway is not None and spec.gateway.network not in state[EXTERNAL]:
            raise NetworkError(f"no external switch {spec.gateway.network}")
        return self._put("ensure_router", ROUTER, spec)

    def ensure_external_network(self, spec: ExternalNetworkSpec) -> list[str]:
        return self._put("ensure_external_network", EXTERNAL, spec)

    def delete_external_network(self, name: str) -> None:
        self._drop("delete_external_network", EXTERNAL, name)

    def delete_router(self, name: str) -> None:
        self._drop("delete_router", ROUTER, name)

    def ensure_switch(self, spec: SwitchSpec) -> list[str]:
        if spec.router not in state[ROUTER]:
            raise NetworkError(f"no router {spec.router}")
        return self._put("ensure_switch", SWITCH, spec)

    def delete_switch(self, name: str) -> None:
        self._drop("delete_switch", SWITCH, name)
        with _lock:
            for kind in (PORT, HAVIP):
                for port in [p for p in state[kind].values() if p.switch == name]:
                    state[kind].pop(port.name)

    def ensure_security_group(self, spec: SecurityGroupSpec) -> list[str]:
        return self._put("ensure_security_group", SECURITY_GROUP, spec)

    def delete_security_group(self, name: str) -> None:
        self._drop("delete_security_group", SECURITY_GROUP, name)

    def ensure_port(self, spec: PortSpec) -> list[str]:
        if spec.switch not in state[SWITCH]:
            raise NetworkError(f"no switch {spec.switch}")
        missing = [g for g in spec.security_groups if g not in state[SECURITY_GROUP]]
        if missing:
            raise NetworkError(f"no port group {missing[0]}")
        return self._put("ensure_port", PORT, spec)

    def delete_port(self, name: str) -> None:
        self._drop("delete_port", PORT, name)

    def ensure_havip(self, spec: HaVipSpec) -> list[str]:
        missing = [p for p in spec.parents if p not in state[PORT]]
        if spec.switch not in state[SWITCH] or missing:
            raise NetworkError(f"no switch {spec.switch} or parent {missing}")
        return self._put("ensure_havip", HAVIP, spec)

    def delete_havip(self, name: str) -> None:
        self._drop("delete_havip", HAVIP, name)

    def ensure_listener(self, spec: ListenerSpec) -> list[str]:
        missing = [s for s in (spec.router,) if s not in state[ROUTER]] + [
            s for s in spec.switches if s not in state[SWITCH]]
        if missing:
            raise NetworkError(f"no router or switch {missing[0]}")
        return self._put("ensure_listener", LISTENER, spec)

    def delete_listener(self, name: str) -> None:
        self._drop("delete_listener", LISTENER, name)

    def backend_health(self, name: str) -> dict[tuple[str, int], str]:
        return dict(health.get(name, {}))

    def port_is_up(self, name: str) -> bool | None:
        return False if name in state[PORT] else None

    def inventory(self) -> dict[str, set[str]]:
        with _lock:
            return {kind: set(objects) for kind, objects in state.items()}
