"""Wits API: balance (any valid credential) and the caller's own ledger entries (data|full)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from clawwits.api import ANY, DATA, MAX_PAGE, ApiView, int_param
from wits import ledger
from wits.models import LedgerEntry


class BalanceView(ApiView):
    required_scopes = ANY

    def get(self, request: Request) -> Response:
        principal = self.principal(request)
        bal = ledger.balance(user_id=principal.user_id)
        return Response(
            {
                "userId": str(principal.user_id),
                "available": bal.available,
                "reserved": bal.reserved,
                "lifetimeUsed": bal.lifetime_used,
            }
        )


def entry_json(entry: LedgerEntry) -> dict:
    return {
        "id": entry.id,
        "object": "wits.transaction",
        "kind": entry.kind,
        "amount": entry.amount,
        "available_delta": entry.available_delta,
        "reserved_delta": entry.reserved_delta,
        "used_delta": entry.used_delta,
        "available_after": entry.available_after,
        "reserved_after": entry.reserved_after,
        "lifetime_used_after": entry.used_after,
        "reservation_id": str(entry.reservation_id) if entry.reservation_id else None,
        "order_id": str(entry.order_id) if entry.order_id else None,
        "note": entry.note,
        "created_at": entry.created_at.isoformat(),
    }


class TransactionsView(ApiView):
    """Newest first; page with `limit` and `after` (the last id of the previous page)."""

    required_scopes = DATA

    def get(self, request: Request) -> Response:
        principal = self.principal(request)
        limit = int_param(request, "limit", default=20, minimum=1, maximum=MAX_PAGE)
        after = int_param(request, "after", default=0, minimum=0)
        rows = LedgerEntry.objects.filter(wallet_id=principal.user_id).order_by("-id")
        if after:
            rows = rows.filter(id__lt=after)
        page = list(rows[: limit + 1])
        has_more = len(page) > limit
        page = page[:limit]
        return Response(
            {
                "object": "list",
                "data": [entry_json(e) for e in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": has_more,
            }
        )
