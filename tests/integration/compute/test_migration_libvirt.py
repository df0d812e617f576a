"""Moves between two real hypervisors: the system libvirtd and a second one on this machine
(tests/integration/second_host.py), each a Host row. A booted tiny guest migrates live and
never notices; a stopped one migrates cold and boots on the second host; a stopped one is
refused a live migration."""

import re
import time

import pytest
from django.conf import settings

from apps.compute import services
from apps.compute.drivers.base import NotFound
from apps.compute.drivers.libvirt import LibvirtDriver
from apps.compute.models import Host, Instance
from apps.core.models import Operation
from tests.integration.guests import remove_instances, serial, type_on_serial, wait_for_line

pytestmark = [pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db]

BOOT_TIMEOUT = 90  # seconds; ~6 s is typical under TCG


@pytest.fixture
def hosts(tiny_image, second_libvirt_host, libvirt_driver, a_owner):
    """(the system libvirtd's host, a function adding the second one). Instances created before
    the second host is added land on the first."""
    first = Host.objects.get(uri=settings.PORTAL_LIBVIRT_URI)

    def add_second(operator) -> Host:
        return services.add_host(operator, cluster=first.cluster, name="second", uri=second_libvirt_host.uri,
                                 management_address="127.0.0.1")

    yield first, add_second
    for instance in remove_instances(a_owner.tenant, libvirt_driver):
        LibvirtDriver(second_libvirt_host.uri).delete_domain(instance.public_id)


def launch(owner, image, capture, name: str) -> Instance:
    with capture(execute=True):
        [instance] = services.create_instances(owner, name=name, flavor="t1.nano", image=image.public_id)
    instance = Instance.objects.select_related("host").get(pk=instance.pk)
    assert instance.status == "running", instance.status_reason
    return instance


def ticks(instance) -> list[tuple[int, int]]:
    """(count, uptime in seconds) of each line of the guest's counter."""
    return [(int(n), int(up)) for n, up in re.findall(r"TICK-(\d+) UP-(\d+)", serial(instance))]


def test_a_running_guest_moves_live_and_keeps_running(hosts, tiny_image, second_libvirt_host, a_owner, actor,
                                                      operator, django_capture_on_commit_callbacks):
    first, add_second = hosts
    instance = launch(actor(a_owner), tiny_image, django_capture_on_commit_callbacks, "mover")
    name = instance.public_id
    wait_for_line(instance, "BOOT-OK", BOOT_TIMEOUT)
    # A counter with the guest's uptime: if the guest never stops, both go on across the move.
    type_on_serial(name, "n=0; while true; do n=$((n+1)); echo TICK-$n UP-$(cut -d. -f1 /proc/uptime); sleep 1; done &")
    wait_for_line(instance, r"TICK-2 ")
    second = add_second(operator)

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        services.migrate_instance(operator, instance=instance, host=second, live=True)
    took = time.monotonic() - started

    moved = Instance.objects.get(pk=instance.pk)
    assert (moved.status, moved.host_id, moved.status_reason) == ("running", second.pk,
                                                                  f"live-migrated from {first.name}")
    assert LibvirtDriver(second_libvirt_host.uri).domain_info(name).state == "running"
    with pytest.raises(NotFound):
        LibvirtDriver(first.uri).domain_info(name)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.instances_count, second.instances_count, second.memory_mb_used) == (0, 1, 128)
    operation = Operation.objects.get(kind="instance.live_migrate", resource_id=name)
    assert (operation.status, operation.progress) == ("succeeded", 100), operation.error
    assert f"from {first.name} to second" in operation.log

    # The guest went on where it was: the counter and its uptime keep going in the same serial
    # log (now written by the second host), the shell answers on the second host's console, and
    # it never booted again.
    count_at_move, up_at_move = ticks(moved)[-1]
    wait_for_line(moved, rf"TICK-{count_at_move + 2} ")
    type_on_serial(name, "echo AFTER-$((6 * 7))", uri=second_libvirt_host.uri)
    wait_for_line(moved, "AFTER-42")
    counts, uptimes = zip(*ticks(moved))
    assert counts == tuple(range(1, len(counts) + 1)) and list(uptimes) == sorted(uptimes)
    assert uptimes[-1] >= up_at_move + 2
    assert serial(moved).count("BOOT-OK") == 1
    print(f"live migration through the portal: {took:.1f}s, guest paused {operation.result['downtime_ms']} ms; "
          f"guest uptime {uptimes[0]}s -> {uptimes[-1]}s over {len(counts)} ticks")


def test_a_stopped_instance_moves_cold_and_boots_on_the_second_host(hosts, tiny_image, second_libvirt_host,
                                                                    a_owner, actor, operator,
                                                                    django_capture_on_commit_callbacks):
    first, add_second = hosts
    owner = actor(a_owner)
    instance = launch(owner, tiny_image, django_capture_on_commit_callbacks, "sleeper")
    with django_capture_on_commit_callbacks(execute=True):
        services.stop_instance(owner, instance=instance, force=True)
    second = add_second(operator)

    with django_capture_on_commit_callbacks(execute=True):
        services.migrate_instance(operator, instance=Instance.objects.get(pk=instance.pk), host=second)
    moved = Instance.objects.get(pk=instance.pk)
    assert (moved.status, moved.host_id, moved.status_reason) == ("stopped", second.pk, f"moved from {first.name}")
    assert LibvirtDriver(second_libvirt_host.uri).domain_info(moved.public_id).state == "shutoff"
    with pytest.raises(NotFound):
        LibvirtDriver(first.uri).domain_info(moved.public_id)

    booted_before = serial(moved).count("BOOT-OK")
    with django_capture_on_commit_callbacks(execute=True):
        services.start_instance(owner, instance=moved)
    assert LibvirtDriver(second_libvirt_host.uri).domain_info(moved.public_id).state == "running"
    deadline = time.monotonic() + BOOT_TIMEOUT
    while serial(moved).count("BOOT-OK") == booted_before:
        assert time.monotonic() < deadline, f"no BOOT-OK on the second host:\n{serial(moved)[-2000:]}"
        time.sleep(0.3)


def test_a_stopped_instance_is_refused_a_live_migration(hosts, tiny_image, second_libvirt_host, a_owner, actor,
                                                        operator, api, django_capture_on_commit_callbacks):
    first, add_second = hosts
    owner = actor(a_owner)
    instance = launch(owner, tiny_image, django_capture_on_commit_callbacks, "stopped")
    with django_capture_on_commit_callbacks(execute=True):
        services.stop_instance(owner, instance=instance, force=True)
    second = add_second(operator)

    response = api(operator.user).post(f"/api/v1/instances/{instance.public_id}/migrate",
                                       {"live": True, "host": second.public_id}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "invalid_state")
    assert "A cold migration moves a stopped instance" in response.json()["message"]
    stayed = Instance.objects.get(pk=instance.pk)
    assert (stayed.status, stayed.host_id) == ("stopped", first.pk)
    assert LibvirtDriver(first.uri).domain_info(instance.public_id).state == "shutoff"
    assert LibvirtDriver(second_libvirt_host.uri).list_domains() == []
    second.refresh_from_db()
    assert second.instances_count == 0
