"""1,000 random lifecycle events through the real compute and billing services (fake hypervisor,
tasks run inline): creates, stops, starts, reboots, resizes, deletes to the recycle bin and for
good, restores, purges, list price changes, tenant prices and settlement runs, the clock moving
forward whole seconds between them across month boundaries. The ledger must then hold, to the
cent, what the test's own record of the story costs: per instance, product and month (UTC), the
exact cost in fractions rounded once, half up. The record is all the calculation reads: neither
apps.billing.rating nor the usage intervals."""

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

from apps.billing import services as billing
from apps.billing.models import Product, Transaction, Wallet
from apps.billing.tasks import settle_usage
from apps.compute import services as compute
from apps.compute.models import Instance
from apps.compute.tasks import refresh_hosts
from apps.core.actor import Actor
from apps.core.models import PlatformSettings
from tests.factories.compute import make_inventory

SEED = 20260320
EVENTS = 1000
START = datetime(2026, 3, 20, 9, 30, 17, tzinfo=UTC)  # ~60 days of events: into May
MAX_GAP = 3 * 3600
RECHARGE = Decimal("100000.00")  # far more than the story costs: no 402, no overdue policy
RECYCLE_BIN_HOURS = 24
# Per tenant. Two tenants with 4 instances of the largest flavor fill the fake host's 32 vCPUs,
# and one tenant stays within its default quota (10 instances, 20 vCPUs).
MAX_LIVE = 4
# Flavor: (vCPUs, MiB, first hourly price). Sizes only grow down the list, in whole 128 MiB
# blocks, so a running instance can be resized in place to any flavor below its own.
FLAVORS = {
    "t1.nano": (1, 128, "0.0116"),
    "t1.small": (1, 256, "0.023457"),
    "t1.medium": (2, 512, "0.046913"),
    "m1.large": (4, 1024, "0.187654"),
}
SIZES = list(FLAVORS)
# How often each kind of event is picked among those possible at the moment.
WEIGHTS = {"create": 8, "stop": 10, "start": 10, "reboot": 3, "resize": 10, "recycle": 4, "destroy": 2, "restore": 3,
           "purge": 2, "price": 4, "tenant price": 3, "settle": 6, "late settle": 2}


def product_code(flavor: str) -> str:
    return f"instance.flavor.{flavor}"


def second_of(moment: datetime) -> int:
    return int(moment.timestamp())


def moment_of(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


# --- the independent calculation ---------------------------------------------------------------

@dataclass
class Record:
    """What happened, in whole seconds since the epoch: which instance ran on which flavor from
    when to when (`runs`: tenant, instance, flavor, start, end), the list price versions per
    flavor and the tenant prices per (tenant, flavor), each as (from second, value)."""

    runs: list[tuple[int, str, str, int, int]] = field(default_factory=list)
    running: dict[str, tuple[int, str, int]] = field(default_factory=dict)
    prices: dict[str, list[tuple[int, Fraction]]] = field(default_factory=lambda: defaultdict(list))
    tenant_prices: dict[tuple[int, str], list[tuple[int, tuple[str, Fraction | None]]]] = field(
        default_factory=lambda: defaultdict(list))

    def begin(self, tenant: int, instance: str, flavor: str, at: int) -> None:
        assert instance not in self.running
        self.running[instance] = (tenant, flavor, at)

    def end(self, instance: str, at: int) -> None:
        tenant, flavor, start = self.running.pop(instance)
        self.runs.append((tenant, instance, flavor, start, at))


def _in_force(versions, second: int):
    """The value of the version that started last at or before `second` (None: none yet)."""
    started = [(start, value) for start, value in versions if start <= second]
    return max(started, key=lambda version: version[0])[1] if started else None


def hourly_rate(record: Record, tenant: int, flavor: str, second: int) -> Fraction:
    listed = _in_force(record.prices[flavor], second)
    own = _in_force(record.tenant_prices[(tenant, flavor)], second)
    if own is not None and own[0] == "fixed":
        return own[1]
    if listed is None:
        return Fraction(0)
    if own is not None and own[0] == "discount":
        return listed * (100 - own[1]) / 100
    return listed


def month_of(second: int) -> date:
    return moment_of(second).date().replace(day=1)


def months_between(start: int, end: int) -> list[int]:
    """The first seconds of the months that begin inside (start, end)."""
    firsts = []
    month = month_of(start)
    while True:
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        first = second_of(datetime(month.year, month.month, 1, tzinfo=UTC))
        if first >= end:
            return firsts
        firsts.append(first)


def to_cents(total: Fraction) -> Decimal:
    """Half up, once, to the USD's 2 places (costs are never negative)."""
    return Decimal(math.floor(total * 100 + Fraction(1, 2))).scaleb(-2)


def expected_charges(record: Record, until: int) -> dict[tuple[int, str, str, date], Decimal]:
    """Per (tenant, instance, product, month): the exact cost of the record's runs up to
    `until` (instances still running count up to then), cut wherever a list price, a tenant price
    or the month changes, rounded once. Amounts that round to nothing are left out (the ledger
    writes no zero entries)."""
    runs = [*record.runs, *((tenant, instance, flavor, start, until)
                            for instance, (tenant, flavor, start) in record.running.items())]
    totals: dict[tuple[int, str, str, date], Fraction] = defaultdict(Fraction)
    for tenant, instance, flavor, start, end in runs:
        end = min(end, until)
        changes = {s for s, _ in record.prices[flavor]} | {s for s, _ in record.tenant_prices[(tenant, flavor)]}
        cuts = sorted({start, end, *months_between(start, end), *(s for s in changes if start < s < end)})
        for a, b in zip(cuts, cuts[1:]):
            key = (tenant, instance, product_code(flavor), month_of(a))
            totals[key] += hourly_rate(record, tenant, flavor, a) * (b - a) / 3600
    rounded = {key: to_cents(total) for key, total in totals.items()}
    return {key: amount for key, amount in rounded.items() if amount}


def ledger_charges() -> dict[tuple[int, str, str, date], Decimal]:
    """What the ledger holds per (tenant, resource, product, month): its usage charges and
    corrections, summed."""
    totals: dict[tuple[int, str, str, date], Decimal] = defaultdict(Decimal)
    for entry in (Transaction.objects.filter(kind__in=[Transaction.CHARGE, Transaction.REFUND], product__isnull=False)
                  .select_related("product")):
        totals[(entry.tenant_id, entry.resource_id, entry.product.code, entry.period)] -= entry.amount
    return {key: amount for key, amount in totals.items() if amount}


def test_the_independent_calculation_agrees_with_a_story_computed_by_hand():
    at = second_of(datetime(2026, 3, 31, 23, 0, tzinfo=UTC))
    hour = 3600
    record = Record()
    record.prices["t1.nano"] += [(at - 10 * hour, Fraction("0.036")), (at + 90 * 60, Fraction("0.05"))]
    record.prices["m1.large"] += [(at - 10 * hour, Fraction("0.1"))]
    record.tenant_prices[(1, "t1.nano")] += [(at + 2 * hour, ("discount", Fraction(50)))]
    record.tenant_prices[(2, "m1.large")] += [(at, ("fixed", Fraction("0.01")))]
    record.tenant_prices[(2, "t1.nano")] += [(at - 10 * hour, ("discount", Fraction(50))), (at, ("list", None))]
    # vm-1 of tenant 1 runs across the end of March into a price change and a discount.
    record.begin(1, "vm-1", "t1.nano", at)
    record.end("vm-1", at + 3 * hour)
    # vm-2 of tenant 2: half an hour at its fixed 0.01/h is 0.005, exactly half a cent: rounded up.
    record.begin(2, "vm-2", "m1.large", at + hour)
    record.end("vm-2", at + hour + 30 * 60)
    # vm-3 of tenant 2, still running: at half price until its tenant price goes back to the
    # list; tenant 1's discount is not its own.
    record.begin(2, "vm-3", "t1.nano", at - hour)
    # A run that lasted no time costs nothing.
    record.begin(1, "vm-4", "t1.nano", at + hour)
    record.end("vm-4", at + hour)

    charges = expected_charges(record, until=at + 3 * hour)

    march, april = date(2026, 3, 1), date(2026, 4, 1)
    assert charges == {
        (1, "vm-1", "instance.flavor.t1.nano", march): Decimal("0.04"),  # 1 h × 0.036
        # 30 min × 0.036 + 30 min × 0.05 + 1 h × 0.025 (the discount) = 0.018 + 0.025 + 0.025
        (1, "vm-1", "instance.flavor.t1.nano", april): Decimal("0.07"),
        (2, "vm-2", "instance.flavor.m1.large", april): Decimal("0.01"),
        (2, "vm-3", "instance.flavor.t1.nano", march): Decimal("0.05"),  # 1 h × 0.018 + 1 h × 0.036
        # 30 min × 0.036 + 1.5 h × 0.05 (until `until`, 02:00) = 0.018 + 0.075
        (2, "vm-3", "instance.flavor.t1.nano", april): Decimal("0.09"),
    }


# --- the story ---------------------------------------------------------------------------------

@dataclass
class Vm:
    """The test's idea of one instance."""

    pk: int
    public_id: str
    tenant: int
    actor: Actor
    flavor: str
    status: str = Instance.RUNNING
    recycled_at: int = 0


class Story:
    """Picks events valid in the current state with a seeded random generator, runs them
    through the services, and writes down what happened (the record) and a readable log."""

    def __init__(self, rng: random.Random, clock, run_tasks, operator, owners, products, image):
        self.rng, self.clock, self.run_tasks, self.operator = rng, clock, run_tasks, operator
        self.owners, self.products, self.image = owners, products, image
        self.now = second_of(clock.now)
        self.record = Record()
        self.vms: list[Vm] = []
        self.log: list[str] = []

    # time

    def advance(self) -> None:
        """0 to MAX_GAP seconds later: often no time at all (two events in one second), and
        often exactly to the first second of a month when one is near."""
        roll = self.rng.random()
        if roll < 0.15:
            return
        upcoming = months_between(self.now, self.now + MAX_GAP + 1)
        self.now += upcoming[0] - self.now if upcoming and roll < 0.5 else self.rng.randint(1, MAX_GAP)
        self.clock.now = moment_of(self.now)

    # events

    def options(self) -> dict[str, list]:
        """The events possible now, by kind, each with what it acts on."""
        live = [vm for vm in self.vms if vm.status != Instance.DELETED]
        by_status = defaultdict(list)
        for vm in live:
            by_status[vm.status].append(vm)
        full = {vm.tenant for vm in live if sum(other.tenant == vm.tenant for other in live) >= MAX_LIVE}
        return {
            "create": [tenant for tenant in self.owners if tenant not in full],
            "stop": by_status[Instance.RUNNING],
            "start": by_status[Instance.STOPPED],
            "reboot": by_status[Instance.RUNNING],
            "resize": [vm for vm in live if vm.status in (Instance.RUNNING, Instance.STOPPED) and self.sizes_for(vm)],
            "recycle": by_status[Instance.RUNNING] + by_status[Instance.STOPPED],
            "destroy": live,
            "restore": by_status[Instance.RECYCLED],
            "purge": [True] if any(self.purged_now(vm) for vm in live) else [],
            "price": SIZES,
            "tenant price": [(tenant, flavor) for tenant in self.owners for flavor in SIZES],
            "settle": [True],
            "late settle": [True],
        }

    def sizes_for(self, vm: Vm) -> list[str]:
        """Running: only bigger (hot resize adds vCPUs and memory); stopped: any other."""
        if vm.status == Instance.RUNNING:
            return SIZES[SIZES.index(vm.flavor) + 1:]
        return [size for size in SIZES if size != vm.flavor]

    def purged_now(self, vm: Vm) -> bool:
        return vm.status == Instance.RECYCLED and vm.recycled_at + RECYCLE_BIN_HOURS * 3600 <= self.now

    def step(self, number: int) -> None:
        self.advance()
        options = {kind: found for kind, found in self.options().items() if found}
        kind = self.rng.choices(list(options), weights=[WEIGHTS[k] for k in options])[0]
        target = self.rng.choice(options[kind])
        what = getattr(self, kind.replace(" ", "_"))(target)
        self.log.append(f"#{number} {self.clock.now:%Y-%m-%d %H:%M:%S} {kind} {what}")
        self.check_statuses()

    def create(self, tenant: int) -> str:
        flavor = self.rng.choice(SIZES)
        # The scheduled heartbeat: the scheduler places nothing on a host silent since long ago.
        refresh_hosts()
        [instance] = self.run_tasks(compute.create_instances, self.owners[tenant], name=f"vm-{len(self.vms) + 1}",
                                    flavor=flavor, image=self.image.public_id)
        vm = Vm(instance.pk, instance.public_id, tenant, self.owners[tenant], flavor)
        self.vms.append(vm)
        self.record.begin(tenant, vm.public_id, flavor, self.now)
        return f"{vm.public_id} ({flavor}, tenant {tenant})"

    def _instance(self, vm: Vm) -> Instance:
        return Instance.objects.get(pk=vm.pk)

    def stop(self, vm: Vm) -> str:
        self.run_tasks(compute.stop_instance, vm.actor, instance=self._instance(vm), force=self.rng.random() < 0.5)
        vm.status = Instance.STOPPED
        self.record.end(vm.public_id, self.now)
        return vm.public_id

    def start(self, vm: Vm) -> str:
        self.run_tasks(compute.start_instance, vm.actor, instance=self._instance(vm))
        vm.status = Instance.RUNNING
        self.record.begin(vm.tenant, vm.public_id, vm.flavor, self.now)
        return vm.public_id

    def reboot(self, vm: Vm) -> str:
        self.run_tasks(compute.reboot_instance, vm.actor, instance=self._instance(vm), hard=self.rng.random() < 0.5)
        return vm.public_id

    def resize(self, vm: Vm) -> str:
        old, new = vm.flavor, self.rng.choice(self.sizes_for(vm))
        self.run_tasks(compute.resize_instance, vm.actor, instance=self._instance(vm), flavor=new)
        vm.flavor = new
        if vm.status == Instance.RUNNING:
            self.record.end(vm.public_id, self.now)
            self.record.begin(vm.tenant, vm.public_id, new, self.now)
        return f"{vm.public_id} {vm.status} {old} -> {new}"

    def recycle(self, vm: Vm) -> str:
        was = vm.status
        self.run_tasks(compute.delete_instance, vm.actor, instance=self._instance(vm))
        if was == Instance.RUNNING:
            self.record.end(vm.public_id, self.now)
        vm.status, vm.recycled_at = Instance.RECYCLED, self.now
        return f"{vm.public_id} (was {was})"

    def destroy(self, vm: Vm) -> str:
        was = vm.status
        self.run_tasks(compute.delete_instance, vm.actor, instance=self._instance(vm), force=True)
        if was == Instance.RUNNING:
            self.record.end(vm.public_id, self.now)
        vm.status = Instance.DELETED
        return f"{vm.public_id} (was {was})"

    def restore(self, vm: Vm) -> str:
        self.run_tasks(compute.restore_instance, vm.actor, instance=self._instance(vm))
        vm.status = Instance.RUNNING
        self.record.begin(vm.tenant, vm.public_id, vm.flavor, self.now)
        return vm.public_id

    def purge(self, _target) -> str:
        due = [vm for vm in self.vms if self.purged_now(vm)]
        self.run_tasks(compute.purge_recycled_instances)
        for vm in due:
            vm.status = Instance.DELETED
        return ", ".join(vm.public_id for vm in due)

    def _version_start(self, taken: list[tuple[int, object]]) -> int:
        """Now, up to MAX_GAP later or the first second of next month (never in the past), at a
        second no version takes yet."""
        roll = self.rng.random()
        if roll < 0.4:
            start = self.now
        elif roll < 0.55:
            start = months_between(self.now, self.now + 32 * 86400)[0]
        else:
            start = self.now + self.rng.randint(1, MAX_GAP)
        while start in {s for s, _ in taken}:
            start += 1
        return start

    def price(self, flavor: str) -> str:
        start = self._version_start(self.record.prices[flavor])
        hourly = Decimal(self.rng.randint(1000, 2_000_000)).scaleb(-6)
        billing.add_price(self.operator, product=self.products[flavor], region="default", currency="USD",
                          hourly=hourly, effective_from=moment_of(start))
        self.record.prices[flavor].append((start, Fraction(hourly)))
        return f"{flavor} {hourly}/h from {moment_of(start):%Y-%m-%d %H:%M:%S}"

    def tenant_price(self, target: tuple[int, str]) -> str:
        tenant, flavor = target
        versions = self.record.tenant_prices[(tenant, flavor)]
        start = self._version_start(versions)
        way = self.rng.choice(["fixed", "discount", "list"])
        if way == "fixed":
            value = Decimal(self.rng.randint(0, 1_000_000)).scaleb(-6)
            billing.set_tenant_price(self.operator, tenant=self.owners[tenant].tenant, product=self.products[flavor],
                                     fixed_hourly=value, effective_from=moment_of(start))
        elif way == "discount":
            value = Decimal(self.rng.randint(0, 10_000)).scaleb(-2)
            billing.set_tenant_price(self.operator, tenant=self.owners[tenant].tenant, product=self.products[flavor],
                                     discount_percent=value, effective_from=moment_of(start))
        else:
            value = None
            billing.set_tenant_price(self.operator, tenant=self.owners[tenant].tenant, product=self.products[flavor],
                                     effective_from=moment_of(start))
        versions.append((start, (way, None if value is None else Fraction(value))))
        return f"tenant {tenant} {flavor} {way} {value or ''} from {moment_of(start):%Y-%m-%d %H:%M:%S}"

    def settle(self, _target, up_to: int | None = None) -> str:
        self.run_tasks(settle_usage, up_to=moment_of(self.now if up_to is None else up_to))
        return f"up to {moment_of(self.now if up_to is None else up_to):%Y-%m-%d %H:%M:%S}"

    def late_settle(self, target) -> str:
        """A worker that is behind: settles up to a moment already past."""
        return self.settle(target, up_to=max(second_of(START), self.now - self.rng.randint(0, MAX_GAP)))

    # checks

    def check_statuses(self) -> None:
        """The services did what the story thinks they did (a refusal or an error would make
        every later event wrong)."""
        actual = dict(Instance.objects.filter(pk__in=[vm.pk for vm in self.vms]).values_list("pk", "status"))
        wrong = [f"{vm.public_id}: {actual[vm.pk]}, the story says {vm.status}" for vm in self.vms
                 if actual[vm.pk] != vm.status]
        assert not wrong, f"{wrong} after:\n" + "\n".join(self.log[-10:])

    def explain(self, expected: dict, ledger: dict) -> str:
        """The first differences, with the events of the instances concerned."""
        keys = sorted(key for key in expected.keys() | ledger.keys() if expected.get(key) != ledger.get(key))
        lines = [f"{len(keys)} (tenant, instance, product, month) differ:"]
        for key in keys[:8]:
            lines.append(f"  {key}: calculated {expected.get(key)}, ledger {ledger.get(key)}")
        for instance in list(dict.fromkeys(key[1] for key in keys))[:3]:
            lines.append(f"events of {instance}:")
            lines += [f"  {line}" for line in self.log if instance in line]
            lines += [f"  run {run[2]} {moment_of(run[3])} – {moment_of(run[4])}" for run in self.record.runs
                      if run[1] == instance]
        return "\n".join(lines)


def test_a_thousand_random_lifecycle_events_are_charged_to_the_cent(clock, operator, a_owner, b_owner, actor,
                                                                   run_tasks):
    # Given two funded tenants, four flavors each with a product and a price, a recycle bin
    clock.now = START
    inventory = make_inventory()
    PlatformSettings.objects.update_or_create(pk=1, defaults={"recycle_bin_hours": RECYCLE_BIN_HOURS})
    products = {}
    for name, (vcpus, ram_mb, hourly) in FLAVORS.items():
        if name != inventory["flavor"].name:
            compute.create_flavor(operator, name=name, vcpus=vcpus, ram_mb=ram_mb)
        products[name] = billing.create_product(operator, code=product_code(name), name=name, unit=Product.HOUR,
                                                meter="instance.flavor")
        billing.add_price(operator, product=products[name], region="default", currency="USD", hourly=hourly)
    owners = {}
    for membership in (a_owner, b_owner):
        billing.open_wallet(operator, tenant=membership.tenant, currency="USD")
        billing.recharge(operator, tenant=membership.tenant, amount=RECHARGE, currency="USD",
                         idempotency_key=f"funds-{membership.tenant.public_id}")
        owners[membership.tenant.pk] = actor(membership)
    story = Story(random.Random(SEED), clock, run_tasks, operator, owners, products, inventory["image"])
    for name, (_vcpus, _ram_mb, hourly) in FLAVORS.items():
        story.record.prices[name].append((story.now, Fraction(hourly)))

    # When 1,000 random events happen and everything is settled at the end
    for number in range(1, EVENTS + 1):
        story.step(number)
    run_tasks(settle_usage, up_to=clock.now)
    written = Transaction.objects.count()

    # Then the ledger holds the calculated charges to the cent, and the wallets their sum
    expected, ledger = expected_charges(story.record, story.now), ledger_charges()
    assert ledger == expected, story.explain(expected, ledger)
    months = {key[3] for key in expected}
    assert len(months) >= 2 and len(story.record.runs) >= 100  # the story crossed a month and did things
    for tenant in owners:
        wallet = Wallet.objects.get(tenant_id=tenant)
        spent = sum(amount for key, amount in expected.items() if key[0] == tenant)
        assert wallet.balance == RECHARGE - spent
        assert sum(Transaction.objects.filter(wallet=wallet).values_list("amount", flat=True)) == wallet.balance
    # Nothing was charged and given back: usage only ever grew after it was settled.
    assert not Transaction.objects.filter(kind=Transaction.REFUND).exists()
    # And settling again charges nothing.
    run_tasks(settle_usage, up_to=clock.now)
    assert Transaction.objects.count() == written
