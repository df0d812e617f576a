"""Networks for tests: the default region's external network (TEST-NET-3 addresses)."""

from apps.core.actor import Actor
from apps.network import edge_services
from apps.network.models import ExternalNetwork
from tests.factories.compute import make_inventory


def make_external_network(*, chassis: tuple[str, ...] = ("gw-1",)) -> ExternalNetwork:
    region = make_inventory()["region"]
    return ExternalNetwork.objects.filter(name="public").first() or edge_services.create_external_network(
        Actor.system(), name="public", region=region, cidr="203.0.113.0/24", gateway_ip="203.0.113.1",
        ranges=[{"start": "203.0.113.10", "end": "203.0.113.20"}], gateway_chassis=list(chassis), is_default=True)
