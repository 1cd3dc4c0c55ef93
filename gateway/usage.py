"""Read-only questions about one account's activity: its request log, usage totals, the
dashboard's figures and its billing history.

Guarantees:
- Tenant isolation: every function takes the caller's user id and every query filters on it
  first. A filter naming another tenant's key, or a cursor taken from another tenant's rows,
  matches nothing of theirs: it only narrows the caller's own rows.
- Read-only: nothing here writes a row (usage records are written by the relay, money by
  `wits.ledger`).
- One filter, one meaning: the page, its CSV export, `/v1/usage` and `/v1/usage/summary` parse
  their parameters with `parse_query` and select rows with the same queryset, so the log, its
  export and its totals always describe the same rows.
- Strict parameters: an unusable value raises ApiError(invalid_request) naming the parameter;
  nothing is silently ignored or guessed.
- Time: a range is half-open, [from, to). A bare date means midnight in the current time zone
  (settings.TIME_ZONE); as `to` it means the end of that day, so `to=2025-01-31` includes
  the 31st. Days are calendar days in the current time zone.
- Order: newest first by id, which is the order rows were settled in; the cursor `after` is the
  last id of the previous page, so paging never skips or repeats a row while new ones arrive.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apikeys.models import ApiKey
from clawwits.errors import ApiError, Code
from gateway.models import AiModel, UsageRecord
from wits import ledger, payments
from wits.models import LedgerEntry, TopupOrder

if TYPE_CHECKING:
    from accounts.models import User

DASHBOARD_DAYS = 30
TOP_MODELS = 5
# The summary's default window when `from` is absent; also the dashboard's.
DEFAULT_WINDOW_DAYS = 30
# A day-grouped summary lists every day of its range, so its length is bounded.
MAX_DAY_BUCKETS = 366
EXPORT_CHUNK = 2000
MAX_MODEL_LENGTH = 100
GROUP_BYS = ("day", "model", "key")
STATUS_CLASSES = ("ok", "error")
# Statuses the relay records, offered as filter choices on the page (the API takes any).
COMMON_STATUSES = (200, 400, 402, 500, 502)
CREDIT_KINDS = (
    LedgerEntry.Kind.TOPUP,
    LedgerEntry.Kind.GRANT,
    LedgerEntry.Kind.ADJUSTMENT,
)
USAGE_KINDS = (LedgerEntry.Kind.RESERVE, LedgerEntry.Kind.COMMIT, LedgerEntry.Kind.RELEASE)
ENTRY_FILTERS = ("credits", "usage", *LedgerEntry.Kind.values)
RECENT_ORDERS = 20

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ].+")
_STATUS = re.compile(r"[1-5]\d\d")
# Earlier or later instants overflow time-zone arithmetic and mean nothing for a request log.
_MIN_YEAR, _MAX_YEAR = 2000, 9998
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- Filters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageQuery:
    """Which of the caller's usage rows to show. Empty fields do not filter."""

    key_id: uuid.UUID | None = None
    model: str = ""
    # "", "ok" (status < 400), "error" (status >= 400), or one status code such as "429".
    status: str = ""
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    request_id: str = ""  # one call: the `request_id` its response carried


_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _invalid(param: str, message: str) -> ApiError:
    return ApiError(Code.INVALID_REQUEST, f"{param}: {message}", param=param)


def _text(params: Mapping[str, str], name: str) -> str:
    return (params.get(name) or "").strip()


def _instant(raw: str, *, param: str, end_of_day: bool) -> datetime:
    tz = timezone.get_current_timezone()
    moment: datetime | None = None
    try:
        if _DATE.fullmatch(raw):
            day = date.fromisoformat(raw)
            if _MIN_YEAR <= day.year <= _MAX_YEAR:
                if end_of_day:
                    day += timedelta(days=1)
                moment = timezone.make_aware(datetime.combine(day, time.min), tz)
        elif _DATETIME.fullmatch(raw):
            parsed = parse_datetime(raw)
            if parsed is not None and _MIN_YEAR <= parsed.year <= _MAX_YEAR:
                moment = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, tz)
        # Bounded in UTC too: PostgreSQL refuses "9998-12-31T23:59:59-23:59" as out of range.
        if moment is not None:
            moment = moment.astimezone(UTC)
            if not _MIN_YEAR - 1 <= moment.year <= _MAX_YEAR + 1:
                moment = None
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise _invalid(
            param, "must be an ISO date (2025-01-31) or datetime (2025-01-31T12:00:00Z)."
        )
    return moment


def parse_query(params: Mapping[str, str]) -> UsageQuery:
    """The filters `key`, `model`, `status`, `from`, `to`, `request` of a page or API query.

    Raises ApiError(invalid_request) naming the first unusable parameter.
    """
    key_id = None
    if raw_key := _text(params, "key"):
        try:
            key_id = uuid.UUID(raw_key)
        except ValueError:
            raise _invalid("key", "must be an API key id (a UUID).") from None
    model = _text(params, "model")
    if len(model) > MAX_MODEL_LENGTH or any(ord(c) < 32 for c in model):
        raise _invalid("model", f"must be a model name of at most {MAX_MODEL_LENGTH} characters.")
    status = _text(params, "status").lower()
    if status and status not in STATUS_CLASSES and not _STATUS.fullmatch(status):
        raise _invalid("status", "must be ok, error or an HTTP status code (100-599).")
    since = (
        _instant(raw, param="from", end_of_day=False) if (raw := _text(params, "from")) else None
    )
    until = _instant(raw, param="to", end_of_day=True) if (raw := _text(params, "to")) else None
    if since is not None and until is not None and until <= since:
        raise _invalid("to", "must be later than from.")
    request_id = _text(params, "request")
    if request_id and not _REQUEST_ID.fullmatch(request_id):
        raise _invalid("request", "must be a request id such as req_9f2c... (<= 64 characters).")
    return UsageQuery(
        key_id=key_id,
        model=model,
        status=status,
        since=since,
        until=until,
        request_id=request_id,
    )


def parse_after(params: Mapping[str, str]) -> int | None:
    """The cursor `after` (the last id of the previous page), or None for the first page."""
    raw = _text(params, "after")
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise _invalid("after", "must be the id of the last row of the previous page.")
    return int(raw) or None


def _rows(user_id: uuid.UUID, query: UsageQuery) -> QuerySet[UsageRecord]:
    rows = UsageRecord.objects.filter(user_id=user_id)
    if query.request_id:
        rows = rows.filter(request_id=query.request_id)
    if query.key_id is not None:
        rows = rows.filter(api_key_id=query.key_id)
    if query.model:
        rows = rows.filter(model=query.model)
    if query.status == "ok":
        rows = rows.filter(status__lt=400)
    elif query.status == "error":
        rows = rows.filter(status__gte=400)
    elif query.status:
        rows = rows.filter(status=int(query.status))
    if query.since is not None:
        rows = rows.filter(created_at__gte=query.since)
    if query.until is not None:
        rows = rows.filter(created_at__lt=query.until)
    return rows


# --- The request log -------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    id: int
    request_id: str
    created_at: datetime
    key_id: uuid.UUID | None
    # None for requests made with a browser session rather than an API key.
    key_name: str | None
    endpoint: str
    model: str
    provider: str
    stream: bool
    cached: bool
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int
    wits: int
    ttft_ms: int | None
    latency_ms: int
    status: int
    error_code: str
    settle_reason: str

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass(frozen=True)
class UsagePage:
    rows: list[UsageRow]
    has_more: bool

    @property
    def next_after(self) -> int | None:
        """The cursor of the next page; None on the last one."""
        return self.rows[-1].id if self.has_more and self.rows else None


@dataclass(frozen=True)
class KeyChoice:
    id: uuid.UUID
    name: str
    state: str


@dataclass(frozen=True)
class RequestLog:
    """The /usage page: one page of rows and what its filters offer."""

    page: UsagePage
    keys: list[KeyChoice]
    models: list[str]
    statuses: tuple[int, ...]


def _key_names(user_id: uuid.UUID) -> dict[uuid.UUID, str]:
    return dict(ApiKey.objects.filter(user_id=user_id).values_list("id", "name"))


def _row(record: UsageRecord, names: Mapping[uuid.UUID, str]) -> UsageRow:
    return UsageRow(
        id=record.id,
        request_id=record.request_id,
        created_at=record.created_at,
        key_id=record.api_key_id,
        key_name=names.get(record.api_key_id) if record.api_key_id else None,
        endpoint=record.endpoint,
        model=record.model,
        provider=record.provider,
        stream=record.stream,
        cached=record.cached,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cache_read_tokens=record.cache_read_tokens,
        wits=record.wits,
        ttft_ms=record.ttft_ms,
        latency_ms=record.latency_ms,
        status=record.status,
        error_code=record.error_code,
        settle_reason=record.settle_reason,
    )


def log_page(
    *, user_id: uuid.UUID, query: UsageQuery, limit: int, after: int | None = None
) -> UsagePage:
    """Up to `limit` of the caller's rows matching `query`, newest first, older than `after`."""
    rows = _rows(user_id, query).order_by("-id")
    if after is not None:
        rows = rows.filter(id__lt=after)
    found = list(rows[: limit + 1])
    names = _key_names(user_id) if any(r.api_key_id for r in found) else {}
    return UsagePage(rows=[_row(r, names) for r in found[:limit]], has_more=len(found) > limit)


def request_log(
    *, user_id: uuid.UUID, query: UsageQuery, limit: int, after: int | None = None
) -> RequestLog:
    """A page of the log plus the caller's keys and the catalogue's models to filter by."""
    keys = [
        KeyChoice(id=key.id, name=key.name, state=key.state)
        for key in ApiKey.objects.filter(user_id=user_id).order_by("name", "created_at")
    ]
    models = list(AiModel.objects.order_by("name").values_list("name", flat=True))
    if query.model and query.model not in models:
        # A model since removed from the catalogue still names rows in the log.
        models.append(query.model)
    return RequestLog(
        page=log_page(user_id=user_id, query=query, limit=limit, after=after),
        keys=keys,
        models=models,
        statuses=COMMON_STATUSES,
    )


CSV_COLUMNS = (
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
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    text = str(value)
    # Key names are typed by users: never let one run as a spreadsheet formula.
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_line(values: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([_cell(v) for v in values])
    return buffer.getvalue()


def export_csv(*, user_id: uuid.UUID, query: UsageQuery) -> Iterator[str]:
    """The CSV of every row matching `query`, newest first, one line at a time.

    Columns are `CSV_COLUMNS`; times are UTC ISO 8601, numbers plain (not localised), booleans
    true/false, so the file reads the same in any spreadsheet locale. Rows are fetched in
    chunks, so memory stays flat however long the log is.
    """
    names = _key_names(user_id)
    yield _csv_line(list(CSV_COLUMNS))
    rows = _rows(user_id, query).order_by("-id")
    for record in rows.iterator(chunk_size=EXPORT_CHUNK):
        row = _row(record, names)
        yield _csv_line([getattr(row, column) for column in CSV_COLUMNS])


# --- Totals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wits: int = 0


_TOTALS = {
    "requests": Count("id"),
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "wits": Sum("wits"),
}


def _totals(values: Mapping[str, int | None]) -> Totals:
    return Totals(**{name: values.get(name) or 0 for name in _TOTALS})


@dataclass(frozen=True)
class SummaryRequest:
    query: UsageQuery  # since and until always set
    group_by: str


@dataclass(frozen=True)
class SummaryGroup:
    day: date | None
    model: str | None
    key_id: uuid.UUID | None
    key_name: str | None
    totals: Totals


@dataclass(frozen=True)
class Summary:
    group_by: str
    since: datetime
    until: datetime
    groups: list[SummaryGroup]
    total: Totals


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def parse_summary(params: Mapping[str, str], *, now: datetime | None = None) -> SummaryRequest:
    """`group_by` (day, model or key; default day) and the filters of `parse_query`.

    Without `to` the range ends with today; without `from` it starts DEFAULT_WINDOW_DAYS
    before `to`. A day-grouped range spans at most MAX_DAY_BUCKETS days.
    """
    group_by = _text(params, "group_by") or "day"
    if group_by not in GROUP_BYS:
        raise _invalid("group_by", "must be day, model or key.")
    query = parse_query(params)
    until = query.until
    if until is None:
        today = timezone.localdate(now or timezone.now())
        until = _midnight(today + timedelta(days=1))
        if query.since is not None and query.since >= until:
            raise _invalid("from", "must be earlier than to (default: the end of today).")
    since = query.since or until - timedelta(days=DEFAULT_WINDOW_DAYS)
    if group_by == "day" and _day_count(since, until) > MAX_DAY_BUCKETS:
        raise _invalid("from", f"a day-grouped range spans at most {MAX_DAY_BUCKETS} days.")
    bounded = UsageQuery(
        key_id=query.key_id, model=query.model, status=query.status, since=since, until=until
    )
    return SummaryRequest(query=bounded, group_by=group_by)


def _first_and_last_day(since: datetime, until: datetime) -> tuple[date, date]:
    tz = timezone.get_current_timezone()
    first = timezone.localtime(since, tz).date()
    last = timezone.localtime(until - timedelta(microseconds=1), tz).date()
    return first, last


def _day_count(since: datetime, until: datetime) -> int:
    first, last = _first_and_last_day(since, until)
    return (last - first).days + 1


def _days(since: datetime, until: datetime) -> list[date]:
    first, last = _first_and_last_day(since, until)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _per_day(rows: QuerySet[UsageRecord]) -> dict[date, Totals]:
    tz = timezone.get_current_timezone()
    grouped = (
        rows.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(**_TOTALS)
        .order_by()
    )
    return {values["day"]: _totals(values) for values in grouped}


def summary(*, user_id: uuid.UUID, request: SummaryRequest) -> Summary:
    """Requests, prompt and completion tokens and Wits of the caller's rows, per group.

    Days: every day of the range in order, zeros included. Models and keys: only those with
    rows, most Wits first (ties: more requests, then name). `total` sums the same rows.
    """
    query = request.query
    rows = _rows(user_id, query)
    groups: list[SummaryGroup] = []
    if request.group_by == "day":
        per_day = _per_day(rows)
        groups = [
            SummaryGroup(day, None, None, None, per_day.get(day, Totals()))
            for day in _days(query.since, query.until)
        ]
    else:
        field = "model" if request.group_by == "model" else "api_key_id"
        grouped = rows.values(field).annotate(**_TOTALS).order_by("-wits", "-requests", field)
        names = _key_names(user_id) if field == "api_key_id" else {}
        for values in grouped:
            value = values[field]
            groups.append(
                SummaryGroup(
                    day=None,
                    model=value if field == "model" else None,
                    key_id=value if field == "api_key_id" else None,
                    key_name=names.get(value) if field == "api_key_id" and value else None,
                    totals=_totals(values),
                )
            )
    return Summary(
        group_by=request.group_by,
        since=query.since,
        until=query.until,
        groups=groups,
        total=_totals(rows.aggregate(**_TOTALS)),
    )


# --- Dashboard -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayPoint:
    day: date
    requests: int
    wits: int


@dataclass(frozen=True)
class ModelShare:
    model: str
    totals: Totals
    # Of the window's Wits, in whole percent (rounded down); 0 when nothing was spent.
    percent: int


@dataclass(frozen=True)
class Dashboard:
    balance: ledger.Balance
    tier_name: str
    requests_per_minute: int
    low_balance_threshold: int
    # available < threshold: the account should top up soon.
    low_balance: bool
    # Exactly DASHBOARD_DAYS points, oldest first, the last one today; zeros included.
    days: list[DayPoint]
    window: Totals
    top_models: list[ModelShare]
    # False until the account's first request: the page shows how to make one instead.
    has_usage: bool
    has_keys: bool


def dashboard(*, user: User, now: datetime | None = None) -> Dashboard:
    """Balance, tier, and the last DASHBOARD_DAYS days of usage of `user`."""
    today = timezone.localdate(now or timezone.now())
    first = today - timedelta(days=DASHBOARD_DAYS - 1)
    window = UsageQuery(since=_midnight(first), until=_midnight(today + timedelta(days=1)))
    rows = _rows(user.id, window)
    per_day = _per_day(rows)
    days = []
    for offset in range(DASHBOARD_DAYS):
        day = first + timedelta(days=offset)
        totals = per_day.get(day, Totals())
        days.append(DayPoint(day=day, requests=totals.requests, wits=totals.wits))
    window_totals = Totals(
        requests=sum(t.requests for t in per_day.values()),
        prompt_tokens=sum(t.prompt_tokens for t in per_day.values()),
        completion_tokens=sum(t.completion_tokens for t in per_day.values()),
        wits=sum(t.wits for t in per_day.values()),
    )
    top = rows.values("model").annotate(**_TOTALS).order_by("-wits", "-requests", "model")
    top_models = [
        ModelShare(
            model=values["model"],
            totals=_totals(values),
            percent=(values["wits"] or 0) * 100 // window_totals.wits if window_totals.wits else 0,
        )
        for values in top[:TOP_MODELS]
    ]
    balance = ledger.balance(user_id=user.id)
    threshold = user.low_balance_threshold
    return Dashboard(
        balance=balance,
        tier_name=user.tier.name if user.tier_id else "",
        requests_per_minute=user.requests_per_minute,
        low_balance_threshold=threshold,
        low_balance=balance.available < threshold,
        days=days,
        window=window_totals,
        top_models=top_models,
        has_usage=window_totals.requests > 0
        or UsageRecord.objects.filter(user_id=user.id).exists(),
        has_keys=ApiKey.objects.filter(user_id=user.id).exists(),
    )


# --- Billing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BillingQuery:
    # "", "credits" (top-ups, grants, adjustments), "usage" (reserve, commit, release) or a kind.
    kind: str = ""
    after: int | None = None


@dataclass(frozen=True)
class EntryRow:
    id: int
    kind: str
    amount: int
    available_delta: int
    available_after: int
    reserved_after: int
    note: str
    created_at: datetime
    request_id: str | None
    order_id: uuid.UUID | None
    order_reference: str | None


@dataclass(frozen=True)
class OrderRow:
    id: uuid.UUID
    reference: str
    wits: int
    price: int
    currency: str
    provider: str
    provider_label: str
    state: str
    created_at: datetime
    credited_at: datetime | None


@dataclass(frozen=True)
class Billing:
    balance: ledger.Balance
    entries: list[EntryRow]
    has_more: bool
    orders: list[OrderRow]
    more_orders: bool

    @property
    def next_after(self) -> int | None:
        return self.entries[-1].id if self.has_more and self.entries else None


def parse_billing(params: Mapping[str, str]) -> BillingQuery:
    """`kind` and the cursor `after` of the /billing page."""
    kind = _text(params, "kind")
    if kind and kind not in ENTRY_FILTERS:
        raise _invalid("kind", "must be credits, usage or a ledger entry kind.")
    return BillingQuery(kind=kind, after=parse_after(params))


def billing(*, user_id: uuid.UUID, query: BillingQuery, limit: int) -> Billing:
    """The caller's ledger entries (newest first, a page of `limit`) and recent top-up orders."""
    entries = LedgerEntry.objects.filter(wallet_id=user_id).select_related("reservation", "order")
    if query.kind == "credits":
        entries = entries.filter(kind__in=CREDIT_KINDS)
    elif query.kind == "usage":
        entries = entries.filter(kind__in=USAGE_KINDS)
    elif query.kind:
        entries = entries.filter(kind=query.kind)
    if query.after is not None:
        entries = entries.filter(id__lt=query.after)
    found = list(entries.order_by("-id")[: limit + 1])
    labels = {provider.name: provider.label for provider in payments.all_providers()}
    orders = list(
        TopupOrder.objects.filter(user_id=user_id).order_by("-created_at")[: RECENT_ORDERS + 1]
    )
    return Billing(
        balance=ledger.balance(user_id=user_id),
        entries=[
            EntryRow(
                id=e.id,
                kind=e.kind,
                amount=e.amount,
                available_delta=e.available_delta,
                available_after=e.available_after,
                reserved_after=e.reserved_after,
                note=e.note,
                created_at=e.created_at,
                request_id=e.reservation.request_id if e.reservation_id else None,
                order_id=e.order_id,
                order_reference=e.order.reference if e.order_id else None,
            )
            for e in found[:limit]
        ],
        has_more=len(found) > limit,
        orders=[
            OrderRow(
                id=o.id,
                reference=o.reference,
                wits=o.wits,
                price=o.price,
                currency=o.currency,
                provider=o.provider,
                provider_label=labels.get(o.provider, o.provider),
                state=o.state,
                created_at=o.created_at,
                credited_at=o.credited_at,
            )
            for o in orders[:RECENT_ORDERS]
        ],
        more_orders=len(orders) > RECENT_ORDERS,
    )
