"""Console forms of the billing pages: shapes only; the services check money and rights."""

import uuid

from django import forms


def _key() -> str:
    # One key per form shown: sending the same form twice pays or renews once.
    return f"console:{uuid.uuid4()}"


class RechargeForm(forms.Form):
    amount = forms.DecimalField(max_digits=16, decimal_places=4, min_value=0, help_text="In your wallet's currency.")
    idempotency_key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, initial={"idempotency_key": _key()}, **kwargs)


class ThresholdForm(forms.Form):
    threshold = forms.DecimalField(label="Warn me below", max_digits=16, decimal_places=4, min_value=0)


class RenewForm(forms.Form):
    periods = forms.IntegerField(min_value=1, max_value=36, initial=1, label="Terms")
    idempotency_key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, initial={"idempotency_key": _key(), "periods": 1}, **kwargs)


class WindowForm(forms.Form):
    """A window of whole days (UTC); empty: this month up to today."""

    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))
