"""/v1/webhooks: the account's webhook URL, its events, and a test event (automation|full).

The signing secret is never listed; it appears in exactly one API response, the PUT that
generated it (the account's first URL), sent with Cache-Control: no-store.
"""

from __future__ import annotations

import json

from rest_framework.request import Request
from rest_framework.response import Response

from accounts import webhooks
from accounts.models import WebhookEvent
from clawwits.api import AUTOMATION, ApiView
from clawwits.errors import ApiError, Code

RECENT_EVENTS = 20


def _iso(value: object) -> str | None:
    return value.isoformat() if value is not None else None


def event_json(event: WebhookEvent, *, payload: bool = False) -> dict:
    body = {
        "id": event.id,
        "object": "webhook_event",
        "type": event.type,
        "state": event.state,
        "attempts": event.attempts,
        "last_status": event.last_status,
        "last_error": event.last_error or None,
        "created_at": _iso(event.created_at),
        "last_attempt_at": _iso(event.last_attempt_at),
        "next_attempt_at": _iso(event.next_attempt_at) if event.state == "pending" else None,
        "delivered_at": _iso(event.delivered_at),
    }
    if payload:
        body["payload"] = json.loads(event.body)
    return body


def _endpoint_json(current: webhooks.WebhookSettings, events: list[WebhookEvent]) -> dict:
    return {
        "object": "webhook_endpoint",
        "url": current.url,
        "secret_set": bool(current.secret),
        "low_balance_threshold": current.low_balance_threshold,
        "recent_events": [event_json(event) for event in events],
    }


class WebhooksView(ApiView):
    required_scopes = AUTOMATION

    def get(self, request: Request) -> Response:
        user_id = self.principal(request).user_id
        current = webhooks.webhook_settings(user_id=user_id)
        events = webhooks.recent_events(user_id=user_id, limit=RECENT_EVENTS)
        return Response(_endpoint_json(current, events))

    def put(self, request: Request) -> Response:
        user_id = self.principal(request).user_id
        data = request.data
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            raise ApiError(Code.INVALID_REQUEST, 'Send {"url": "https://..."} ("" clears it).')
        current = webhooks.update_settings(
            user_id=user_id,
            url=data["url"],
            low_balance_threshold=data.get("low_balance_threshold"),
        )
        body = _endpoint_json(current, webhooks.recent_events(user_id=user_id, limit=RECENT_EVENTS))
        if current.secret_created:
            body["secret"] = current.secret
        response = Response(body)
        response["Cache-Control"] = "no-store"
        return response


class WebhookTestView(ApiView):
    required_scopes = AUTOMATION

    def post(self, request: Request) -> Response:
        event = webhooks.send_test_event(user_id=self.principal(request).user_id)
        return Response(event_json(event, payload=True), status=202)


class WebhookEventView(ApiView):
    required_scopes = AUTOMATION

    def get(self, request: Request, event_id: str) -> Response:
        event = webhooks.get_event(user_id=self.principal(request).user_id, event_id=event_id)
        return Response(event_json(event, payload=True))
