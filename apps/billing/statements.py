"""A tenant's monthly statement: the balance the month opened with (the balance after the last
ledger entry before it), every entry of the month, the balance it closed with and the totals by
kind. The ledger is append-only and each entry carries the balance after it, so a statement of
a past month never changes and its closing is the wallet's balance at the month's end. The
console page, the API's JSON and the CSV download all render this one piece of data."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.http import HttpResponse
from django.utils import timezone

from apps.billing import money
from apps.billing.models import Transaction
from apps.billing.selectors import get_wallet, list_transactions
from apps.core.exceptions import NotFound

if TYPE_CHECKING:
    from apps.core.actor import Actor
    from apps.tenants.models import Tenant

CSV_COLUMNS = ["date", "entry", "kind", "amount", "balance_after", "currency", "resource", "product", "period",
               "reason"]


@dataclass(frozen=True)
class Statement:
    tenant: Tenant
    month: date  # its first day
    currency: str
    opening: Decimal
    closing: Decimal
    entries: list[Transaction]
    totals: dict[str, Decimal]  # per kind with entries, in the order of Transaction.KIND_CHOICES

    @property
    def change(self) -> Decimal:
        return self.closing - self.opening


def parse_month(value: str) -> date:
    """`YYYY-MM` → the month's first day. Anything else names no statement (404)."""
    try:
        month = datetime.strptime(value, "%Y-%m").date()
    except (TypeError, ValueError):
        raise NotFound(f"No statement {value}.", fields={"month": ["YYYY-MM."]}) from None
    return month


def _month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months(actor: Actor, *, tenant: Tenant) -> list[date]:
    """The months with a statement, newest first: from the wallet's first entry to this month."""
    get_wallet(actor, tenant=tenant)
    first = list_transactions(actor).filter(tenant=tenant).order_by("created_at", "id").first()
    if first is None:
        return []
    month, last = first.created_at.astimezone(UTC).date().replace(day=1), timezone.now().astimezone(UTC).date()
    found = []
    while month <= last:
        found.append(month)
        month = _next_month(month)
    return found[::-1]


def monthly_statement(actor: Actor, *, tenant: Tenant, month: date) -> Statement:
    """The statement of `tenant` for `month` (a month the wallet may have had no entry in: its
    opening and closing are then the same). A month in the future has no statement (404)."""
    wallet = get_wallet(actor, tenant=tenant)
    month = month.replace(day=1)
    if month > timezone.now().astimezone(UTC).date():
        raise NotFound(f"No statement for {month:%Y-%m} yet.")
    start, end = _month_start(month), _month_start(_next_month(month))
    ledger = list_transactions(actor).filter(tenant=tenant)
    before = ledger.filter(created_at__lt=start).order_by("-created_at", "-id").first()
    entries = list(ledger.filter(created_at__gte=start, created_at__lt=end).order_by("created_at", "id"))
    opening = before.balance_after if before is not None else Decimal(0)
    closing = entries[-1].balance_after if entries else opening
    totals = {kind: sum((e.amount for e in entries if e.kind == kind), Decimal(0))
              for kind, _ in Transaction.KIND_CHOICES if any(e.kind == kind for e in entries)}
    places = Decimal(1).scaleb(-money.places(wallet.currency))
    return Statement(tenant, month, wallet.currency, opening.quantize(places), closing.quantize(places), entries,
                     {kind: total.quantize(places) for kind, total in totals.items()})


def statement_csv(statement: Statement) -> str:
    """The statement as CSV: the opening balance, one row per entry, the closing balance."""
    places = Decimal(1).scaleb(-money.places(statement.currency))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerow([f"{statement.month:%Y-%m-%d}", "", "opening balance", "", statement.opening,
                     statement.currency, "", "", "", ""])
    for e in statement.entries:
        writer.writerow([e.created_at.astimezone(UTC).isoformat(), e.public_id, e.kind, e.amount.quantize(places),
                         e.balance_after.quantize(places), e.currency, e.resource_id,
                         e.product.code if e.product else "", e.period.strftime("%Y-%m") if e.period else "",
                         e.reason])
    writer.writerow([f"{_next_month(statement.month):%Y-%m-%d}", "", "closing balance", "", statement.closing,
                     statement.currency, "", "", "", ""])
    return out.getvalue()


def csv_response(statement: Statement) -> HttpResponse:
    """The CSV as a download named after the month (the console's link and the API's `.csv`)."""
    response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="statement-{statement.month:%Y-%m}.csv"'
    return response
