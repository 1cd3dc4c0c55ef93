"""/usage and /usage.csv: the owner's request log, filtered, paged by cursor, exported."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from apikeys import keys
from apikeys.models import ApiKey
from gateway.models import UsageRecord

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _record(user, *, request_id: str | None = None, key: ApiKey | None = None, **fields):
    values = {
        "user_id": user.id,
        "api_key_id": key.id if key else None,
        "request_id": request_id or f"req_log_{next(_ids)}",
        "endpoint": "chat",
        "model": "gpt-fake",
        "provider": "fake-openai",
        "prompt_tokens": 12,
        "completion_tokens": 34,
        "wits": 80,
        "ttft_ms": 45,
        "latency_ms": 1234,
        "status": 200,
        "settle_reason": "completed",
        "created_at": _at("2025-03-10T08:00:00"),
    }
    values.update(fields)
    return UsageRecord.objects.create(**values)


def _key(make_api_key, user, name: str) -> ApiKey:
    return ApiKey.objects.get(lookup=keys.parse(make_api_key(user, "ai", name=name)).lookup)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _request_ids(response) -> list[str]:
    return re.findall(r'data-request-id="([^"]+)"', response.content.decode())


def _csv(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def owner(make_user):
    return make_user(wits=1000)


@pytest.fixture
def log(owner, make_api_key):
    """Six rows of the owner over three days, two keys, two models, three statuses."""
    laptop = _key(make_api_key, owner, "laptop")
    server = _key(make_api_key, owner, "server")
    rows = {
        "a": _record(owner, request_id="req_a", key=laptop, created_at=_at("2025-03-01T09:00")),
        "b": _record(
            owner,
            request_id="req_b",
            key=server,
            model="claude-fake",
            created_at=_at("2025-03-01T23:59:59"),
        ),
        "c": _record(
            owner,
            request_id="req_c",
            key=laptop,
            status=502,
            wits=0,
            error_code="router_error",
            settle_reason="all_routes_failed",
            created_at=_at("2025-03-02T00:00"),
        ),
        "d": _record(owner, request_id="req_d", key=None, created_at=_at("2025-03-02T12:00")),
        "e": _record(
            owner,
            request_id="req_e",
            key=server,
            model="claude-fake",
            status=402,
            wits=0,
            settle_reason="",
            created_at=_at("2025-03-03T10:00"),
        ),
        "f": _record(
            owner, request_id="req_f", key=laptop, cached=True, created_at=_at("2025-03-03T11:00")
        ),
    }
    return {"laptop": laptop, "server": server, **rows}


@pytest.mark.parametrize("path", ["/usage", "/usage.csv"])
def test_usage_pages_need_a_login(path):
    response = Client().get(path)

    assert (response.status_code, response["Location"]) == (302, f"/login?next={path}")


def test_log_lists_the_owners_rows_newest_first(owner, log):
    response = _client(owner).get("/usage")

    assert response.status_code == 200
    assert _request_ids(response) == ["req_f", "req_e", "req_d", "req_c", "req_b", "req_a"]


def test_log_row_shows_every_column(owner, log):
    body = _client(owner).get("/usage").content.decode()

    row = re.search(r'<tr data-id="\d+" data-request-id="req_f">(.*?)</tr>', body, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td.*?</td>", row, re.S)]
    assert cells == [
        "2025-03-03 11:00:00",
        "laptop",
        "gpt-fake",
        "fake-openai",
        "12",
        "34",
        "80",
        "45 ms",
        "1,234 ms",
        "200",
        "✓",
        "completed",
    ]


def test_a_failed_row_shows_its_status_and_settle_reason(owner, log):
    body = _client(owner).get("/usage").content.decode()

    row = re.search(r'data-request-id="req_c">(.*?)</tr>', body, re.S).group(1)
    assert '<span class="pill err" title="router_error">502</span>' in row
    assert "all routes failed" in row


def test_a_session_request_is_labelled_as_such(owner, log):
    body = _client(owner).get("/usage").content.decode()

    row = re.search(r'data-request-id="req_d">(.*?)</tr>', body, re.S).group(1)
    assert '<td class="key"><span class="muted">Browser session</span></td>' in row


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "claude-fake"}, ["req_e", "req_b"]),
        ({"status": "ok"}, ["req_f", "req_d", "req_b", "req_a"]),
        ({"status": "error"}, ["req_e", "req_c"]),
        ({"status": "502"}, ["req_c"]),
        ({"status": "404"}, []),
        ({"from": "2025-03-02"}, ["req_f", "req_e", "req_d", "req_c"]),
        ({"to": "2025-03-01"}, ["req_b", "req_a"]),
        ({"from": "2025-03-02", "to": "2025-03-02"}, ["req_d", "req_c"]),
        ({"from": "2025-03-01T10:00:00Z", "to": "2025-03-02T12:00:00Z"}, ["req_c", "req_b"]),
        ({"model": "gpt-fake", "status": "ok", "from": "2025-03-02"}, ["req_f", "req_d"]),
        ({"request": "req_d"}, ["req_d"]),
        (
            {"model": "", "status": "", "from": "", "to": "", "key": ""},
            [f"req_{c}" for c in "fedcba"],
        ),
    ],
)
def test_filters_select_exactly_the_matching_rows(owner, log, params, expected):
    response = _client(owner).get("/usage", params)

    assert response.status_code == 200
    assert _request_ids(response) == expected


def test_the_playgrounds_request_link_shows_that_one_call_and_keeps_it_in_the_form(owner, log):
    response = _client(owner).get("/usage", {"request": "req_d"})

    assert _request_ids(response) == ["req_d"]
    assert '<input name="request" value="req_d" readonly>' in response.content.decode()


def test_key_filter_selects_that_keys_rows(owner, log):
    client = _client(owner)

    laptop = client.get("/usage", {"key": str(log["laptop"].id)})
    server = client.get("/usage", {"key": str(log["server"].id)})

    assert _request_ids(laptop) == ["req_f", "req_c", "req_a"]
    assert _request_ids(server) == ["req_e", "req_b"]
    assert f'<option value="{log["laptop"].id}" selected>laptop</option>' in laptop.content.decode()


def test_another_tenants_key_in_the_filter_matches_nothing(owner, log, make_user, make_api_key):
    other = make_user(wits=10)
    theirs = _key(make_api_key, other, "theirs")
    _record(other, request_id="req_theirs", key=theirs)

    response = _client(owner).get("/usage", {"key": str(theirs.id)})

    assert response.status_code == 200
    assert _request_ids(response) == []
    assert "No requests match these filters." in response.content.decode()


def test_another_tenants_rows_never_appear(owner, log, make_user, make_api_key):
    other = make_user(wits=10)
    _record(other, request_id="req_theirs", key=_key(make_api_key, other, "theirs"))

    page = _client(owner).get("/usage")
    export = _client(owner).get("/usage.csv")
    their_page = _client(other).get("/usage")

    assert "req_theirs" not in page.content.decode()
    assert "theirs" not in page.content.decode()
    assert [line[2] for line in _csv(export)[1:]] == [f"req_{c}" for c in "fedcba"]
    assert _request_ids(their_page) == ["req_theirs"]


def test_filters_offer_only_the_owners_keys(owner, log, make_user, make_api_key):
    other = make_user(wits=10)
    _key(make_api_key, other, "not-yours")

    body = _client(owner).get("/usage").content.decode()

    assert re.findall(r'<option value="[0-9a-f-]{36}"[^>]*>([^<]+)</option>', body) == [
        "laptop",
        "server",
    ]


def test_pages_follow_the_cursor_without_gaps_or_repeats(owner):
    # Given 55 rows (a page holds 50)
    for n in range(55):
        _record(owner, request_id=f"req_{n:03d}")
    client = _client(owner)

    # When
    first = client.get("/usage")
    older = re.search(r'<a href="\?after=(\d+)" id="older">', first.content.decode())
    second = client.get("/usage", {"after": older.group(1)})

    # Then
    assert _request_ids(first) == [f"req_{n:03d}" for n in range(54, 4, -1)]
    assert _request_ids(second) == [f"req_{n:03d}" for n in range(4, -1, -1)]
    assert 'id="older"' not in second.content.decode()
    assert '<a href="?" id="newest">' in second.content.decode()


def test_the_cursor_keeps_the_filters(owner):
    for n in range(52):
        _record(owner, request_id=f"req_{n:03d}", model="gpt-fake" if n % 2 else "other")
    for n in range(52, 104):
        _record(owner, request_id=f"req_{n:03d}", model="gpt-fake")

    first = _client(owner).get("/usage", {"model": "gpt-fake"})
    link = re.search(r'<a href="\?([^"]+)" id="older">', first.content.decode()).group(1)
    second = _client(owner).get("/usage?" + link.replace("&amp;", "&"))

    assert link.startswith("model=gpt-fake&amp;after=")
    assert len(_request_ids(first)) == 50
    assert _request_ids(second) == [f"req_{n:03d}" for n in [53, 52, *range(51, 0, -2)]]


def test_csv_exports_exactly_the_filtered_rows(owner, log):
    response = _client(owner).get("/usage.csv", {"model": "claude-fake"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="clawwits-usage.csv"'
    assert _csv(response) == [
        [
            "id",
            "created_at",
            "request_id",
            "key_id",
            "key_name",
            "endpoint",
            "model",
            "provider",
            "stream",
            "cached",
            "prompt_tokens",
            "completion_tokens",
            "cache_read_tokens",
            "wits",
            "ttft_ms",
            "latency_ms",
            "status",
            "error_code",
            "settle_reason",
        ],
        [
            str(log["e"].id),
            "2025-03-03T10:00:00Z",
            "req_e",
            str(log["server"].id),
            "server",
            "chat",
            "claude-fake",
            "fake-openai",
            "false",
            "false",
            "12",
            "34",
            "0",
            "0",
            "45",
            "1234",
            "402",
            "",
            "",
        ],
        [
            str(log["b"].id),
            "2025-03-01T23:59:59Z",
            "req_b",
            str(log["server"].id),
            "server",
            "chat",
            "claude-fake",
            "fake-openai",
            "false",
            "false",
            "12",
            "34",
            "0",
            "80",
            "45",
            "1234",
            "200",
            "",
            "completed",
        ],
    ]


def test_csv_ignores_the_page_cursor_and_exports_every_row(owner):
    for n in range(120):
        _record(owner, request_id=f"req_{n:03d}")

    rows = _csv(_client(owner).get("/usage.csv", {"after": "5"}))

    assert [row[2] for row in rows[1:]] == [f"req_{n:03d}" for n in range(119, -1, -1)]


def test_csv_never_lets_a_key_name_run_as_a_formula(owner, make_api_key):
    key = _key(make_api_key, owner, '=HYPERLINK("http://evil")')
    _record(owner, key=key, request_id="req_formula")

    rows = _csv(_client(owner).get("/usage.csv"))

    assert rows[1][4] == '\'=HYPERLINK("http://evil")'


def test_csv_link_carries_the_pages_filters(owner, log):
    body = _client(owner).get("/usage", {"model": "gpt-fake", "after": "99"}).content.decode()

    assert 'id="export-csv" href="/usage.csv?model=gpt-fake"' in body


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"key": "not-a-uuid"}, "key: must be an API key id (a UUID)."),
        ({"status": "teapot"}, "status: must be ok, error or an HTTP status code (100-599)."),
        ({"from": "yesterday"}, "from: must be an ISO date"),
        ({"from": "2025-03-05", "to": "2025-03-01"}, "to: must be later than from."),
        ({"after": "-1"}, "after: must be the id of the last row of the previous page."),
    ],
)
def test_a_bad_filter_answers_400_naming_it(owner, params, message):
    page = _client(owner).get("/usage", params)
    export = _client(owner).get("/usage.csv", {k: v for k, v in params.items() if k != "after"})

    assert page.status_code == 400
    assert message in page.content.decode()
    if "after" not in params:
        assert export.status_code == 400


def test_an_empty_log_says_so(owner):
    body = _client(owner).get("/usage").content.decode()

    assert "No requests yet. Calls made with your API keys show up here." in body
