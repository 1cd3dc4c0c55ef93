"""Manual bank transfer: the buyer pays with the order's reference, staff confirm in admin.

Nothing is confirmed automatically: an order paid this way is credited only by an admin
action (`wits.topups.confirm_bank_payment`), which credits it exactly once.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from wits.payments import Checkout, OrderTicket


class BankTransfer:
    name = "bank"

    @property
    def label(self) -> str:
        return str(_("Bank transfer"))

    def enabled(self) -> bool:
        return bool(settings.BANK_TRANSFER_INSTRUCTIONS)

    def start(self, ticket: OrderTicket) -> Checkout:
        """No provider to call: the order page shows the instructions and the reference."""
        return Checkout(external_id="", redirect_url=None)


def instructions() -> str:
    return settings.BANK_TRANSFER_INSTRUCTIONS or ""


PROVIDER = BankTransfer()
