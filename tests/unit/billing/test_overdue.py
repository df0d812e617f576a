"""The billing policy over time, through the real compute and storage services on the fake
drivers: an expired subscription's grace, stop, recycle bin, deletion or renewal; an overdue
tenant's notice, stop, recycle bin and the payment that brings back exactly what the policy
stopped."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.billing import policy, services, subscription_services
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Notice, Product, Wallet
from apps.compute import services as compute
from apps.compute.models import Image, Instance
from apps.core.models import PlatformSettings
from apps.storage import services as storage
from apps.storage.models import Volume
from tests.factories.storage import make_storage

pytestmark = pytest.mark.django_db

NANO, GB = "instance.flavor.t1.nano", "volume.gb.standard"


@pytest.fixture
def cloud(operator, tenant_a, clock):
    """Compute and storage on the fake drivers, the policy's periods, prepaid prices, 100.00 USD."""
    PlatformSettings.objects.update_or_create(pk=1, defaults={
        "recycle_bin_hours": 24, "overdue_grace_hours": 24, "expiry_grace_days": 3, "stopped_days": 7,
        "renewal_reminder_days": 7})
    make_storage()
    for code, unit, meter, hourly, monthly in ((NANO, Product.HOUR, "instance.flavor", "0.036", "20.00"),
                                               (GB, Product.GB_HOUR, "volume.gb", "0.0001", "1.00")):
        product = services.create_product(operator, code=code, name=code, unit=unit, meter=meter)
        services.add_price(operator, product=product, region="default", currency="USD", hourly=hourly,
                           monthly=monthly)
    services.recharge(operator, tenant=tenant_a, amount="100.00", currency="USD", idempotency_key="fund")


@pytest.fixture
def owner(a_owner, actor):
    return actor(a_owner)


def fresh(obj):
    obj.refresh_from_db()
    return obj


def launch(run_tasks, owner, name):
    [instance] = run_tasks(compute.create_instances, owner, name=name, flavor="t1.nano",
                           image=Image.objects.get(name="tiny").public_id)
    return fresh(instance)


def kinds(tenant) -> list[str]:
    return list(Notice.objects.filter(tenant=tenant).order_by("id").values_list("kind", flat=True))


def test_an_expired_subscription_is_stopped_recycled_and_brought_back_by_renewal(cloud, owner, tenant_a, clock,
                                                                                  run_tasks):
    web = launch(run_tasks, owner, "web")
    disk = fresh(run_tasks(storage.create_volume, owner, name="data", size_gb=10))
    web_sub = subscription_services.subscribe(owner, resource=web, product_code=NANO, term="monthly",
                                              idempotency_key="web")
    disk_sub = subscription_services.subscribe(owner, resource=disk, product_code=GB, quantity=10, term="monthly",
                                               idempotency_key="disk")
    assert web_sub.expires_at == datetime(2026, 4, 1, tzinfo=UTC)

    clock.now = datetime(2026, 3, 25, tzinfo=UTC)  # 7 days before: reminded, once
    run_tasks(policy.run)
    run_tasks(policy.run)
    assert kinds(tenant_a) == ["expiring", "expiring"]

    clock.now = datetime(2026, 4, 1, tzinfo=UTC)  # expired: in grace, still running
    run_tasks(policy.run)
    assert (fresh(web_sub).status, fresh(web).status) == ("grace", "running")
    assert kinds(tenant_a)[2:] == ["expired", "expired"]

    clock.now = datetime(2026, 4, 4, tzinfo=UTC)  # grace over: stopped
    run_tasks(policy.run)
    assert (fresh(web_sub).status, fresh(web).status) == ("suspended", "stopped")
    assert (fresh(disk_sub).status, fresh(disk).status) == ("suspended", "available")
    with pytest.raises(InsufficientFunds):
        policy.check_can_start(owner, web)  # what the lifecycle asks before a start
    clock.now = datetime(2026, 4, 10, 23, tzinfo=UTC)
    run_tasks(policy.run)  # nothing more before its time
    assert (fresh(web_sub).status, fresh(web).status) == ("suspended", "stopped")

    clock.now = datetime(2026, 4, 11, tzinfo=UTC)  # 7 days stopped: the recycle bin
    run_tasks(policy.run)
    assert (fresh(web_sub).status, fresh(web).status) == ("recycled", "recycled")
    assert (fresh(disk_sub).status, fresh(disk).status) == ("recycled", "recycled")

    balance = Wallet.objects.get(tenant=tenant_a).balance
    run_tasks(subscription_services.renew, owner, subscription=web_sub, idempotency_key="r1")
    run_tasks(subscription_services.renew, owner, subscription=disk_sub, idempotency_key="r2")
    assert (fresh(web_sub).status, fresh(web_sub).expires_at, fresh(web).status) == (
        "active", datetime(2026, 5, 1, tzinfo=UTC), "running")
    assert (fresh(disk_sub).status, fresh(disk).status) == ("active", "available")
    policy.check_can_start(owner, web)
    assert Wallet.objects.get(tenant=tenant_a).balance == balance - Decimal("30.00")  # 20.00 + 10 GB × 1.00


def test_a_recycled_resource_not_renewed_is_purged_and_its_subscription_ends(cloud, owner, tenant_a, clock,
                                                                             run_tasks):
    web = launch(run_tasks, owner, "web")
    sub = subscription_services.subscribe(owner, resource=web, product_code=NANO, term="monthly",
                                          idempotency_key="web")
    for day in (1, 4, 11):
        clock.now = datetime(2026, 4, day, tzinfo=UTC)
        run_tasks(policy.run)
    assert fresh(web).status == "recycled"

    clock.now += timedelta(hours=25)
    assert run_tasks(compute.purge_recycled_instances) == 1
    run_tasks(policy.run)
    assert (fresh(web).status, fresh(sub).status) == ("deleted", "ended")
    assert kinds(tenant_a)[-1] == "deleted"


def test_an_overdue_tenant_is_warned_stopped_recycled_and_restored_by_a_payment(cloud, operator, owner, tenant_a,
                                                                               clock, run_tasks):
    web = launch(run_tasks, owner, "web")
    idle = launch(run_tasks, owner, "idle")
    run_tasks(compute.stop_instance, owner, instance=idle)  # stopped by its user
    paid = launch(run_tasks, owner, "paid")
    subscription_services.subscribe(owner, resource=paid, product_code=NANO, term="monthly", idempotency_key="p")
    disk = fresh(run_tasks(storage.create_volume, owner, name="data", size_gb=10))
    services.adjust(operator, tenant=tenant_a, amount="-85.00", currency="USD", reason="usage")  # -5.00
    start = clock.now

    run_tasks(policy.run)
    run_tasks(policy.run)
    wallet = Wallet.objects.get(tenant=tenant_a)
    assert (wallet.overdue_since, wallet.overdue_stage) == (start, "notified")
    [overdue] = Notice.objects.filter(kind=Notice.OVERDUE)
    assert overdue.level == "danger" and "-5.00 USD" in overdue.message and "2026-03-02 00:00" in overdue.message

    clock.now = start + timedelta(hours=23)
    run_tasks(policy.run)
    assert fresh(web).status == "running"
    clock.now = start + timedelta(hours=24)
    run_tasks(policy.run)
    assert [fresh(i).status for i in (web, idle, paid)] == ["stopped", "stopped", "running"]
    assert web.public_id in Notice.objects.get(kind=Notice.STOPPED).message
    with pytest.raises(InsufficientFunds):
        policy.check_can_start(owner, idle)
    policy.check_can_start(owner, paid)

    clock.now = start + timedelta(days=8)
    run_tasks(policy.run)
    assert [fresh(i).status for i in (web, idle, paid)] == ["recycled", "stopped", "running"]
    assert fresh(disk).status == "recycled"
    assert Wallet.objects.get(tenant=tenant_a).overdue_stage == "recycled"

    services.recharge(operator, tenant=tenant_a, amount="50.00", currency="USD", idempotency_key="pay")
    assert run_tasks(policy.after_payment, tenant_a.pk) is True
    assert [fresh(i).status for i in (web, idle, paid)] == ["running", "stopped", "running"]
    assert fresh(disk).status == "available"
    wallet = Wallet.objects.get(tenant=tenant_a)
    assert (wallet.overdue_since, wallet.overdue_stage) == (None, "")
    assert kinds(tenant_a)[-1] == "restored"
    assert policy.after_payment(tenant_a.pk) is False


def test_a_payment_while_stopped_starts_only_what_the_policy_stopped(cloud, operator, owner, tenant_a, clock,
                                                                     run_tasks):
    web = launch(run_tasks, owner, "web")
    idle = launch(run_tasks, owner, "idle")
    run_tasks(compute.stop_instance, owner, instance=idle)
    services.adjust(operator, tenant=tenant_a, amount="-100.00", currency="USD", reason="usage")  # 0.00
    run_tasks(policy.run)
    assert Wallet.objects.get(tenant=tenant_a).overdue_since is None  # owes nothing: not overdue
    services.adjust(operator, tenant=tenant_a, amount="-1.00", currency="USD", reason="usage")
    run_tasks(policy.run)
    clock.now += timedelta(hours=24)
    run_tasks(policy.run)
    assert [fresh(i).status for i in (web, idle)] == ["stopped", "stopped"]

    services.recharge(operator, tenant=tenant_a, amount="10.00", currency="USD", idempotency_key="pay")
    run_tasks(policy.run)  # the scheduled run sees the payment too
    assert [fresh(i).status for i in (web, idle)] == ["running", "stopped"]
    assert Instance.objects.filter(status="running").count() == 1 and Volume.objects.count() == 0


def test_the_policy_is_scheduled_and_its_task_runs(cloud, tenant_a, operator):
    from django.core.management import call_command
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    call_command("setup_schedules")
    schedule = Schedule.objects.get(func="apps.billing.tasks.apply_billing_policy")
    assert schedule.minutes == 15
    services.adjust(operator, tenant=tenant_a, amount="-101.00", currency="USD", reason="usage")
    assert import_string(schedule.func)() == {"subscriptions": 0, "wallets": 1}
    assert Wallet.objects.get(tenant=tenant_a).overdue_stage == "notified"
