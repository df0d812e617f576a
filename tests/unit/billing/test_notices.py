"""Notices: said once per key, e-mailed to the tenant's owners and administrators after commit,
read by the tenant only; one low-balance notice per crossing below the warning level."""

import pytest
from django.core import mail

from apps.billing import notices, policy, services
from apps.billing.models import Notice
from apps.core.exceptions import NotFound

pytestmark = pytest.mark.django_db


def test_a_notice_is_said_once_per_key_and_emailed_to_owners_and_admins(
        tenant_a, a_owner, a_admin, a_member, a_readonly, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = notices.notify(tenant_a, kind=Notice.OVERDUE, level=Notice.DANGER, key="overdue:1",
                               message="The balance is -5.00 USD.", resource_id="i-abc")
        again = notices.notify(tenant_a, kind=Notice.OVERDUE, key="overdue:1", message="said again")

    assert again is None and Notice.objects.count() == 1
    [sent] = mail.outbox
    assert sorted(sent.to) == sorted([a_owner.user.email, a_admin.user.email])
    assert "Overdue" in sent.subject and sent.body == "The balance is -5.00 USD."
    first.refresh_from_db()
    assert first.emailed_at is not None and (first.level, first.resource_id) == ("danger", "i-abc")


def test_a_rolled_back_notice_tells_nobody(tenant_a, a_owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        from django.db import transaction

        with transaction.atomic():
            notices.notify(tenant_a, kind=Notice.STOPPED, key="stopped:1", message="stopped")
            raise RuntimeError("the policy step failed")
    assert not Notice.objects.exists() and mail.outbox == []


def test_notices_are_read_by_their_tenant_only(tenant_a, tenant_b, a_owner, a_readonly, b_owner, actor):
    mine = notices.notify(tenant_a, kind=Notice.EXPIRING, key="expiring:1", message="expires soon")
    theirs = notices.notify(tenant_b, kind=Notice.EXPIRING, key="expiring:1", message="theirs")

    assert list(notices.unread_for(actor(a_readonly))) == [mine]
    assert list(notices.unread_for(actor(b_owner))) == [theirs]
    with pytest.raises(NotFound):
        notices.mark_read(actor(b_owner), notice=mine)
    assert list(notices.unread_for(actor(a_owner))) == [mine]

    notices.mark_read(actor(a_owner), notice=mine)
    assert list(notices.unread_for(actor(a_owner))) == []
    assert list(notices.unread_for(actor(b_owner))) == [theirs]


def test_one_low_balance_notice_per_crossing(operator, tenant_a, a_owner, actor, clock,
                                             django_capture_on_commit_callbacks):
    def charge(amount, key):
        services.charge(actor(a_owner), tenant=tenant_a, amount=amount, currency="USD", idempotency_key=key,
                        reason="test")

    services.recharge(operator, tenant=tenant_a, amount="20.00", currency="USD", idempotency_key="r1")
    services.set_low_balance_threshold(actor(a_owner), tenant=tenant_a, threshold="10.00")
    policy.run()
    charge("15.00", "c1")  # 5.00: below 10.00
    with django_capture_on_commit_callbacks(execute=True):
        policy.run()
        policy.run()
    charge("1.00", "c2")  # still below: the same crossing
    policy.run()
    [low] = Notice.objects.filter(kind=Notice.LOW_BALANCE)
    assert "5.00 USD" in low.message and "10.00 USD" in low.message
    assert len(mail.outbox) == 1

    services.recharge(operator, tenant=tenant_a, amount="20.00", currency="USD", idempotency_key="r2")  # 24.00
    policy.run()
    charge("20.00", "c3")  # 4.00: below again
    policy.run()
    assert Notice.objects.filter(kind=Notice.LOW_BALANCE).count() == 2
