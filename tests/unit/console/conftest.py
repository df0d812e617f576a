import dataclasses

import pytest

from apps.compute import services as compute
from apps.compute.drivers.fake import FakeDriver
from tests.factories.compute import make_inventory
from tests.fakevnc import FakeVnc
from tests.processes import free_port


@pytest.fixture
def vnc(monkeypatch):
    """The fake hypervisor's domains show their screen on a local fake VNC server."""
    server = FakeVnc()
    real = FakeDriver.domain_info

    def domain_info(self, name):
        info = real(self, name)
        return dataclasses.replace(info, vnc_host=server.host, vnc_port=server.port) if info.vnc_port else info

    monkeypatch.setattr(FakeDriver, "domain_info", domain_info)
    yield server
    server.close()


@pytest.fixture
def dead_vnc(monkeypatch):
    """Domains whose VNC port answers nothing (nothing listens there)."""
    port = free_port()
    real = FakeDriver.domain_info
    monkeypatch.setattr(FakeDriver, "domain_info",
                        lambda self, name: dataclasses.replace(real(self, name), vnc_host="127.0.0.1", vnc_port=port))


@pytest.fixture
def launch(db, actor, django_capture_on_commit_callbacks):
    """launch(membership, name) -> a running instance of its tenant (fake hypervisor)."""
    inventory = make_inventory()

    def run(membership, name="web"):
        with django_capture_on_commit_callbacks(execute=True):
            [instance] = compute.create_instances(actor(membership), name=name, flavor="t1.nano",
                                                  image=inventory["image"].public_id)
        instance.refresh_from_db()
        assert instance.status == "running"
        return instance

    return run


@pytest.fixture
def running(a_owner, launch):
    return launch(a_owner)
