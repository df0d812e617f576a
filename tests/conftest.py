"""Shared fixtures: two tenants (A and B) with members of every role, actors and clients; a
private OVN northbound ovsdb-server per test (`ovn_nb`)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.core.actor import Actor
from apps.core.policies import ADMIN, MEMBER, OWNER, READONLY
from apps.tenants.models import Membership
from tests.factories.tenants import PASSWORD, actor_for, add_member, make_tenant
from tests.ovn import NbServer, OvnNotInstalled, OvnStack, StackUnavailable, start_nb, start_stack


@pytest.fixture(autouse=True)
def _sync_tasks_and_fresh_cache(settings, monkeypatch):
    """Unit tests run django-q2 tasks inline; each test starts with an empty cache."""
    from django.core.cache import cache
    from django_q.conf import Conf

    # django-q2 reads Q_CLUSTER once at import: flip its resolved flag, not the setting.
    monkeypatch.setattr(Conf, "SYNC", True)
    # Hashing strength is not under test; PBKDF2's iterations would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Deletes are final unless a test turns the recycle bin on (it has tests of its own).
    settings.PORTAL_RECYCLE_BIN_HOURS = 0
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """One SQLite test database file per pytest process, so two runs in one checkout (or a
    run next to `make run`) never share or delete each other's database."""
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("TEST", {})["NAME"] = str(Path(settings.VAR_DIR) / f"test-portal-{os.getpid()}.sqlite3")


@pytest.fixture
def output_dir() -> Path:
    """Where tests keep artefacts (screenshots) for people to look at."""
    path = Path(settings.VAR_DIR) / "test-output"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def ovn_nb(tmp_path) -> Iterator[NbServer]:
    """A private OVN northbound ovsdb-server with a fresh database (tests/ovn.py), stopped after
    the test. `.connection` ("unix:.../nb.sock") is for ovsdbapp, `.nbctl(*args)` runs ovn-nbctl
    on it. Skips when OVN is not installed."""
    if shutil.which("ovsdb-server") is None:
        pytest.skip("OVN not installed: ovsdb-server missing (scripts/test.sh installs ovn-central)")
    try:
        server = start_nb(tmp_path / "ovn")
    except OvnNotInstalled as exc:
        pytest.skip(f"OVN not installed: {exc} (scripts/test.sh installs ovn-central)")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ovn_stack(tmp_path) -> Iterator[OvnStack]:
    """The full OVN stack on userspace Open vSwitch (tests/ovn.py start_stack: NB, SB, northd,
    ovsdb-server + ovs-vswitchd, ovn-controller with br-int; ~0.1 s to start), stopped after the
    test with the network namespaces it made. While it runs /var/run/openvswitch/db.sock links to
    its OVS database, so libvirt can plug guests into br-int. One stack per machine: waits (up to
    2 min) for another test run's. Skips when OVN/Open vSwitch is not installed, when not root, or
    when that path is another Open vSwitch's."""
    try:
        stack = start_stack(tmp_path / "ovn-stack")
    except OvnNotInstalled as exc:
        pytest.skip(f"OVN not installed: {exc} (scripts/test.sh installs ovn-central, ovn-host, openvswitch-switch)")
    except StackUnavailable as exc:
        pytest.skip(f"no OVN stack here: {exc}")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def tenant_a(db):
    return make_tenant("Tenant A", owner_username="alice")


@pytest.fixture
def tenant_b(db):
    return make_tenant("Tenant B", owner_username="bob")


def _owner(tenant) -> Membership:
    return Membership.objects.get(tenant=tenant, role=OWNER)


@pytest.fixture
def a_owner(tenant_a) -> Membership:
    return _owner(tenant_a)


@pytest.fixture
def a_admin(tenant_a) -> Membership:
    return add_member(tenant_a, ADMIN, "a-admin")


@pytest.fixture
def a_member(tenant_a) -> Membership:
    return add_member(tenant_a, MEMBER, "a-member")


@pytest.fixture
def a_readonly(tenant_a) -> Membership:
    return add_member(tenant_a, READONLY, "a-readonly")


@pytest.fixture
def b_owner(tenant_b) -> Membership:
    return _owner(tenant_b)


@pytest.fixture
def operator(db):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("op", "op@example.test", PASSWORD, is_staff=True)
    return Actor(user=user, is_operator=True, via="test")


@pytest.fixture
def actor():
    """actor(membership) -> the Actor that membership acts as."""
    return actor_for


@pytest.fixture
def api():
    """api(membership or user) -> an APIClient logged in (session) as that user."""

    def make(who=None):
        client = APIClient()
        if who is not None:
            client.force_login(getattr(who, "user", who))
        return client

    return make
