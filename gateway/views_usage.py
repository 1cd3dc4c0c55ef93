"""Usage API (scope data or full): the caller's request log and its totals.

`GET /v1/usage` — the request log, newest first: filters `key` (an API key id), `model`,
`status` (a code, `ok` or `error`), `request` (one request id), `from`, `to` (ISO dates or
datetimes; [from, to), a bare `to` date includes that day); pages of `limit` (1-100, default
20) after the cursor `after` (the previous page's `last_id`); `has_more` says whether another
page follows.

`GET /v1/usage/summary` — requests, prompt and completion tokens and Wits per `group_by`
(`day` (default; every day of the range, zeros included), `model` or `key`) over
`from`..`to` (default: the 30 days ending today), with the same filters, and their `total`.
"""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from clawwits.api import DATA, MAX_PAGE, ApiView, int_param
from gateway import usage

DEFAULT_LIMIT = 20


def record_json(row: usage.UsageRow) -> dict:
    return {
        "id": row.id,
        "object": "usage.record",
        "request_id": row.request_id,
        "created_at": row.created_at.isoformat(),
        "key_id": str(row.key_id) if row.key_id else None,
        "key_name": row.key_name,
        "endpoint": row.endpoint,
        "model": row.model,
        "provider": row.provider,
        "stream": row.stream,
        "cached": row.cached,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "wits": row.wits,
        "ttft_ms": row.ttft_ms,
        "latency_ms": row.latency_ms,
        "status": row.status,
        "error_code": row.error_code or None,
        "settle_reason": row.settle_reason or None,
    }


def totals_json(totals: usage.Totals) -> dict:
    return {
        "requests": totals.requests,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "wits": totals.wits,
    }


def group_json(group_by: str, group: usage.SummaryGroup) -> dict:
    if group_by == "day":
        head = {"day": group.day.isoformat()}
    elif group_by == "model":
        head = {"model": group.model}
    else:
        head = {"key_id": str(group.key_id) if group.key_id else None, "key_name": group.key_name}
    return {**head, **totals_json(group.totals)}


class UsageView(ApiView):
    required_scopes = DATA

    def get(self, request: Request) -> Response:
        query = usage.parse_query(request.query_params)
        limit = int_param(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_PAGE)
        after = usage.parse_after(request.query_params)
        page = usage.log_page(
            user_id=self.principal(request).user_id, query=query, limit=limit, after=after
        )
        return Response(
            {
                "object": "list",
                "data": [record_json(row) for row in page.rows],
                "first_id": page.rows[0].id if page.rows else None,
                "last_id": page.rows[-1].id if page.rows else None,
                "has_more": page.has_more,
            }
        )


class UsageSummaryView(ApiView):
    required_scopes = DATA

    def get(self, request: Request) -> Response:
        wanted = usage.parse_summary(request.query_params)
        result = usage.summary(user_id=self.principal(request).user_id, request=wanted)
        return Response(
            {
                "object": "usage.summary",
                "group_by": result.group_by,
                "from": result.since.isoformat(),
                "to": result.until.isoformat(),
                "data": [group_json(result.group_by, group) for group in result.groups],
                "total": totals_json(result.total),
            }
        )
