"""Forms of the wits pages and admin: a top-up order, and a staff grant of Wits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from wits import topups

CUSTOM = "custom"


class TopupForm(forms.Form):
    """A pack (or a custom amount within bounds) and one of the payment methods offered now.

    `cleaned_data["wits"]` is the amount to order.
    """

    pack = forms.ChoiceField(label=_("Amount"), widget=forms.RadioSelect)
    custom_wits = forms.IntegerField(
        label=_("Custom amount (Wits)"),
        required=False,
        min_value=topups.CUSTOM_MIN_WITS,
        max_value=topups.CUSTOM_MAX_WITS,
    )
    method = forms.ChoiceField(label=_("Payment method"), widget=forms.RadioSelect)

    def __init__(self, *args: Any, methods: Sequence[topups.Method], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pack"].choices = [(str(w), f"{w:,}") for w in topups.PACKS] + [
            (CUSTOM, _("Custom amount"))
        ]
        self.fields["method"].choices = [(m.name, m.label) for m in methods]
        self.initial.setdefault("pack", str(topups.PACKS[0]))
        if methods:
            self.initial.setdefault("method", methods[0].name)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        pack = data.get("pack")
        if pack == CUSTOM:
            if data.get("custom_wits") is None and "custom_wits" not in self.errors:
                self.add_error("custom_wits", _("Enter the number of Wits to buy."))
            data["wits"] = data.get("custom_wits")
        elif pack:
            data["wits"] = int(pack)
        return data


class GrantForm(forms.Form):
    """Staff grant (positive) or adjustment (negative) of Wits; the note is the audit trail."""

    amount = forms.IntegerField(
        label=_("Wits"),
        help_text=_("Positive to grant, negative to take back (an adjustment)."),
        min_value=-topups.CUSTOM_MAX_WITS,
        max_value=topups.CUSTOM_MAX_WITS,
    )
    note = forms.CharField(
        label=_("Note"),
        help_text=_("Why: kept on the ledger entry for the audit trail."),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError(_("Enter a non-zero amount."))
        return amount
