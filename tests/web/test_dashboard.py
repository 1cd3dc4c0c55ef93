"""/dashboard: balance, tier, a 30-day chart, top models and the low-balance warning, all from
the owner's rows only."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, time, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from clawwits import charts
from gateway.models import UsageRecord
from gateway.usage import Totals
from wits import ledger

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


@pytest.fixture
def now(monkeypatch) -> datetime:
    """One instant for the whole test, so "today" cannot move under it at midnight."""
    frozen = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: frozen)
    return frozen


def _noon(days_ago: int) -> datetime:
    day = timezone.localdate() - timedelta(days=days_ago)
    return timezone.make_aware(datetime.combine(day, time(12)))


def _record(user, *, days_ago: int = 0, model: str = "gpt-fake", wits: int = 10, **fields):
    values = {
        "user_id": user.id,
        "request_id": f"req_dash_{next(_ids)}",
        "endpoint": "chat",
        "model": model,
        "provider": "fake-openai",
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "wits": wits,
        "latency_ms": 100,
        "status": 200,
        "settle_reason": "completed",
        "created_at": _noon(days_ago),
    }
    values.update(fields)
    return UsageRecord.objects.create(**values)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _bars(body: str) -> list[tuple[str, int, int]]:
    return [
        (key, int(bar), int(line))
        for key, bar, line in re.findall(
            r'<rect class="bar" [^>]*data-key="([^"]+)" data-bar="(\d+)" data-line="(\d+)"', body
        )
    ]


def test_dashboard_needs_a_login():
    response = Client().get("/dashboard")

    assert (response.status_code, response["Location"]) == (302, "/login?next=/dashboard")


def test_dashboard_shows_balance_tier_and_its_limit(make_user):
    user = make_user(tier="starter", wits=1_234_567)

    response = _client(user).get("/dashboard")

    body = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="available">1,234,567</strong>' in body
    assert '<strong id="reserved">0</strong>' in body
    assert '<strong id="used">0</strong>' in body
    assert '<strong id="tier">Starter</strong>' in body
    assert '<small id="rpm">300 requests per minute</small>' in body


def test_an_empty_account_shows_how_to_make_a_first_request(make_user):
    user = make_user(wits=100)

    body = _client(user).get("/dashboard").content.decode()

    assert 'id="empty-state"' in body
    assert "Make your first request" in body
    assert 'href="/api-keys">Create an API key</a>' in body
    assert "<svg" not in body
    assert 'id="top-models"' not in body


def test_the_empty_state_knows_when_a_key_already_exists(make_user, make_api_key):
    user = make_user(wits=100)
    make_api_key(user, "ai")

    body = _client(user).get("/dashboard").content.decode()

    assert 'You have an API key. Manage your keys on the <a href="/api-keys">API keys</a>' in body


def test_numbers_match_the_rows_of_the_last_30_days_only(make_user, now):
    # Given rows today, 29 days ago (the first day shown), 30 days ago (outside) and another
    # tenant's row today
    user, other = make_user(wits=1000), make_user(wits=1000)
    _record(user, days_ago=0, wits=7, prompt_tokens=11, completion_tokens=2)
    _record(user, days_ago=0, wits=5, prompt_tokens=1, completion_tokens=1)
    _record(user, days_ago=29, wits=100, status=502, settle_reason="all_routes_failed")
    _record(user, days_ago=30, wits=1000)
    _record(other, days_ago=0, wits=50_000)

    # When
    response = _client(user).get("/dashboard")

    # Then
    overview = response.context["overview"]
    body = response.content.decode()
    assert overview.window == Totals(requests=3, prompt_tokens=17, completion_tokens=6, wits=112)
    assert '<strong id="window-requests">3</strong> requests' in body
    assert '<strong id="window-wits">112</strong> Wits spent' in body
    bars = _bars(body)
    today = timezone.localdate()
    assert bars[0] == ((today - timedelta(days=29)).isoformat(), 100, 1)
    assert bars[-1] == (today.isoformat(), 12, 2)
    assert sum(bar for _key, bar, _line in bars) == 112
    assert sum(line for _key, _bar, line in bars) == 3


def test_chart_has_thirty_day_points_ending_today_with_empty_days_as_zero(make_user, now):
    user = make_user(wits=1000)
    _record(user, days_ago=3, wits=40)

    body = _client(user).get("/dashboard").content.decode()

    bars = _bars(body)
    today = timezone.localdate()
    assert len(bars) == 30
    assert [key for key, _bar, _line in bars] == [
        (today - timedelta(days=29 - n)).isoformat() for n in range(30)
    ]
    assert [(bar, line) for _key, bar, line in bars if (bar, line) != (0, 0)] == [(40, 1)]
    assert bars[26] == ((today - timedelta(days=3)).isoformat(), 40, 1)
    assert len(re.findall(r'<tr data-day="', body)) == 30


def test_top_models_are_ordered_by_wits_then_requests_then_name(make_user, now):
    user = make_user(wits=1000)
    _record(user, model="small", wits=50)
    _record(user, model="big", wits=200)
    _record(user, model="big", wits=100)
    _record(user, model="tie-b", wits=120)
    _record(user, model="tie-a", wits=60)
    _record(user, model="tie-a", wits=60)
    _record(user, model="old", wits=10_000, days_ago=31)

    response = _client(user).get("/dashboard")

    shares = response.context["overview"].top_models
    assert [(s.model, s.totals.requests, s.totals.wits, s.percent) for s in shares] == [
        ("big", 2, 300, 50),
        ("tie-a", 2, 120, 20),
        ("tie-b", 1, 120, 20),
        ("small", 1, 50, 8),
    ]
    body = response.content.decode()
    assert re.findall(r'<tr data-model="([^"]+)">', body) == ["big", "tie-a", "tie-b", "small"]


def test_top_models_show_at_most_five(make_user, now):
    user = make_user(wits=1000)
    for n in range(7):
        _record(user, model=f"m{n}", wits=10 + n)

    shares = _client(user).get("/dashboard").context["overview"].top_models

    assert [s.model for s in shares] == ["m6", "m5", "m4", "m3", "m2"]


@pytest.mark.parametrize(
    ("available", "warned"),
    [(9_999, True), (10_000, False), (10_001, False), (0, True)],
)
def test_low_balance_warning_appears_only_below_the_threshold(make_user, available, warned):
    user = make_user(wits=0)
    if available:
        ledger.grant(user_id=user.id, amount=available, actor="test")
    assert user.low_balance_threshold == 10_000

    body = _client(user).get("/dashboard").content.decode()

    assert ('id="low-balance"' in body) is warned
    if warned:
        alert = body[body.index('id="low-balance"') : body.index("</div>", body.index("low-bal"))]
        assert f"{available:,} Wits available, below your warning threshold of 10,000" in alert
        assert '<a class="button" href="/pricing">Top up</a>' in alert


def test_low_balance_warning_follows_the_users_own_threshold(make_user):
    user = make_user(wits=500)
    client = _client(user)
    assert 'id="low-balance"' in client.get("/dashboard").content.decode()

    user.low_balance_threshold = 500
    user.save(update_fields=["low_balance_threshold"])

    assert 'id="low-balance"' not in client.get("/dashboard").content.decode()


def test_another_tenants_usage_never_shows(make_user, now):
    user, other = make_user(wits=1000), make_user(wits=1000)
    _record(user, model="mine", wits=3)
    _record(other, model="theirs", wits=999)

    response = _client(user).get("/dashboard")

    body = response.content.decode()
    assert "theirs" not in body
    assert [s.model for s in response.context["overview"].top_models] == ["mine"]
    assert response.context["overview"].window.wits == 3


# --- the chart, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 4), (1, 4), (4, 4), (5, 8), (9, 20), (20, 20), (21, 40), (41, 80), (1234, 2000)],
)
def test_chart_axis_ends_at_a_nice_number_at_or_above_the_largest_value(value, ceiling):
    assert charts.nice_ceiling(value) == ceiling


def test_chart_escapes_every_text_it_writes():
    point = charts.Point(key='"><x', label="<b>", bar=1, line=1, title="a & <script>")

    svg = charts.bars_with_line([point], title="<t>", number=lambda n: f"<{n}>")

    assert "<script>" not in svg
    assert "<b>" not in svg
    assert "<x" not in svg
    assert "<t>" not in svg
    assert "a &amp; &lt;script&gt;" in svg
    assert 'data-key="&quot;&gt;&lt;x"' in svg
    assert "&lt;4&gt;" in svg


def test_chart_bars_stay_inside_the_plot_and_scale_to_the_largest():
    points = [charts.Point(key=str(n), label="", bar=n * 10, line=n, title="") for n in range(9)]

    svg = charts.bars_with_line(points, title="t")

    heights = [float(h) for h in re.findall(r'<rect class="bar" [^>]*height="([\d.]+)"', svg)]
    plot = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert heights[0] == 0
    assert heights[-1] == round(plot * 80 / 80, 1)
    assert heights == sorted(heights)
    assert all(h <= plot for h in heights)
