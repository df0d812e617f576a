"""The billing policy, run every few minutes (apps.billing.tasks.apply_billing_policy): what
happens to prepaid resources whose subscription expires and to tenants who no longer pay for
their on-demand usage, and the low-balance warnings. The periods are PlatformSettings'.

Subscriptions. `renewal_reminder_days` before expiry: a reminder (once per period). At expiry:
renewed from the wallet for one term when auto-renew is on and the wallet covers it; else
expired, in grace (the resource keeps running). `expiry_grace_days` after expiry: the resource
is stopped (instances, powered off). `stopped_days` later: it goes to the recycle bin (instances
and volumes; kept `recycle_bin_hours`), whose purge deletes it and ends the subscription.
Renewing at any step before that brings it back.

Overdue. A tenant that owes money (balance below zero) with no credit left (balance plus credit
limit at or below zero) is told at once (`overdue_since`); `overdue_grace_hours` later its
running on-demand instances are stopped; `stopped_days` after that its on-demand instances
(those the policy stopped or found running) and unattached volumes go to the recycle bin. What
the policy did is kept in audit records (`billing.overdue_stop`, `billing.overdue_recycle`),
so a payment that brings the balance plus credit above zero (`after_payment`, also checked on
every run) undoes exactly that: instances a user stopped himself stay stopped.

Each step is one transaction per subscription or tenant and is recorded (its status, the
wallet's stage, a Notice with a key naming the step), so a run repeated, or late by days, does
each step once and in order: one step per run, the next one at the next run."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.billing import money
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Notice, Subscription, Wallet
from apps.billing.notices import notify
from apps.billing.subscription_services import COVERING, end_for_resource, renew, resource_of, revive
from apps.core.actor import Actor
from apps.core.audit import record
from apps.core.exceptions import DomainError
from apps.core.models import AuditRecord, PlatformSettings

log = logging.getLogger(__name__)

NOTIFIED, STOPPED, RECYCLED = "notified", "stopped", "recycled"
OVERDUE_STOP, OVERDUE_RECYCLE = "billing.overdue_stop", "billing.overdue_recycle"


def run(now: datetime | None = None) -> dict[str, int]:
    """One pass of the policy over the subscriptions and wallets that need it."""
    now = now or timezone.now()
    rules = PlatformSettings.load()
    summary = {"subscriptions": 0, "wallets": 0}
    due = (Subscription.objects.filter(status__in=COVERING)
           .filter(Q(status=Subscription.ACTIVE, expires_at__lte=now + timedelta(days=rules.renewal_reminder_days))
                   | ~Q(status=Subscription.ACTIVE)))
    for sub_id in list(due.values_list("pk", flat=True)):
        summary["subscriptions"] += _guarded(_advance_subscription, sub_id, now, rules)
    wallets = Wallet.objects.filter(Q(overdue_since__isnull=False) | Q(balance__lt=0)
                                    | Q(balance__lt=F("low_balance_threshold")))
    for wallet_id in list(wallets.values_list("pk", flat=True)):
        summary["wallets"] += _guarded(_check_wallet, wallet_id, now, rules)
    return summary


def _guarded(step, pk: int, now: datetime, rules: PlatformSettings) -> int:
    """One subscription or wallet failing is logged; the others go on (and it is retried next run)."""
    try:
        return int(bool(step(pk, now, rules)))
    except Exception:
        log.exception("billing policy: %s(%s) failed", step.__name__, pk)
        return 0


def _act(what: str, fn, *args, **kwargs) -> bool:
    """Call a lifecycle service for the policy; a refusal (the resource changed meanwhile) is
    logged and the step is tried again at the next run."""
    try:
        fn(*args, **kwargs)
        return True
    except DomainError as exc:
        log.warning("billing policy: cannot %s: %s", what, exc.message)
        return False


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


# --- subscriptions --------------------------------------------------------------------------

def _advance_subscription(sub_id: int, now: datetime, rules: PlatformSettings) -> str:
    """Take one subscription one step further, if its time has come; the step taken ('' none)."""
    from apps.compute.models import Instance
    from apps.storage.models import Volume

    with transaction.atomic():
        sub = (Subscription.objects.select_for_update(of=("self",)).select_related("tenant", "product")
               .get(pk=sub_id))
        if sub.status not in COVERING:
            return ""
        resource = resource_of(sub)
        if resource is None or getattr(resource, "status", "") == "deleted":
            end_for_resource(sub.resource_id, at=now)
            return "ended"
        grace_ends = sub.expires_at + timedelta(days=rules.expiry_grace_days)
        bin_at = grace_ends + timedelta(days=rules.stopped_days)
        if sub.status == Subscription.ACTIVE and now < sub.expires_at:
            return _remind(sub, now)
        if sub.status == Subscription.ACTIVE:
            return _expire(sub, now, grace_ends, bin_at)
        if sub.status == Subscription.GRACE and now >= grace_ends:
            if isinstance(resource, Instance) and resource.status not in (Instance.STOPPED, Instance.RECYCLED):
                if resource.status != Instance.RUNNING or not _act(
                        f"stop {resource.public_id}", _compute().stop_instance, Actor.system(tenant=sub.tenant),
                        instance=resource, force=True):
                    return ""  # busy (starting, migrating...): next run
            _move(sub, Subscription.SUSPENDED, now)
            notify(sub.tenant, kind=Notice.STOPPED, level=Notice.DANGER, resource_id=sub.resource_id,
                   key=f"stopped:{sub.public_id}:{sub.expires_at:%Y%m%d%H%M%S}",
                   message=f"{sub.resource_id} is stopped: its subscription {sub.public_id} expired on "
                           f"{_when(sub.expires_at)}. It goes to the recycle bin on {_when(bin_at)} unless renewed.")
            return Subscription.SUSPENDED
        if sub.status == Subscription.SUSPENDED and now >= bin_at:
            system = Actor.system(tenant=sub.tenant)
            if isinstance(resource, Instance) and resource.status in (Instance.RUNNING, Instance.STOPPED):
                done = _act(f"recycle {resource.public_id}", _compute().delete_instance, system, instance=resource)
            elif isinstance(resource, Volume) and resource.status == Volume.AVAILABLE:
                done = _act(f"recycle {resource.public_id}", _storage().delete_volume, system, volume=resource)
            else:  # already in the bin (its user deleted it); else busy, attached, or a kind not recycled
                done = getattr(resource, "status", "") == "recycled"
            if not done:
                return ""
            _move(sub, Subscription.RECYCLED, now)
            notify(sub.tenant, kind=Notice.RECYCLED, level=Notice.DANGER, resource_id=sub.resource_id,
                   key=f"recycled:{sub.public_id}:{sub.expires_at:%Y%m%d%H%M%S}",
                   message=f"{sub.resource_id} is in the recycle bin: its subscription {sub.public_id} expired on "
                           f"{_when(sub.expires_at)}. It is deleted for good after {rules.recycle_bin_hours} h "
                           "unless renewed.")
            return Subscription.RECYCLED
    return ""


def _compute():
    from apps.compute import services

    return services


def _storage():
    from apps.storage import services

    return services


def _move(sub: Subscription, status: str, now: datetime) -> None:
    sub.status, sub.status_changed_at = status, now
    sub.save(update_fields=["status", "status_changed_at", "updated_at"])


def _remind(sub: Subscription, now: datetime) -> str:
    renewal = (f"It renews from the wallet for {sub.price} {sub.currency}." if sub.auto_renew
               else "Renew it to keep the resource.")
    if notify(sub.tenant, kind=Notice.EXPIRING, resource_id=sub.resource_id,
              key=f"expiring:{sub.public_id}:{sub.expires_at:%Y%m%d%H%M%S}",
              message=f"The subscription {sub.public_id} of {sub.resource_id} expires on {_when(sub.expires_at)}. "
                      f"{renewal}") is None:
        return ""
    sub.reminded_at = now
    sub.save(update_fields=["reminded_at", "updated_at"])
    return "reminded"


def _expire(sub: Subscription, now: datetime, grace_ends: datetime, bin_at: datetime) -> str:
    """At expiry: one more term from the wallet when auto-renew is on and it can pay; else grace."""
    key = f"{sub.public_id}:{sub.expires_at:%Y%m%d%H%M%S}"
    failed = ""
    if sub.auto_renew:
        try:
            renewed = renew(Actor.system(tenant=sub.tenant), subscription=sub, idempotency_key=f"auto-renew:{key}")
        except DomainError as exc:  # 402 insufficient_funds, or no longer sold for the term
            failed = f"It could not renew from the wallet ({exc.message}) "
        else:
            notify(sub.tenant, kind=Notice.RENEWED, level=Notice.INFO, resource_id=sub.resource_id,
                   key=f"renewed:{key}",
                   message=f"The subscription {sub.public_id} of {sub.resource_id} renewed for {renewed.price} "
                           f"{renewed.currency}, until {_when(renewed.expires_at)}.")
            return Subscription.ACTIVE
    _move(sub, Subscription.GRACE, now)
    notify(sub.tenant, kind=Notice.EXPIRED, resource_id=sub.resource_id, key=f"expired:{key}",
           message=f"The subscription {sub.public_id} of {sub.resource_id} expired on {_when(sub.expires_at)}. "
                   f"{failed}{sub.resource_id} keeps running until {_when(grace_ends)}, is stopped then and goes to "
                   f"the recycle bin on {_when(bin_at)} unless renewed (from the expiry on).")
    return Subscription.GRACE


# --- wallets: overdue and low balance -------------------------------------------------------

def _owes(wallet: Wallet) -> bool:
    """Owes money and has no credit left: what the overdue policy acts on."""
    return wallet.balance < 0 and wallet.available <= 0


def _check_wallet(wallet_id: int, now: datetime, rules: PlatformSettings) -> bool:
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=wallet_id)
        acted = _low_balance(wallet)
        if wallet.overdue_since is not None and wallet.available > 0:
            return _restore(wallet, now) or acted
        if wallet.overdue_since is None and not _owes(wallet):
            return acted
        return _overdue_step(wallet, now, rules) or acted


def _money_text(wallet: Wallet, amount) -> str:
    return f"{amount:.{money.places(wallet.currency)}f} {wallet.currency}"


def _overdue_step(wallet: Wallet, now: datetime, rules: PlatformSettings) -> str:
    since = wallet.overdue_since or now
    stop_at = since + timedelta(hours=rules.overdue_grace_hours)
    bin_at = stop_at + timedelta(days=rules.stopped_days)
    episode = f"{since:%Y%m%dT%H%M%S}"
    if wallet.overdue_since is None:
        wallet.overdue_since, wallet.overdue_stage = now, NOTIFIED
        wallet.save(update_fields=["overdue_since", "overdue_stage", "updated_at"])
        notify(wallet.tenant, kind=Notice.OVERDUE, level=Notice.DANGER, key=f"overdue:{episode}",
               message=f"The balance is {_money_text(wallet, wallet.balance)} and the credit limit "
                       f"({_money_text(wallet, wallet.credit_limit)}) is used up: on-demand usage is no longer "
                       f"covered. Recharge the wallet, or the on-demand instances are stopped on {_when(stop_at)}, "
                       f"and on {_when(bin_at)} they and the unattached on-demand volumes go to the recycle bin "
                       f"(deleted {rules.recycle_bin_hours} h later).")
        return NOTIFIED
    instances, volumes = _on_demand(wallet.tenant_id)
    system = Actor.system(tenant=wallet.tenant)
    details = {"overdue_since": since.isoformat()}
    if wallet.overdue_stage == NOTIFIED and now >= stop_at:
        from apps.compute.models import Instance

        stopped = []
        for instance in instances.filter(status=Instance.RUNNING):
            if _act(f"stop {instance.public_id}", _compute().stop_instance, system, instance=instance, force=True):
                record(system, action=OVERDUE_STOP, area="billing", resource=instance, details=details)
                stopped.append(instance.public_id)
        _stage(wallet, STOPPED)
        notify(wallet.tenant, kind=Notice.STOPPED, level=Notice.DANGER, key=f"overdue-stopped:{episode}",
               message=f"The balance is {_money_text(wallet, wallet.balance)}: the on-demand instances were stopped "
                       f"({', '.join(stopped) or 'none was running'}). Recharge the wallet to start them again; on "
                       f"{_when(bin_at)} they go to the recycle bin.")
        return STOPPED
    if wallet.overdue_stage == STOPPED and now >= bin_at:
        from apps.compute.models import Instance
        from apps.storage.models import Volume

        ours = set(_done_by_policy(wallet, OVERDUE_STOP))
        recycled = []
        for instance in instances.filter(status__in=(Instance.RUNNING, Instance.STOPPED)):
            # Instances their users stopped cost nothing and are left as they are.
            if (instance.status == Instance.RUNNING or instance.public_id in ours) and _act(
                    f"recycle {instance.public_id}", _compute().delete_instance, system, instance=instance):
                record(system, action=OVERDUE_RECYCLE, area="billing", resource=instance, details=details)
                recycled.append(instance.public_id)
        for volume in volumes.filter(status=Volume.AVAILABLE):
            if _act(f"recycle {volume.public_id}", _storage().delete_volume, system, volume=volume):
                record(system, action=OVERDUE_RECYCLE, area="billing", resource=volume, details=details)
                recycled.append(volume.public_id)
        _stage(wallet, RECYCLED)
        notify(wallet.tenant, kind=Notice.RECYCLED, level=Notice.DANGER, key=f"overdue-recycled:{episode}",
               message=f"The balance is {_money_text(wallet, wallet.balance)}: on-demand resources went to the "
                       f"recycle bin ({', '.join(recycled) or 'none'}). They are deleted for good after "
                       f"{rules.recycle_bin_hours} h unless the wallet is recharged.")
        return RECYCLED
    return ""


def _stage(wallet: Wallet, stage: str) -> None:
    wallet.overdue_stage = stage
    wallet.save(update_fields=["overdue_stage", "updated_at"])


def _on_demand(tenant_id: int):
    """The tenant's instances and volumes no subscription holds."""
    from apps.compute.models import Instance
    from apps.storage.models import Volume

    prepaid = Subscription.objects.filter(tenant_id=tenant_id, status__in=COVERING).values("resource_id")
    return tuple(model.objects.filter(tenant_id=tenant_id, deleted_at__isnull=True).exclude(public_id__in=prepaid)
                 .order_by("id") for model in (Instance, Volume))


def _done_by_policy(wallet: Wallet, *actions: str) -> list[str]:
    """Resource ids the policy acted on (`actions`) in the wallet's current overdue episode."""
    return list(AuditRecord.objects.filter(tenant_id=wallet.tenant_id, action__in=actions,
                                           details__overdue_since=wallet.overdue_since.isoformat())
                .order_by("id").values_list("resource_id", flat=True).distinct())


def _restore(wallet: Wallet, now: datetime) -> str:
    """The wallet covers usage again: what the policy stopped is started, what it put in the
    recycle bin restored; the overdue clock is cleared."""
    from apps.core.registry import model_for_public_id

    stopped = set(_done_by_policy(wallet, OVERDUE_STOP))
    restored = []
    for resource_id in dict.fromkeys(_done_by_policy(wallet, OVERDUE_STOP, OVERDUE_RECYCLE)):
        model = model_for_public_id(resource_id)
        resource = model.objects.filter(public_id=resource_id).first() if model else None
        if resource is not None and _act(f"restore {resource_id}", revive, resource,
                                         start_stopped=resource_id in stopped):
            restored.append(resource_id)
    episode = f"{wallet.overdue_since:%Y%m%dT%H%M%S}"
    wallet.overdue_since, wallet.overdue_stage = None, ""
    wallet.save(update_fields=["overdue_since", "overdue_stage", "updated_at"])
    notify(wallet.tenant, kind=Notice.RESTORED, level=Notice.INFO, key=f"restored:{episode}",
           message=f"The balance is {_money_text(wallet, wallet.balance)}: on-demand usage is covered again."
                   + (f" Started or restored: {', '.join(restored)}." if restored else ""))
    return "restored"


def after_payment(tenant_id: int) -> bool:
    """Call after money comes in (a recharge, a credit): an overdue tenant whose balance plus
    credit is above zero again gets back what the policy stopped or recycled. Whether it did."""
    with transaction.atomic():
        wallet = (Wallet.objects.select_for_update(of=("self",)).select_related("tenant")
                  .filter(tenant_id=tenant_id).first())
        if wallet is None or wallet.overdue_since is None or wallet.available <= 0:
            return False
        return bool(_restore(wallet, timezone.now()))


def _low_balance(wallet: Wallet) -> bool:
    """One notice each time the balance falls below the tenant's warning level (below zero
    when it is 0): the crossing is the first ledger entry since the last one at or above it."""
    if not wallet.is_low:
        return False
    entries = wallet.transactions.order_by("id")
    last_fine = entries.filter(balance_after__gte=wallet.low_balance_threshold).last()
    crossing = (entries.filter(pk__gt=last_fine.pk) if last_fine else entries).first()
    level = (f"the warning level of {_money_text(wallet, wallet.low_balance_threshold)}"
             if wallet.low_balance_threshold else "zero")
    return notify(wallet.tenant, kind=Notice.LOW_BALANCE, key=f"low_balance:{crossing.public_id if crossing else 0}",
                  message=f"The balance is {_money_text(wallet, wallet.balance)}, below {level}. Recharge the "
                          "wallet to keep the resources running.") is not None


def check_can_start(actor: Actor, resource) -> None:
    """Refuse (402) a tenant's start or restore of a resource the billing policy holds stopped:
    its subscription expired past the grace period, or it is on demand and its tenant is
    overdue. Operators (and the policy itself, as the system) may."""
    if actor.is_privileged:
        return
    sub = Subscription.objects.filter(resource_id=resource.public_id, status__in=COVERING).first()
    if sub is not None:
        if sub.status in (Subscription.SUSPENDED, Subscription.RECYCLED):
            raise InsufficientFunds(f"The subscription {sub.public_id} expired on {_when(sub.expires_at)}.",
                                    fields={"billing": ["Renew the subscription first."]})
        return
    wallet = Wallet.objects.filter(tenant_id=resource.tenant_id).first()
    if wallet is not None and wallet.overdue_stage in (STOPPED, RECYCLED) and wallet.available <= 0:
        raise InsufficientFunds(f"The balance is {_money_text(wallet, wallet.balance)}.",
                                fields={"billing": ["Recharge the wallet first."]})
