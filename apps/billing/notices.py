"""Billing notices: what a tenant is told about its money and its prepaid resources (low
balance, overdue, resources stopped or in the recycle bin, a subscription expiring or expired,
renewed, restored). A notice is shown in the console until read and e-mailed once to the
tenant's owners and administrators.

`key` is unique per tenant: the policy checks again and again, and a check that finds the same
thing (the same crossing below the threshold, the same period about to expire) names it with
the same key, so the tenant is told once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.billing.models import Notice
from apps.core.audit import audited
from apps.core.exceptions import NotFound
from apps.core.policies import ADMIN, OWNER
from apps.tenants.models import Membership

if TYPE_CHECKING:
    from apps.core.actor import Actor
    from apps.tenants.models import Tenant

log = logging.getLogger(__name__)


def notify(tenant: Tenant, *, kind: str, message: str, key: str, level: str = Notice.WARNING,
           resource_id: str = "") -> Notice | None:
    """Tell the tenant `message` once per `key`: the new Notice, or None when that key was
    said before. The e-mail leaves after the caller's transaction commits (a rolled-back
    policy step tells nobody)."""
    if kind not in dict(Notice.KIND_CHOICES) or level not in dict(Notice.LEVEL_CHOICES):
        raise ValueError(f"unknown notice kind {kind!r} or level {level!r}")
    if Notice.objects.filter(tenant=tenant, key=key).exists():
        return None
    try:
        with transaction.atomic():
            notice = Notice.objects.create(tenant=tenant, kind=kind, level=level, message=message[:500],
                                           key=key[:160], resource_id=resource_id[:32])
    except IntegrityError:
        return None  # another worker said it first
    transaction.on_commit(lambda: _email(notice.pk))
    return notice


def _email(notice_id: int) -> None:
    """Send the notice to the tenant's active owners and administrators; a mail server that is
    down is logged, and `emailed_at` stays empty to say so."""
    notice = Notice.objects.select_related("tenant").get(pk=notice_id)
    recipients = sorted({email for email in Membership.objects.active()
                         .filter(tenant_id=notice.tenant_id, role__in=(OWNER, ADMIN))
                         .values_list("user__email", flat=True) if email})
    if not recipients:
        return
    try:
        send_mail(f"[{notice.tenant.name}] {notice.get_kind_display().capitalize()}", notice.message,
                  settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:
        log.exception("e-mailing notice %s to tenant %s failed", notice.pk, notice.tenant_id)
        return
    Notice.objects.filter(pk=notice.pk).update(emailed_at=timezone.now())


@audited("notice.read", area="billing")
def mark_read(actor: Actor, *, notice: Notice) -> Notice:
    """Mark a notice read for the tenant (it leaves the console's banner). Anyone who may see
    the tenant's billing may do it; another tenant's notice is not there (404)."""
    notice = Notice.objects.for_actor(actor, "view").select_for_update().filter(pk=notice.pk).first()
    if notice is None:
        raise NotFound("No such notice.")
    if notice.read_at is None:
        notice.read_at = timezone.now()
        notice.save(update_fields=["read_at"])
    return notice


def unread_for(actor: Actor) -> QuerySet[Notice]:
    """The actor's tenant's notices not read yet, newest first (operators: every tenant's)."""
    return Notice.objects.for_actor(actor, "view").filter(read_at__isnull=True)
