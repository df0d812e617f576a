"""Template helpers of the billing pages: money in its currency's places, and the banner of
unread billing notices the base layout shows on every console page."""

from decimal import Decimal

from django import template

from apps.billing import money, notices

register = template.Library()

BANNER_MAX = 3


@register.filter(name="money")
def money_filter(amount, currency: str) -> str:
    """`amount` with `currency`'s decimal places (a ledger keeps 4): `{{ t.amount|money:t.currency }}`."""
    if amount is None or amount == "":
        return ""
    return f"{Decimal(amount):.{money.places(currency)}f}"


@register.inclusion_tag("billing/_notices.html", takes_context=True)
def billing_notices(context) -> dict:
    """The newest unread notices of the current tenant (members who may read its billing)."""
    request, actor = context.get("request"), context.get("actor")
    if request is None or actor is None or actor.tenant is None or not actor.allows("billing", "view"):
        return {"notices": []}
    unread = notices.unread_for(actor).filter(tenant=actor.tenant)
    return {"notices": unread[:BANNER_MAX], "more": max(unread.count() - BANNER_MAX, 0),
            "next": request.get_full_path(), "csrf_token": context.get("csrf_token")}
