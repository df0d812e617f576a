"""The topology picture of a VPC: coordinates for the inline SVG network/_topology.html draws.

The router on top, a bus under it from which the subnets hang as cards, COLUMNS to a row
(further rows hang from a trunk down the left margin, so no line crosses a card), each port a
node on its subnet's bar with its address and the instance it is attached to; below the ports,
the subnet's load balancers (their VIPs) and HA VIPs, as nodes of their own shape."""

from __future__ import annotations

from apps.network.models import VPC, HaVip, LoadBalancer, Port, Subnet

WIDTH, LEFT, COLUMNS = 960, 40, 5
COLUMN = (WIDTH - LEFT) // COLUMNS
ROUTER_W, ROUTER_H, BUS_Y = 260, 58, 92
DROP, HEADER, PORT_H, ROW_GAP = 18, 56, 34, 26


def _short(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _addresses(balancers: list[LoadBalancer], havips: list[HaVip]) -> dict[int, list[dict]]:
    """Subnet id → its load balancers' and HA VIPs' nodes (without coordinates)."""
    by_subnet: dict[int, list[dict]] = {}
    for kind, objects in (("load-balancer", balancers), ("havip", havips)):
        for obj in objects:
            address = obj.vip if kind == "load-balancer" else obj.address
            by_subnet.setdefault(obj.subnet_id, []).append({"kind": kind, "object": obj, "address": address,
                                                            "name": _short(obj.name, 14)})
    return by_subnet


def topology(vpc: VPC, subnets: list[Subnet], ports: list[Port], balancers: list[LoadBalancer],
             havips: list[HaVip]) -> dict:
    """Coordinates of every node and line of the VPC's picture."""
    by_subnet: dict[int, list[Port]] = {}
    for port in ports:
        by_subnet.setdefault(port.subnet_id, []).append(port)
    addresses = _addresses(balancers, havips)
    center, card_w = WIDTH // 2, COLUMN - 16
    lines = [(center, 10 + ROUTER_H, center, BUS_Y)] if subnets else []
    cards, y, bus_y = [], BUS_Y, BUS_Y
    for start in range(0, len(subnets), COLUMNS):
        row, bus_y = subnets[start:start + COLUMNS], y
        # With one row the bus runs from its first to its last card (and under the router);
        # further rows start at the trunk.
        first_x = LEFT // 2 if len(subnets) > COLUMNS else LEFT + 8 + card_w // 2
        last_x = LEFT + 8 + (len(row) - 1) * COLUMN + card_w // 2
        if start == 0:
            first_x, last_x = min(first_x, center), max(last_x, center)
        lines.append((first_x, y, last_x, y))
        height = 0
        for column, subnet in enumerate(row):
            x = LEFT + 8 + column * COLUMN
            top = y + DROP
            nodes = [{"port": p, "x": x + 16, "y": top + HEADER + 16 + i * PORT_H,
                      "address": next((a.address for a in p.addresses.all() if ":" not in a.address), ""),
                      "name": _short(p.name or p.public_id, 20),
                      "instance": _short(p.instance.name, 18) if p.instance_id else ""}
                     for i, p in enumerate(by_subnet.get(subnet.pk, []))]
            vips = [{**node, "x": x + 16, "y": top + HEADER + 16 + (len(nodes) + i) * PORT_H}
                    for i, node in enumerate(addresses.get(subnet.pk, []))]
            card_h = HEADER + max(len(nodes) + len(vips), 1) * PORT_H + 8
            lines.append((x + card_w // 2, y, x + card_w // 2, top))
            last = (nodes + vips)[-1]["y"] if nodes or vips else top + HEADER
            cards.append({"subnet": subnet, "x": x, "y": top, "w": card_w, "h": card_h, "name": _short(subnet.name, 20),
                          "ports": nodes, "vips": vips, "bar_end": last})
            height = max(height, DROP + card_h)
        y += height + ROW_GAP
    if len(subnets) > COLUMNS:  # the trunk down the left margin, joining the rows' buses
        lines.append((LEFT // 2, BUS_Y, LEFT // 2, bus_y))
    return {"width": WIDTH, "height": y if subnets else BUS_Y, "lines": lines, "subnets": cards,
            "router": {"x": center - ROUTER_W // 2, "y": 10, "w": ROUTER_W, "h": ROUTER_H, "center": center,
                       "name": _short(vpc.name, 22)}}


# --- VPCs -----------------------------------------------------------------------------------
