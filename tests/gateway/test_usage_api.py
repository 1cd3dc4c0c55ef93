"""GET /v1/usage and /v1/usage/summary: scope data or full, the caller's rows only, exact sums."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from apikeys import keys
from apikeys.models import ApiKey
from gateway.models import UsageRecord

pytestmark = pytest.mark.django_db

ROUTES = ["/v1/usage", "/v1/usage/summary"]
_ids = itertools.count(1)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _record(user, *, request_id: str | None = None, key: ApiKey | None = None, **fields):
    values = {
        "user_id": user.id,
        "api_key_id": key.id if key else None,
        "request_id": request_id or f"req_api_{next(_ids)}",
        "endpoint": "chat",
        "model": "gpt-fake",
        "provider": "fake-openai",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "wits": 50,
        "ttft_ms": 30,
        "latency_ms": 300,
        "status": 200,
        "settle_reason": "completed",
        "created_at": _at("2025-03-10T08:00:00"),
    }
    values.update(fields)
    return UsageRecord.objects.create(**values)


def _key_client(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def _key_row(plaintext: str) -> ApiKey:
    return ApiKey.objects.get(lookup=keys.parse(plaintext).lookup)


@pytest.fixture
def owner(make_user):
    return make_user(tier="max", wits=1000)


@pytest.fixture
def reader(owner, make_api_key) -> APIClient:
    return _key_client(make_api_key(owner, "data", name="reader"))


@pytest.fixture
def log(owner, make_api_key):
    """Five rows over three days: two keys (one of them `reader`'s sibling), two models."""
    laptop = _key_row(make_api_key(owner, "ai", name="laptop"))
    server = _key_row(make_api_key(owner, "ai", name="server"))
    return {
        "laptop": laptop,
        "server": server,
        "a": _record(owner, request_id="req_a", key=laptop, created_at=_at("2025-03-01T09:00")),
        "b": _record(
            owner,
            request_id="req_b",
            key=server,
            model="claude-fake",
            prompt_tokens=100,
            completion_tokens=7,
            wits=400,
            created_at=_at("2025-03-01T23:00"),
        ),
        "c": _record(
            owner,
            request_id="req_c",
            key=laptop,
            status=502,
            wits=0,
            prompt_tokens=0,
            completion_tokens=0,
            error_code="router_error",
            settle_reason="all_routes_failed",
            created_at=_at("2025-03-02T00:00"),
        ),
        "d": _record(owner, request_id="req_d", created_at=_at("2025-03-03T10:00")),
        "e": _record(
            owner,
            request_id="req_e",
            key=server,
            model="claude-fake",
            prompt_tokens=1,
            completion_tokens=2,
            wits=3,
            cached=True,
            created_at=_at("2025-03-03T11:00"),
        ),
    }


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("scopes", "status"),
    [("data", 200), ("full", 200), ("data,ai", 200), ("ai", 403), ("automation", 403)],
)
def test_usage_routes_need_scope_data_or_full(owner, make_api_key, path, scopes, status):
    client = _key_client(make_api_key(owner, scopes))

    response = client.get(path)

    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.parametrize("path", ROUTES)
def test_usage_routes_refuse_anonymous_callers(path):
    response = APIClient().get(path)

    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("path", ROUTES)
def test_a_browser_session_token_acts_as_full(owner, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(owner)}")

    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", ROUTES)
def test_usage_routes_answer_only_get(reader, path):
    response = reader.post(path, {}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")


# --- the log ---------------------------------------------------------------------------------


def test_log_returns_a_record_with_every_field(owner, reader, log):
    response = reader.get("/v1/usage", {"limit": 1})

    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [
            {
                "id": log["e"].id,
                "object": "usage.record",
                "request_id": "req_e",
                "created_at": "2025-03-03T11:00:00+00:00",
                "key_id": str(log["server"].id),
                "key_name": "server",
                "endpoint": "chat",
                "model": "claude-fake",
                "provider": "fake-openai",
                "stream": False,
                "cached": True,
                "prompt_tokens": 1,
                "completion_tokens": 2,
                "cache_read_tokens": 0,
                "wits": 3,
                "ttft_ms": 30,
                "latency_ms": 300,
                "status": 200,
                "error_code": None,
                "settle_reason": "completed",
            }
        ],
        "first_id": log["e"].id,
        "last_id": log["e"].id,
        "has_more": True,
    }


def test_log_pages_newest_first_by_cursor(reader, log):
    first = reader.get("/v1/usage", {"limit": 2}).json()
    second = reader.get("/v1/usage", {"limit": 2, "after": first["last_id"]}).json()
    third = reader.get("/v1/usage", {"limit": 2, "after": second["last_id"]}).json()

    assert [r["request_id"] for r in first["data"]] == ["req_e", "req_d"]
    assert [r["request_id"] for r in second["data"]] == ["req_c", "req_b"]
    assert [r["request_id"] for r in third["data"]] == ["req_a"]
    assert [first["has_more"], second["has_more"], third["has_more"]] == [True, True, False]


def test_an_empty_log_is_an_empty_list(reader):
    assert reader.get("/v1/usage").json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_log_default_page_holds_twenty(owner, reader):
    for _ in range(21):
        _record(owner)

    body = reader.get("/v1/usage").json()

    assert (len(body["data"]), body["has_more"]) == (20, True)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "claude-fake"}, ["req_e", "req_b"]),
        ({"status": "ok"}, ["req_e", "req_d", "req_b", "req_a"]),
        ({"status": "error"}, ["req_c"]),
        ({"status": "502"}, ["req_c"]),
        ({"from": "2025-03-02"}, ["req_e", "req_d", "req_c"]),
        ({"to": "2025-03-01"}, ["req_b", "req_a"]),
        ({"from": "2025-03-01T09:00:00Z", "to": "2025-03-02T00:00:00Z"}, ["req_b", "req_a"]),
        ({"from": "2025-03-01T11:00:00+01:00", "to": "2025-03-02"}, ["req_c", "req_b"]),
        ({"request": "req_c"}, ["req_c"]),
        ({"request": "req_c", "status": "ok"}, []),
        ({"request": "req_zzz"}, []),
    ],
)
def test_log_filters_select_exactly_the_matching_rows(reader, log, params, expected):
    response = reader.get("/v1/usage", params)

    assert [r["request_id"] for r in response.json()["data"]] == expected


def test_log_key_filter_takes_a_key_id(reader, log):
    response = reader.get("/v1/usage", {"key": str(log["laptop"].id)})

    assert [r["request_id"] for r in response.json()["data"]] == ["req_c", "req_a"]


def test_another_tenants_rows_and_keys_match_nothing(owner, reader, log, make_user, make_api_key):
    # Given another tenant with a key and a row of their own
    other = make_user(wits=10)
    theirs = make_api_key(other, "full", name="theirs")
    _record(other, request_id="req_theirs", key=_key_row(theirs))

    # When
    everything = reader.get("/v1/usage", {"limit": 100}).json()
    by_their_key = reader.get("/v1/usage", {"key": str(_key_row(theirs).id)}).json()
    by_their_request = reader.get("/v1/usage", {"request": "req_theirs"}).json()
    summary = reader.get("/v1/usage/summary", {"group_by": "key", "from": "2025-03-01"}).json()
    their_view = _key_client(theirs).get("/v1/usage").json()

    # Then
    assert "req_theirs" not in [r["request_id"] for r in everything["data"]]
    assert by_their_key["data"] == []
    assert by_their_request["data"] == []
    assert "theirs" not in [group["key_name"] for group in summary["data"]]
    assert [r["request_id"] for r in their_view["data"]] == ["req_theirs"]


# --- summary ---------------------------------------------------------------------------------

WINDOW = {"from": "2025-03-01", "to": "2025-03-03"}


def test_summary_by_day_lists_every_day_with_exact_sums(reader, log):
    response = reader.get("/v1/usage/summary", {**WINDOW, "group_by": "day"})

    assert response.status_code == 200
    assert response.json() == {
        "object": "usage.summary",
        "group_by": "day",
        "from": "2025-03-01T00:00:00+00:00",
        "to": "2025-03-04T00:00:00+00:00",
        "data": [
            {
                "day": "2025-03-01",
                "requests": 2,
                "prompt_tokens": 110,
                "completion_tokens": 27,
                "wits": 450,
            },
            {
                "day": "2025-03-02",
                "requests": 1,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "wits": 0,
            },
            {
                "day": "2025-03-03",
                "requests": 2,
                "prompt_tokens": 11,
                "completion_tokens": 22,
                "wits": 53,
            },
        ],
        "total": {"requests": 5, "prompt_tokens": 121, "completion_tokens": 49, "wits": 503},
    }


def test_summary_by_day_includes_days_without_traffic_as_zero(reader, log):
    body = reader.get("/v1/usage/summary", {"from": "2025-02-27", "to": "2025-03-01"}).json()

    assert [(g["day"], g["requests"], g["wits"]) for g in body["data"]] == [
        ("2025-02-27", 0, 0),
        ("2025-02-28", 0, 0),
        ("2025-03-01", 2, 450),
    ]


def test_summary_by_model_orders_by_wits(reader, log):
    body = reader.get("/v1/usage/summary", {**WINDOW, "group_by": "model"}).json()

    assert body["data"] == [
        {
            "model": "claude-fake",
            "requests": 2,
            "prompt_tokens": 101,
            "completion_tokens": 9,
            "wits": 403,
        },
        {
            "model": "gpt-fake",
            "requests": 3,
            "prompt_tokens": 20,
            "completion_tokens": 40,
            "wits": 100,
        },
    ]
    assert body["total"] == {
        "requests": 5,
        "prompt_tokens": 121,
        "completion_tokens": 49,
        "wits": 503,
    }


def test_summary_by_key_names_keys_and_sessions(reader, log):
    body = reader.get("/v1/usage/summary", {**WINDOW, "group_by": "key"}).json()

    assert body["data"] == [
        {
            "key_id": str(log["server"].id),
            "key_name": "server",
            "requests": 2,
            "prompt_tokens": 101,
            "completion_tokens": 9,
            "wits": 403,
        },
        {
            "key_id": str(log["laptop"].id),
            "key_name": "laptop",
            "requests": 2,
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "wits": 50,
        },
        {
            "key_id": None,
            "key_name": None,
            "requests": 1,
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "wits": 50,
        },
    ]


def test_summary_takes_the_log_filters_too(reader, log):
    body = reader.get("/v1/usage/summary", {**WINDOW, "group_by": "model", "status": "ok"}).json()

    assert [(g["model"], g["requests"]) for g in body["data"]] == [
        ("claude-fake", 2),
        ("gpt-fake", 2),
    ]


def test_summary_defaults_to_the_30_days_ending_today(owner, reader):
    today = timezone.localdate()
    _record(owner, created_at=timezone.now(), wits=7)
    _record(owner, created_at=timezone.now() - timedelta(days=40), wits=1000)

    body = reader.get("/v1/usage/summary").json()

    assert body["group_by"] == "day"
    assert [g["day"] for g in body["data"]] == [
        (today - timedelta(days=29 - n)).isoformat() for n in range(30)
    ]
    assert body["total"]["wits"] == 7


def test_summary_from_without_to_runs_to_the_end_of_today(owner, reader):
    yesterday = timezone.localdate() - timedelta(days=1)

    body = reader.get("/v1/usage/summary", {"from": yesterday.isoformat()}).json()

    assert [g["day"] for g in body["data"]] == [
        yesterday.isoformat(),
        timezone.localdate().isoformat(),
    ]


# --- bad parameters --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"key": "abc"}, "key"),
        ({"model": "x" * 101}, "model"),
        ({"model": "bad\x00name"}, "model"),
        ({"status": "299x"}, "status"),
        ({"status": "600"}, "status"),
        ({"status": "99"}, "status"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-13-01"}, "from"),
        ({"from": "20250301"}, "from"),
        ({"from": "0001-01-01"}, "from"),
        ({"to": "2025-03-01T25:00:00"}, "to"),
        ({"from": "2025-03-02", "to": "2025-03-01"}, "to"),
        ({"from": "2025-03-01T12:00:00Z", "to": "2025-03-01T12:00:00Z"}, "to"),
        ({"request": "req a"}, "request"),
        ({"request": "r" * 65}, "request"),
        ({"request": "req_\x00"}, "request"),
    ],
)
def test_bad_filters_answer_400_naming_the_parameter(reader, path, params, param):
    response = reader.get(path, params)

    error = response.json()["error"]
    assert (response.status_code, error["code"], error["param"]) == (400, "invalid_request", param)
    assert error["message"].startswith(f"{param}: ")


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "-5"}, "after"),
        ({"after": "1.5"}, "after"),
    ],
)
def test_bad_paging_answers_400_naming_the_parameter(reader, params, param):
    response = reader.get("/v1/usage", params)

    error = response.json()["error"]
    assert (response.status_code, error["code"], error["param"]) == (400, "invalid_request", param)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"group_by": "week"}, "group_by"),
        ({"group_by": "day", "from": "2020-01-01", "to": "2025-01-01"}, "from"),
        ({"from": "2999-01-01"}, "from"),
    ],
)
def test_bad_summary_parameters_answer_400(reader, params, param):
    response = reader.get("/v1/usage/summary", params)

    error = response.json()["error"]
    assert (response.status_code, error["code"], error["param"]) == (400, "invalid_request", param)


def test_a_long_range_is_fine_when_not_grouped_by_day(reader, log):
    response = reader.get(
        "/v1/usage/summary", {"group_by": "model", "from": "2020-01-01", "to": "2025-12-31"}
    )

    assert (response.status_code, response.json()["total"]["requests"]) == (200, 5)


PARAM_NAMES = st.sampled_from(
    ["key", "model", "status", "from", "to", "group_by", "limit", "after", "x"]
)
PARAM_VALUES = st.text(st.characters(codec="latin-1"), max_size=40) | st.sampled_from(
    [
        "",
        "ok",
        "error",
        "200",
        "-1",
        "0",
        "9" * 30,
        "2025-03-01",
        "9998-12-31",
        "2000-01-01T00:00:00+23:59",
        "9998-12-31T23:59:59-23:59",
        "2025-03-01T00:00:00+99:00",
        "0000-00-00",
        "day",
        "model",
        "key",
        "00000000-0000-4000-8000-000000000000",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(ROUTES),
    params=st.dictionaries(PARAM_NAMES, PARAM_VALUES, max_size=4),
)
def test_any_query_answers_200_or_a_json_400(reader, log, path, params):
    response = reader.get(path, params)

    assert response.status_code in {200, 400}, (params, response.content)
    assert response["Content-Type"] == "application/json"
    if response.status_code == 400:
        error = response.json()["error"]
        assert (error["code"], error["param"] in params) == ("invalid_request", True)
