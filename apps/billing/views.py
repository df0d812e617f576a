"""Console pages of billing: overview, recharge, transactions, orders, consumption, subscriptions,
price list, statements, and marking a notice read. Thin: selectors read, services write."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from apps.billing import charts, forms, notices, payment_services, selectors, services, statements
from apps.billing import subscription_services
from apps.billing.api import filters
from apps.billing.models import Notice
from apps.core.exceptions import DomainError, NotFound
from apps.core.views import ConsoleView, error_status

RECENT = 10
GATEWAY_MISSING = "The payment gateway is not configured; an operator can credit your wallet."


def _window(data) -> tuple[forms.WindowForm, tuple]:
    """The page's window of days and the form that chose it; a wrong one falls back to this month."""
    form = forms.WindowForm(data)
    if form.is_valid():
        try:
            return form, selectors.date_window(form.cleaned_data["since"], form.cleaned_data["until"])
        except DomainError as exc:
            for field, errors in exc.fields.items():
                for error in errors:
                    form.add_error({"from": "since", "to": "until"}.get(field), error)
    return form, selectors.date_window()


def _chart(usage, title: str, chart_id: str):
    return charts.bar_chart(usage.rows, title=title, unit=usage.currency, chart_id=chart_id)


class OverviewView(ConsoleView):
    template_name = "billing/overview.html"

    def get(self, request, form=None, status=200):
        wallet = selectors.get_wallet(self.actor)
        recent = selectors.list_transactions(self.actor).filter(tenant=self.actor.tenant)[:RECENT]
        start, end = selectors.date_window()
        by_day = selectors.consumption(self.actor, tenant=self.actor.tenant, start=start, end=end, group="day")
        return self.render({
            "wallet": wallet, "recent": recent,
            "usage": by_day, "chart": _chart(by_day, "This month's consumption by day", "consumption-by-day"),
            "form": form or forms.ThresholdForm(initial={"threshold": wallet.low_balance_threshold}),
            "can_change": self.actor.allows("billing", "change"),
        }, status=status)

    def post(self, request):
        """Set the low-balance threshold."""
        form = forms.ThresholdForm(request.POST)
        if not form.is_valid():
            return self.get(request, form=form, status=400)
        ok, result = self.call(form, services.set_low_balance_threshold, tenant=self.actor.tenant,
                               threshold=form.cleaned_data["threshold"], success="Low-balance threshold saved.")
        if not ok:
            return self.get(request, form=form, status=error_status(result))
        return redirect("billing-overview")


class RechargeView(ConsoleView):
    """Pay into the wallet through the payment gateway's checkout; back here with
    `?payment=<id>`, the page asks the gateway how it went."""

    template_name = "billing/recharge.html"

    def get(self, request, form=None, status=200):
        payment = None
        if request.GET.get("payment"):
            payment = selectors.get_payment(self.actor, request.GET["payment"])
            ok, result = self.call(None, payment_services.refresh_payment, payment=payment)
            payment = result if ok else payment
        return self.render({
            "wallet": selectors.get_wallet(self.actor), "form": form or forms.RechargeForm(), "payment": payment,
            "configured": payment_services.gateway_configured(), "gateway_missing": GATEWAY_MISSING,
            "payments": selectors.list_payments(self.actor).filter(tenant=self.actor.tenant)[:RECENT],
        }, status=status)

    def post(self, request):
        form = forms.RechargeForm(request.POST)
        if not payment_services.gateway_configured():  # the form is disabled: a stale page or a script
            return self.get(request, form=form, status=payment_services.GatewayNotConfigured.status)
        if not form.is_valid():
            return self.get(request, form=form, status=400)
        ok, result = self.call(form, payment_services.start_recharge, amount=form.cleaned_data["amount"],
                               currency=selectors.get_wallet(self.actor).currency,
                               idempotency_key=form.cleaned_data["idempotency_key"],
                               return_url=request.build_absolute_uri(request.path))
        if not ok:
            return self.get(request, form=form, status=error_status(result))
        return HttpResponseRedirect(result.checkout_url)


class TransactionListView(ConsoleView):
    template_name = "billing/transaction_list.html"

    def get(self, request):
        filterset = filters.TransactionFilter(request.GET, queryset=selectors.list_transactions(self.actor))
        return self.render({"filter": filterset, "page": self.paginate(filterset.qs)})


class OrderListView(ConsoleView):
    template_name = "billing/order_list.html"

    def get(self, request):
        filterset = filters.OrderFilter(request.GET, queryset=selectors.list_orders(self.actor))
        return self.render({"filter": filterset, "page": self.paginate(filterset.qs)})


class OrderDetailView(ConsoleView):
    template_name = "billing/order_detail.html"

    def get(self, request, public_id):
        return self.render({"order": selectors.get_order(self.actor, public_id)})


class ConsumptionView(ConsoleView):
    template_name = "billing/consumption.html"

    def get(self, request):
        form, (start, end) = _window(request.GET)
        tenant = self.actor.tenant
        by_resource = selectors.consumption(self.actor, tenant=tenant, start=start, end=end, group="resource")
        by_day = selectors.consumption(self.actor, tenant=tenant, start=start, end=end, group="day")
        by_product = selectors.consumption(self.actor, tenant=tenant, start=start, end=end, group="product")
        return self.render({
            "form": form, "by_resource": by_resource, "by_day": by_day, "by_product": by_product,
            "resource_chart": _chart(by_resource, "By resource", "consumption-by-resource"),
            "day_chart": _chart(by_day, "By day", "consumption-by-day"),
        })


class SubscriptionListView(ConsoleView):
    template_name = "billing/subscription_list.html"

    def get(self, request):
        filterset = filters.SubscriptionFilter(request.GET, queryset=selectors.list_subscriptions(self.actor))
        return self.render({"filter": filterset, "page": self.paginate(filterset.qs), "renew_form": forms.RenewForm(),
                            "can_change": self.actor.allows("billing", "change")})


class SubscriptionActionView(ConsoleView):
    """POST renew (terms, with the form's key) or auto-renew (on/off)."""

    def post(self, request, public_id, action):
        subscription = selectors.get_subscription(self.actor, public_id)
        if action == "renew":
            form = forms.RenewForm(request.POST)
            if form.is_valid():
                self.call(None, subscription_services.renew, subscription=subscription, success="Renewed.",
                          **form.cleaned_data)
            else:
                messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        elif action == "auto-renew":
            on = request.POST.get("auto_renew") == "on"
            self.call(None, subscription_services.set_auto_renew, subscription=subscription, auto_renew=on,
                      success=f"Auto-renewal turned {'on' if on else 'off'}.")
        else:
            raise NotFound(f"No action {action}.")
        return redirect("billing-subscriptions")


class PriceListView(ConsoleView):
    template_name = "billing/price_list.html"

    def get(self, request):
        return self.render({"prices": selectors.price_list(self.actor, tenant=self.actor.tenant),
                            "wallet": selectors.get_wallet(self.actor)})


class StatementListView(ConsoleView):
    template_name = "billing/statement_list.html"

    def get(self, request):
        return self.render({"months": statements.months(self.actor, tenant=self.actor.tenant)})


class StatementView(ConsoleView):
    """A printable statement; `.csv` downloads the same data."""

    template_name = "billing/statement.html"

    def get(self, request, month, csv=False):
        statement = statements.monthly_statement(self.actor, tenant=self.actor.tenant,
                                                 month=statements.parse_month(month))
        return statements.csv_response(statement) if csv else self.render({"statement": statement})


class NoticeReadView(ConsoleView):
    """Mark a billing notice read (the banner's button) and go back where the user was."""

    def post(self, request, notice_id):
        self.call(None, notices.mark_read, notice=Notice(pk=notice_id))
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = "/"
        return redirect(back)
