"""/playground: the page (login, models, CSRF token) and the gateway call its script makes with
the cookie session — refused without the page's CSRF token before anything is reserved,
streamed and billed like an API call with it."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from gateway import catalog
from gateway.models import AiModel, Provider, Route, UsageRecord
from gateway.providers import local
from wits import ledger
from wits.models import LedgerEntry, Reservation

pytestmark = pytest.mark.django_db

SANDBOX = "clawwits-sandbox"
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Say hello to Hanoi"},
]
STREAM_BODY = {
    "model": SANDBOX,
    "messages": MESSAGES,
    "stream": True,
    "stream_options": {"include_usage": True},
}


@pytest.fixture
def sandbox() -> str:
    """The built-in local chat model as the migration seeds it (1 Wit in, 2 Wits out)."""
    provider, _ = Provider.objects.get_or_create(
        name="local", defaults={"kind": "local", "base_url": ""}
    )
    model, created = AiModel.objects.get_or_create(
        name=SANDBOX,
        defaults={
            "kind": "chat",
            "input_price": Decimal("1"),
            "output_price": Decimal("2"),
            "max_output_tokens": 4096,
            "auto_rank": 1000,
        },
    )
    if created:
        Route.objects.create(model=model, provider=provider, upstream_model=SANDBOX)
    catalog.invalidate()
    yield SANDBOX
    catalog.invalidate()


def _cookie_client(user) -> APIClient:
    """A browser: the JWT session cookies, and CSRF checks on as in production."""
    client = APIClient(enforce_csrf_checks=True)
    refresh = RefreshToken.for_user(user)
    client.cookies[settings.JWT_ACCESS_COOKIE] = str(refresh.access_token)
    client.cookies[settings.JWT_REFRESH_COOKIE] = str(refresh)
    return client


def _page_token(client: APIClient) -> str:
    page = client.get("/playground").content.decode()
    return re.search(r'data-csrf="([^"]+)"', page).group(1)


def _sse_chunks(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    datas = [line.removeprefix("data: ") for line in body.split("\n") if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    return [json.loads(data) for data in datas[:-1]]


def _expected_reply() -> tuple[str, dict]:
    """What the sandbox answers these messages with its default cap (it is deterministic)."""
    reply = local.chat({"model": SANDBOX, "messages": MESSAGES, "max_tokens": 4096}, model=SANDBOX)
    return reply["choices"][0]["message"]["content"], reply["usage"]


def _options(body: str) -> list[tuple[str, bool]]:
    select = body[body.index('<select name="model"') : body.index("</select>")]
    return [
        (value, selected == " selected")
        for value, selected in re.findall(r'<option value="([^"]+)"[^>]*?( selected)?>', select)
    ]


# --- the page --------------------------------------------------------------------------------


def test_playground_needs_a_login():
    response = APIClient().get("/playground")

    assert (response.status_code, response["Location"]) == (302, "/login?next=/playground")


def test_playground_offers_the_chat_models_that_v1_models_lists(make_user, sandbox):
    # Given a second chat model and an embedding model in the catalogue
    local_provider = Provider.objects.get(name="local")
    other = AiModel.objects.create(name="aaa-chat", kind="chat", max_output_tokens=512)
    Route.objects.create(model=other, provider=local_provider, upstream_model=SANDBOX)
    embed = AiModel.objects.create(name="zzz-embed", kind="embedding")
    Route.objects.create(model=embed, provider=local_provider, upstream_model="clawwits-embed")
    AiModel.objects.create(name="no-route-chat", kind="chat")
    catalog.invalidate()
    client = _cookie_client(make_user(wits=1_234_567))

    # When the page is asked for
    response = client.get("/playground")

    # Then it offers exactly the chat models /v1/models lists, the auto choice selected
    body = response.content.decode()
    listed = client.get("/v1/models").json()["data"]
    chat_ids = [m["id"] for m in listed if m["x_clawwits"]["kind"] == "chat"]
    assert response.status_code == 200
    assert chat_ids == ["aaa-chat", SANDBOX]
    assert _options(body) == [("aaa-chat", False), (SANDBOX, True)]
    assert '<option value="aaa-chat" data-max-tokens="512">' in body
    assert '<strong id="available">1,234,567</strong> Wits available' in body
    assert 'data-endpoint="/v1/chat/completions"' in body
    assert re.search(r'data-csrf="[A-Za-z0-9]{64}"', body)
    assert '<script src="/static/js/playground.js" defer></script>' in body
    assert "no-cache" in response["Cache-Control"]


def test_playground_renders_in_vietnamese(make_user, sandbox):
    client = _cookie_client(make_user(wits=1_234_567))

    body = client.get("/playground", HTTP_ACCEPT_LANGUAGE="vi").content.decode()

    assert "<h1>Thử nghiệm</h1>" in body
    assert '<strong id="available">1.234.567</strong> Wits khả dụng' in body
    assert 'data-insufficient-wits="Không đủ Wits cho yêu cầu này."' in body
    assert 'data-retry="Hãy thử lại sau {seconds} giây."' in body


def test_playground_says_so_when_no_chat_model_is_available(make_user, sandbox):
    AiModel.objects.filter(kind="chat").update(enabled=False)
    catalog.invalidate()

    body = _cookie_client(make_user()).get("/playground").content.decode()

    assert 'id="playground-form"' not in body
    assert "No chat model is available right now. Try again later." in body


# --- the call the page makes -----------------------------------------------------------------


def test_cookie_call_without_the_csrf_token_is_403_json_and_reserves_nothing(make_user, sandbox):
    # Given a logged-in browser that has the page (and so the CSRF cookie), 1,000,000 Wits
    user = make_user(tier="max", wits=1_000_000)
    client = _cookie_client(user)
    client.get("/playground")
    entries_before = list(LedgerEntry.objects.values_list("id", flat=True))

    # When it posts to the gateway without the X-CSRFToken header
    response = client.post("/v1/chat/completions", STREAM_BODY, format="json")

    # Then: 403 in the API's JSON envelope, and nothing was reserved, charged or logged
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {
            "code": "forbidden",
            "type": "permission_error",
            "message": "You are not allowed to do this.",
            "param": None,
        }
    }
    assert Reservation.objects.count() == 0
    assert UsageRecord.objects.count() == 0
    assert list(LedgerEntry.objects.values_list("id", flat=True)) == entries_before
    assert ledger.balance(user_id=user.id) == ledger.Balance(1_000_000, 0, 0)


def test_cookie_call_with_a_token_from_another_site_is_refused(make_user, sandbox):
    user = make_user(tier="max", wits=1_000_000)
    client = _cookie_client(user)
    token = _page_token(client)

    response = client.post(
        "/v1/chat/completions",
        STREAM_BODY,
        format="json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="https://evil.example.com",
    )

    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
    assert Reservation.objects.count() == 0


def test_cookie_call_with_the_pages_csrf_token_streams_and_is_billed(make_user, sandbox):
    # Given a logged-in browser holding the playground page's CSRF token
    user = make_user(tier="max", wits=1_000_000)
    client = _cookie_client(user)
    token = _page_token(client)
    text, usage = _expected_reply()
    charge = usage["prompt_tokens"] * 1 + usage["completion_tokens"] * 2

    # When the page's script posts the streaming request with it
    response = client.post(
        "/v1/chat/completions", STREAM_BODY, format="json", HTTP_X_CSRFTOKEN=token
    )

    # Then the answer streams as OpenAI chunks, the last one carrying usage and the charge
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    chunks = _sse_chunks(response)
    streamed = "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )
    final = chunks[-1]
    record = UsageRecord.objects.get()
    assert streamed == text
    assert final["choices"] == []
    assert final["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert final["usage"]["completion_tokens"] == usage["completion_tokens"]
    assert final["x_clawwits"]["wits"] == charge
    assert final["x_clawwits"]["provider"] == "local"
    assert final["x_clawwits"]["request_id"] == record.request_id

    # And it is billed like an API call: one committed reservation, one browser-session record
    assert Reservation.objects.get().charged == charge
    assert (record.api_key_id, record.stream, record.wits, record.status) == (
        None,
        True,
        charge,
        200,
    )
    assert ledger.balance(user_id=user.id) == ledger.Balance(1_000_000 - charge, 0, charge)
