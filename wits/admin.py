"""Admin for wallets, reservations, the ledger and top-up orders.

Guarantees:
- Nothing here edits a money row: wallets, reservations, ledger entries, orders and payment
  events cannot be added, changed or deleted through the admin (view only).
- Wits move only through two audited paths: the wallet action "Grant / adjust Wits" (an
  intermediate form with an amount and a required note → `ledger.grant`, kind grant or
  adjustment by sign, actor "admin:<email>") and the order action "Confirm payment and credit"
  (bank-transfer orders only → `ledger.credit_order`, exactly once).
- Both need the model's change permission (superusers have it), although no field is editable.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from wits import ledger, pricing, topups
from wits.forms import GrantForm
from wits.models import LedgerEntry, PaymentEvent, Reservation, TopupOrder, Wallet


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and detail pages only: money rows change through `wits.ledger`, never a form."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = (
        "email",
        "available",
        "reserved",
        "lifetime_used",
        "credited",
        "updated_at",
        "entries_link",
    )
    list_select_related = ("user",)
    search_fields = ("user__email",)
    ordering = ("-updated_at",)
    actions = ("grant_wits",)

    @admin.display(description=_("user"), ordering="user__email")
    def email(self, wallet: Wallet) -> str:
        return wallet.user.email

    @admin.display(description=_("ledger"))
    def entries_link(self, wallet: Wallet) -> str:
        url = (
            reverse("admin:wits_ledgerentry_changelist") + "?" + urlencode({"q": wallet.user.email})
        )
        return format_html('<a href="{}">{}</a>', url, _("entries"))

    def has_grant_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("wits.change_wallet")

    @admin.action(description=_("Grant / adjust Wits"), permissions=["grant"])
    def grant_wits(self, request: HttpRequest, queryset: QuerySet[Wallet]) -> HttpResponse | None:
        """First call: the form. Second (with `apply`): grant to every selected wallet or none."""
        form = GrantForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                entries = topups.admin_grant(
                    user_ids=list(queryset.values_list("user_id", flat=True)),
                    amount=form.cleaned_data["amount"],
                    note=form.cleaned_data["note"],
                    actor=f"admin:{request.user.email}",
                )
            except ledger.LedgerError as exc:
                form.add_error(None, str(exc))
            else:
                message = ngettext(
                    "Wrote %(count)d ledger entry.", "Wrote %(count)d ledger entries.", len(entries)
                ) % {"count": len(entries)}
                self.message_user(request, message, messages.SUCCESS)
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Grant / adjust Wits"),
            "opts": self.model._meta,
            "form": form,
            "wallets": queryset.select_related("user").order_by("user__email"),
            "action_name": "grant_wits",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(
            request, "wits/admin_grant.html", context, status=400 if form.errors else 200
        )


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = (
        "request_id",
        "email",
        "amount",
        "state",
        "charged",
        "loss",
        "model",
        "provider",
        "created_at",
        "settled_at",
    )
    list_filter = ("state", "settle_reason", "created_at")
    list_select_related = ("wallet__user",)
    search_fields = ("=request_id", "wallet__user__email")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)

    @admin.display(description=_("user"), ordering="wallet__user__email")
    def email(self, reservation: Reservation) -> str:
        return reservation.wallet.user.email


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "email",
        "kind",
        "amount",
        "available_after",
        "reserved_after",
        "used_after",
        "actor",
        "note",
        "request_id",
        "order_reference",
    )
    list_filter = ("kind", "created_at")
    list_select_related = ("wallet__user", "reservation", "order")
    search_fields = ("wallet__user__email", "=reservation__request_id", "=order__reference")
    date_hierarchy = "created_at"
    ordering = ("-id",)

    @admin.display(description=_("user"), ordering="wallet__user__email")
    def email(self, entry: LedgerEntry) -> str:
        return entry.wallet.user.email

    @admin.display(description=_("request id"))
    def request_id(self, entry: LedgerEntry) -> str:
        return entry.reservation.request_id if entry.reservation else "—"

    @admin.display(description=_("order"))
    def order_reference(self, entry: LedgerEntry) -> str:
        return entry.order.reference if entry.order else "—"


@admin.register(TopupOrder)
class TopupOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "reference",
        "email",
        "wits",
        "price_label",
        "provider",
        "state",
        "external_id",
        "created_at",
        "credited_at",
    )
    list_filter = ("state", "provider", "created_at")
    list_select_related = ("user",)
    search_fields = ("=reference", "user__email", "=external_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    actions = ("confirm_and_credit", "cancel_orders")

    @admin.display(description=_("user"), ordering="user__email")
    def email(self, order: TopupOrder) -> str:
        return order.user.email

    @admin.display(description=_("price"), ordering="price")
    def price_label(self, order: TopupOrder) -> str:
        return pricing.format_money(order.price, order.currency)

    def has_settle_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("wits.change_topuporder")

    @admin.action(
        description=_("Confirm payment and credit (bank transfer)"), permissions=["settle"]
    )
    def confirm_and_credit(self, request: HttpRequest, queryset: QuerySet[TopupOrder]) -> None:
        actor = f"admin:{request.user.email}"
        credited = skipped = 0
        for order_id in queryset.values_list("id", flat=True):
            if topups.confirm_bank_payment(order_id=order_id, actor=actor):
                credited += 1
            else:
                skipped += 1
        self._report(request, credited, skipped, _("credited"))

    @admin.action(description=_("Cancel"), permissions=["settle"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[TopupOrder]) -> None:
        canceled = skipped = 0
        for order_id in queryset.values_list("id", flat=True):
            if topups.cancel_order(order_id=order_id):
                canceled += 1
            else:
                skipped += 1
        self._report(request, canceled, skipped, _("canceled"))

    def _report(self, request: HttpRequest, done: int, skipped: int, verb: str) -> None:
        self.message_user(
            request,
            _("%(done)d order(s) %(verb)s.") % {"done": done, "verb": verb},
            messages.SUCCESS if done else messages.INFO,
        )
        if skipped:
            self.message_user(
                request,
                _(
                    "%(skipped)d order(s) left unchanged: only pending orders (and, to credit, "
                    "only bank-transfer orders) qualify."
                )
                % {"skipped": skipped},
                messages.WARNING,
            )


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "provider", "kind", "order", "received_at")
    list_filter = ("provider", "kind", "received_at")
    list_select_related = ("order",)
    search_fields = ("=event_id", "=order__reference")
    ordering = ("-received_at",)
