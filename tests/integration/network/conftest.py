import pytest

from apps.compute.models import Region


@pytest.fixture
def ovn(ovn_nb, settings):
    """The portal's real OVN driver on a private northbound server (ovn_nb.nbctl checks it)."""
    from apps.network import backends

    settings.PORTAL_NETWORK_DRIVER = "apps.network.drivers.ovn.OvnDriver"
    settings.OVN_NB_CONNECTION = ovn_nb.connection
    backends.forget_drivers()
    yield ovn_nb
    backends.forget_drivers()


@pytest.fixture
def region(db):
    return Region.objects.get_or_create(code="default", defaults={"name": "Default"})[0]
