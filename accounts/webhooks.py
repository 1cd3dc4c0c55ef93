"""Account webhooks: events, their signature, at-least-once delivery, and the SSRF fence.

What a receiver sees (one POST per attempt to the account's webhook URL):

    POST /your/path HTTP/1.1
    Content-Type: application/json
    User-Agent: ClawWits-Webhooks/1
    ClawWits-Event-Id: evt_9f2c4e0b6a1d4c3e8b7a6f5e4d3c2b1a
    Idempotency-Key: evt_9f2c4e0b6a1d4c3e8b7a6f5e4d3c2b1a
    ClawWits-Event-Type: low_balance
    ClawWits-Signature: t=1767225600,v1=<64 hex digits>

    {"created":1767225600,"data":{"available":9500,"charged":700,"threshold":10000,
     "userId":"..."},"id":"evt_9f2c...","object":"event","type":"low_balance"}

Verifying a delivery: `v1` is the hex HMAC-SHA256 of `f"{t}.{raw_body}"`, keyed with the
account's signing secret (the whole `whsec_...` string, UTF-8), exactly what `sign` computes.
Compare it in constant time and reject a `t` more than a few minutes old (`verify` does both).
Each attempt is signed afresh with the time it is sent; the body is byte-identical on every
attempt of one event, so receivers dedupe on the event id (body `id`, `ClawWits-Event-Id`,
`Idempotency-Key`: the same value).

Events: `low_balance` (a charge took `available` from >= the account's threshold to below it),
`topup.credited` (a top-up order was credited), `webhook.test` (asked for by the account).

Guarantees:
- An event is stored (a `WebhookEvent` row, whose body never changes) before anything is sent,
  and only if the account has a webhook URL at that moment. It is enqueued with
  `transaction.on_commit`: it exists only if what it announces committed, and no network call
  or broker publish happens inside a transaction.
- At least once: each attempt is claimed with a conditional UPDATE (one attempt number, one
  lease), so two workers never send the same attempt; a connection error, a timeout or a
  non-2xx answer schedules the next attempt after `backoff_seconds` (Celery retry), up to
  WEBHOOK_MAX_ATTEMPTS; a 2xx marks the event delivered. `sweep` (run by beat) re-enqueues
  events whose next attempt is long overdue (a lost message, a crashed worker).
- SSRF: a URL is accepted only if it is http(s) without userinfo and every address its host
  resolves to is public (`address_problem`): no loopback (unless WEBHOOK_ALLOW_LOOPBACK, for
  tests), private, shared (100.64/10), link-local (incl. 169.254.169.254), unique-local,
  site-local, multicast, reserved or unspecified address, nor an IPv6 form wrapping one
  (IPv4-mapped, 6to4, NAT64). Hosts that end in a number are read as IPv4 the way browsers
  read them (decimal, octal, hex, short forms), so no spelling of 127.0.0.1 slips through.
  Refusal happens before any connection. Every delivery re-validates and then connects to one
  of the addresses it just validated (never resolving the name a second time), so DNS
  rebinding cannot steer a delivery inward. Redirects are never followed; proxies are not
  used.
- The low-balance check on the charge path costs no query when nothing can be announced: it
  reads the account's threshold from a per-process copy refreshed every GATEWAY_CONFIG_TTL_S,
  and re-reads the row only when that copy says a crossing happened (so a stale copy can miss
  an event in that window, never invent one).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User, WebhookEvent
from clawwits.errors import ApiError, Code, rate_limited
from wits import ledger
from wits.models import TopupOrder

logger = logging.getLogger(__name__)

EventType = WebhookEvent.Type
State = WebhookEvent.State

SIGNATURE_HEADER = "ClawWits-Signature"
EVENT_ID_HEADER = "ClawWits-Event-Id"
EVENT_TYPE_HEADER = "ClawWits-Event-Type"
USER_AGENT = "ClawWits-Webhooks/1"
SECRET_PREFIX = "whsec_"
EVENT_PREFIX = "evt_"
SIGNATURE_TOLERANCE_S = 300
MAX_URL_LENGTH = 500
MAX_THRESHOLD = 2**63 - 1
RETRY_CAP_S = 3600.0
# Test events are an outbound request anyone with a session can trigger: bound them so the
# button cannot be used to hammer a third party's server.
TEST_EVENTS_PER_WINDOW = 5
TEST_EVENT_WINDOW = timedelta(minutes=1)
# Past their due time by this much, pending events count as lost and the sweep re-enqueues them.
SWEEP_GRACE = timedelta(minutes=2)
_CONNECT_TIMEOUT_S = 5.0
_PREFS_MAX = 100_000


class UnsafeUrl(ValueError):
    """A webhook URL that is malformed or reaches a non-public address; nothing was sent."""


# --- Signing ---------------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(24)


def sign(*, secret: str, timestamp: int, body: str) -> str:
    """Hex HMAC-SHA256 of `f"{timestamp}.{body}"` keyed with the secret (both UTF-8)."""
    message = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, timestamp: int, body: str) -> str:
    return f"t={timestamp},v1={sign(secret=secret, timestamp=timestamp, body=body)}"


def verify(
    *, secret: str, header: str, body: str, now: int, tolerance_s: int = SIGNATURE_TOLERANCE_S
) -> bool:
    """What a receiver does: True iff some v1 matches and t is within `tolerance_s` of now."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _sep, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts.get("t", [""])[0])
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret=secret, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))


# --- SSRF: which URLs and addresses may receive a webhook --------------------------------------


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    host: str  # ASCII (IDNA), lower case, no brackets, no trailing dot
    port: int
    target: str  # path and query, as sent on the request line
    literal: str | None  # the address, when the host is an IP literal in any spelling


@dataclass(frozen=True)
class Target:
    """A validated destination: connect only to `addresses`, every one of them public."""

    url: ParsedUrl
    addresses: tuple[str, ...]


def _ipv4_number(part: str) -> int | None:
    """One dotted part the way browsers read it: 0x.. hex, 0.. octal, else decimal."""
    digits, radix = part, 10
    if part[:2] in ("0x", "0X"):
        digits, radix = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, radix = part[1:], 8
    if digits == "":
        return 0 if radix != 10 else None
    allowed = {10: "0123456789", 8: "01234567", 16: "0123456789abcdefABCDEF"}[radix]
    if any(ch not in allowed for ch in digits):
        return None
    return int(digits, radix)


def _ends_in_number(host: str) -> bool:
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or (last[:2] in ("0x", "0X") and _ipv4_number(last) is not None)


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """WHATWG's IPv4 parser: 127.1, 0x7f.1, 0177.0.0.1 and 2130706433 all mean 127.0.0.1."""
    parts = host.split(".")
    if len(parts) > 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last + sum(n * 256 ** (3 - i) for i, n in enumerate(head))
    return ipaddress.IPv4Address(value)


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def parse_url(url: str) -> ParsedUrl:
    """Split a webhook URL the one way it will be used; UnsafeUrl for anything ambiguous.

    Pure: no DNS, no network. Raises for a non-http(s) scheme, userinfo, control characters or
    spaces, backslashes, bad ports, non-ASCII paths, zone ids, single-label hosts and hosts
    that end in a number but are no valid IPv4 address.
    """
    if not url:
        raise UnsafeUrl(_("Enter a URL."))
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(_("The URL is longer than %(n)d characters.") % {"n": MAX_URL_LENGTH})
    # urlsplit silently drops tabs and newlines; a URL that means two things is refused instead.
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise UnsafeUrl(_("The URL contains spaces, control characters or backslashes."))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl(_("The URL is malformed.")) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl(_("The URL must start with https:// or http://."))
    if "@" in parts.netloc:
        raise UnsafeUrl(_("The URL must not contain a user name or password."))
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if not target.isascii():
        raise UnsafeUrl(_("Percent-encode non-ASCII characters in the URL's path."))
    if port == 0:
        raise UnsafeUrl(_("The URL's port is invalid."))
    port = port or (443 if scheme == "https" else 80)
    raw_host = parts.hostname or ""
    if not raw_host:
        raise UnsafeUrl(_("The URL has no host."))
    if parts.netloc.startswith("[") or ":" in raw_host:
        if "%" in raw_host:
            raise UnsafeUrl(_("IPv6 zone identifiers are not allowed."))
        try:
            literal = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise UnsafeUrl(_("The URL's IPv6 address is malformed.")) from None
        return ParsedUrl(scheme, str(literal), port, target, str(literal))
    try:
        host = raw_host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeUrl(_("The URL's host name is invalid.")) from None
    host = host[:-1] if host.endswith(".") else host
    labels = host.split(".")
    if not host or any(ch not in _HOST_CHARS for ch in host) or "" in labels:
        raise UnsafeUrl(_("The URL's host name is invalid."))
    if _ends_in_number(host):
        address = _legacy_ipv4(host)
        if address is None:
            raise UnsafeUrl(_("The URL's host is not a valid IPv4 address."))
        return ParsedUrl(scheme, str(address), port, target, str(address))
    if len(labels) < 2 or len(host) > 253 or any(len(label) > 63 for label in labels):
        raise UnsafeUrl(_("Use a fully qualified public host name."))
    return ParsedUrl(scheme, host, port, target, None)


def address_problem(address: str, *, allow_loopback: bool) -> str | None:
    """Why `address` may not receive a webhook (a short phrase), or None when it is public.

    Pure. IPv6 forms that carry an IPv4 address (mapped, 6to4) are judged by that address.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_problem(str(ip.ipv4_mapped), allow_loopback=allow_loopback)
        if ip.sixtofour is not None:
            inner = address_problem(str(ip.sixtofour), allow_loopback=False)
            if inner is not None:
                return f"6to4 of {inner}"
        if ip.is_site_local:
            return "site-local"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
    )
    for flagged, name in checks:
        if flagged:
            return name
    if not ip.is_global:
        return "non-public"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


def check_url(url: str, *, allow_loopback: bool | None = None) -> Target:
    """Parse, resolve and vet a webhook URL; UnsafeUrl unless every address is public.

    An IP literal (in any spelling) is judged without DNS; a name is resolved once here and
    every answer must pass. No connection is ever made.
    """
    if allow_loopback is None:
        allow_loopback = settings.WEBHOOK_ALLOW_LOOPBACK
    parsed = parse_url(url.strip())
    addresses = [parsed.literal] if parsed.literal else _resolve(parsed.host, parsed.port)
    if not addresses:
        raise UnsafeUrl(_("The URL's host name does not resolve."))
    for address in addresses:
        problem = address_problem(address, allow_loopback=allow_loopback)
        if problem is not None:
            raise UnsafeUrl(
                _("The URL reaches %(address)s (%(kind)s): webhooks go only to public addresses.")
                % {"kind": problem, "address": address}
            )
    return Target(parsed, tuple(addresses))


# --- Sending one request to a validated address ------------------------------------------------


def _open_socket(address: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((address, port), min(timeout, _CONNECT_TIMEOUT_S))
    sock.settimeout(timeout)
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Talks to `address` while naming `host` (Host header); never resolves `host` itself."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = _open_socket(self.address, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to `address`, with SNI and certificate checks for `host`."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = _open_socket(self.address, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no HTTP answer at all
    error: str


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS error: {exc.__class__.__name__}"
    return f"{exc.__class__.__name__}: {exc}"[:200]


def _post(target: Target, *, headers: dict[str, str], body: bytes, timeout: float) -> Reply:
    """POST to the first validated address that accepts a connection; no redirects."""
    kind = _PinnedHTTPSConnection if target.url.scheme == "https" else _PinnedHTTPConnection
    error = "no address"
    for address in target.addresses:
        conn = kind(target.url.host, target.url.port, address=address, timeout=timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            error = _describe(exc)
            continue
        try:
            conn.request("POST", target.url.target, body=body, headers=headers)
            response = conn.getresponse()
            ok = 200 <= response.status < 300
            return Reply(response.status, "" if ok else f"HTTP {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            # The request may have arrived: trying the next address would deliver it twice
            # in one attempt, so this attempt ends here.
            return Reply(None, _describe(exc))
        finally:
            conn.close()
    return Reply(None, error)


# --- Events ----------------------------------------------------------------------------------


def new_event_id() -> str:
    return EVENT_PREFIX + secrets.token_hex(16)


def _enqueue(event_id: str, attempt: int) -> None:
    from accounts import tasks  # the task module imports this one

    tasks.deliver_webhook.delay(event_id, attempt)


def _record(*, user_id: uuid.UUID, event_type: str, data: dict) -> WebhookEvent:
    """Store the event now; enqueue its first attempt once the caller's transaction commits."""
    event_id = new_event_id()
    created = timezone.now()
    payload = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(created.timestamp()),
        "data": data,
    }
    event = WebhookEvent.objects.create(
        id=event_id,
        user_id=user_id,
        type=event_type,
        body=json.dumps(payload, separators=(",", ":"), sort_keys=True),
        created_at=created,
        next_attempt_at=created,
    )
    # robust: a broker that is down must not undo or fail what the event announces; the sweep
    # sends the event later.
    transaction.on_commit(lambda: _enqueue(event_id, 1), robust=True)
    return event


def crosses(*, threshold: int, available_after: int, charged: int) -> bool:
    """A charge crossed the threshold: without it available was >= threshold, now it is below.

    Pure. "Without it" is available_after + charged: the balance had this request's Wits never
    been spent, so a sequence of charges crosses a threshold once on its way down.
    """
    return charged > 0 and available_after < threshold <= available_after + charged


@dataclass(frozen=True)
class _Prefs:
    threshold: int | None  # None: no webhook URL, nothing to announce
    expires: float


_prefs: OrderedDict[uuid.UUID, _Prefs] = OrderedDict()
_prefs_lock = threading.Lock()


def _forget(user_id: uuid.UUID) -> None:
    with _prefs_lock:
        _prefs.pop(user_id, None)


def _announced_threshold(user_id: uuid.UUID) -> int | None:
    """The account's threshold if it has a webhook URL, from this process's short-lived copy."""
    now = time.monotonic()
    with _prefs_lock:
        hit = _prefs.get(user_id)
        if hit is not None and hit.expires > now:
            return hit.threshold
    row = (
        User.objects.filter(pk=user_id).values_list("low_balance_threshold", "webhook_url").first()
    )
    threshold = row[0] if row is not None and row[1] else None
    with _prefs_lock:
        _prefs[user_id] = _Prefs(threshold, now + settings.GATEWAY_CONFIG_TTL_S)
        _prefs.move_to_end(user_id)
        while len(_prefs) > _PREFS_MAX:
            _prefs.popitem(last=False)
    return threshold


def after_charge(*, user_id: uuid.UUID, settlement: ledger.Settlement) -> WebhookEvent | None:
    """Announce `low_balance` when this settlement's charge crossed the account's threshold.

    Call it after `ledger.commit` returned. A replay (applied=False) or a charge of 0 announces
    nothing. Never raises: the charge is already committed, and a failed announcement must not
    turn the client's success into an error.
    """
    if not settlement.applied or settlement.charged <= 0:
        return None

    def crossed_threshold() -> int | None:
        threshold = _announced_threshold(user_id)
        if threshold is None or not crosses(
            threshold=threshold,
            available_after=settlement.available_after,
            charged=settlement.charged,
        ):
            return None
        return threshold

    try:
        if crossed_threshold() is None:
            return None
        # The copy may be stale: decide on the row itself.
        _forget(user_id)
        threshold = crossed_threshold()
        if threshold is None:
            return None
        return _record(
            user_id=user_id,
            event_type=EventType.LOW_BALANCE,
            data={
                "userId": str(user_id),
                "available": settlement.available_after,
                "threshold": threshold,
                "charged": settlement.charged,
            },
        )
    except Exception:
        logger.exception("could not record a low_balance event for %s", user_id)
        return None


def topup_credited(*, order_id: uuid.UUID) -> WebhookEvent | None:
    """Announce a credited top-up order (call it in the transaction that credited it).

    Nothing is stored when the account has no webhook URL.
    """
    order = (
        TopupOrder.objects.filter(pk=order_id)
        .values(
            "user_id", "user__webhook_url", "reference", "wits", "price", "currency", "provider"
        )
        .first()
    )
    if order is None or not order["user__webhook_url"]:
        return None
    user_id = order["user_id"]
    return _record(
        user_id=user_id,
        event_type=EventType.TOPUP_CREDITED,
        data={
            "userId": str(user_id),
            "orderId": str(order_id),
            "reference": order["reference"],
            "wits": order["wits"],
            "price": order["price"],
            "currency": order["currency"],
            "provider": order["provider"],
            "available": ledger.balance(user_id=user_id).available,
        },
    )


def send_test_event(*, user_id: uuid.UUID) -> WebhookEvent:
    """Store and enqueue a `webhook.test` event.

    ApiError(invalid_request) without a webhook URL, ApiError(rate_limited) past
    TEST_EVENTS_PER_WINDOW in TEST_EVENT_WINDOW; nothing is stored then.
    """
    if not User.objects.filter(pk=user_id).exclude(webhook_url="").exists():
        raise ApiError(Code.INVALID_REQUEST, _("Set a webhook URL first."), param="url")
    now = timezone.now()
    recent = list(
        WebhookEvent.objects.filter(
            user_id=user_id, type=EventType.TEST, created_at__gt=now - TEST_EVENT_WINDOW
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:TEST_EVENTS_PER_WINDOW]
    )
    if len(recent) >= TEST_EVENTS_PER_WINDOW:
        wait = recent[-1] + TEST_EVENT_WINDOW - now
        raise rate_limited(int(wait.total_seconds() * 1000))
    return _record(
        user_id=user_id,
        event_type=EventType.TEST,
        data={"userId": str(user_id), "message": "This is a test event from ClawWits."},
    )


# --- Account settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret: str
    low_balance_threshold: int
    # True when this call generated the secret (the first URL of the account).
    secret_created: bool = False


def webhook_settings(*, user_id: uuid.UUID) -> WebhookSettings:
    url, secret, threshold = User.objects.filter(pk=user_id).values_list(
        "webhook_url", "webhook_secret", "low_balance_threshold"
    )[0]
    return WebhookSettings(url, secret, threshold)


def _valid_threshold(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_THRESHOLD:
        raise ApiError(
            Code.INVALID_REQUEST,
            _("low_balance_threshold: a whole number of Wits, 0 or more."),
            param="low_balance_threshold",
        )
    return value


def update_settings(
    *, user_id: uuid.UUID, url: str | None = None, low_balance_threshold: int | None = None
) -> WebhookSettings:
    """Set the webhook URL ("" clears it) and/or the low-balance threshold; None leaves one as
    it is.

    The URL must pass `check_url`. A signing secret is generated with the account's first URL
    and kept when the URL is cleared. ApiError(invalid_request) for a bad value: nothing
    changes then.
    """
    fields: dict[str, object] = {}
    if low_balance_threshold is not None:
        fields["low_balance_threshold"] = _valid_threshold(low_balance_threshold)
    if url is not None:
        url = url.strip()
        if url:
            try:
                check_url(url)
            except UnsafeUrl as exc:
                raise ApiError(Code.INVALID_REQUEST, str(exc), param="url") from None
        fields["webhook_url"] = url
    created = False
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        if fields.get("webhook_url") and not user.webhook_secret:
            fields["webhook_secret"] = new_secret()
            created = True
        for name, value in fields.items():
            setattr(user, name, value)
        if fields:
            user.save(update_fields=list(fields))
    _forget(user_id)
    return WebhookSettings(
        user.webhook_url, user.webhook_secret, user.low_balance_threshold, created
    )


def regenerate_secret(*, user_id: uuid.UUID) -> str:
    """Replace the signing secret; deliveries from now on are signed with the new one."""
    secret = new_secret()
    User.objects.filter(pk=user_id).update(webhook_secret=secret)
    return secret


def recent_events(*, user_id: uuid.UUID, limit: int = 20) -> list[WebhookEvent]:
    return list(WebhookEvent.objects.filter(user_id=user_id).order_by("-created_at")[:limit])


def get_event(*, user_id: uuid.UUID, event_id: str) -> WebhookEvent:
    """One of the account's own events; ApiError(not_found) for a missing or foreign one."""
    # NUL never appears in an id we issue, and PostgreSQL would refuse it with a DataError.
    event = (
        None
        if "\x00" in event_id
        else WebhookEvent.objects.filter(pk=event_id, user_id=user_id).first()
    )
    if event is None:
        raise ApiError(Code.NOT_FOUND, _("No such webhook event."))
    return event


# --- Delivery --------------------------------------------------------------------------------


def backoff_seconds(attempt: int, *, base: float) -> float:
    """The wait after failed attempt `attempt` (1-based): base, 2 base, 4 base ... capped."""
    return min(base * 2 ** (attempt - 1), RETRY_CAP_S)


@dataclass(frozen=True)
class Attempt:
    event_id: str
    attempt: int
    state: str  # the event's state afterwards, or "skipped" when this attempt was not ours
    status: int | None
    error: str
    retry_in: float | None  # seconds until the next attempt, when one is due


def _lease() -> timedelta:
    return timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_S + 30)


def _send(event: WebhookEvent) -> tuple[Reply, bool]:
    """One POST of the event; (reply, final) where final means retrying cannot help."""
    url, secret = event.user.webhook_url, event.user.webhook_secret
    if not url or not secret:
        return Reply(None, "no webhook URL is set"), True
    try:
        target = check_url(url)
    except UnsafeUrl as exc:
        return Reply(None, str(exc)[:200]), False
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event.id,
        "Idempotency-Key": event.id,
        EVENT_TYPE_HEADER: event.type,
        SIGNATURE_HEADER: signature_header(secret=secret, timestamp=timestamp, body=event.body),
    }
    reply = _post(
        target, headers=headers, body=event.body.encode(), timeout=settings.WEBHOOK_TIMEOUT_S
    )
    return reply, False


def deliver(*, event_id: str, attempt: int = 1) -> Attempt:
    """Make attempt number `attempt` of one event, if it is still due and nobody else is.

    The attempt is claimed first (one conditional UPDATE), so concurrent or duplicate tasks for
    the same attempt send nothing. Afterwards the event is delivered (2xx), failed (last
    attempt, or no URL any more) or pending with `retry_in` set.
    """
    now = timezone.now()
    max_attempts = settings.WEBHOOK_MAX_ATTEMPTS
    if not 1 <= attempt <= max_attempts:
        return Attempt(event_id, attempt, "skipped", None, "", None)
    claimed = (
        WebhookEvent.objects.filter(pk=event_id, state=State.PENDING, attempts=attempt - 1)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        .update(
            attempts=F("attempts") + 1,
            last_attempt_at=now,
            leased_until=now + _lease(),
            next_attempt_at=now + _lease(),
        )
    )
    if not claimed:
        return Attempt(event_id, attempt, "skipped", None, "", None)
    event = WebhookEvent.objects.select_related("user").get(pk=event_id)
    reply, final = _send(event)
    done = timezone.now()
    retry_in = None
    if reply.status is not None and 200 <= reply.status < 300:
        state, changes = State.DELIVERED, {"delivered_at": done, "next_attempt_at": None}
    elif final or attempt >= max_attempts:
        state, changes = State.FAILED, {"next_attempt_at": None}
    else:
        retry_in = backoff_seconds(attempt, base=settings.WEBHOOK_RETRY_BASE_S)
        # Counted from the attempt's start, so the schedule reads as exactly the backoff.
        state, changes = State.PENDING, {"next_attempt_at": now + timedelta(seconds=retry_in)}
    WebhookEvent.objects.filter(pk=event_id, attempts=attempt, state=State.PENDING).update(
        state=state,
        last_status=reply.status,
        last_error=reply.error[:200],
        leased_until=None,
        **changes,
    )
    if state != State.DELIVERED:
        logger.info("webhook %s attempt %d: %s", event_id, attempt, reply.error or reply.status)
    return Attempt(event_id, attempt, state, reply.status, reply.error, retry_in)


def sweep(*, limit: int = 500) -> int:
    """Re-enqueue pending events whose next attempt is overdue by SWEEP_GRACE; returns how many.

    Covers a publish that failed, a retry message that was lost and a worker that died
    mid-attempt (its lease runs out). Events whose last attempt died that way are failed.
    """
    now = timezone.now()
    max_attempts = settings.WEBHOOK_MAX_ATTEMPTS
    free = Q(leased_until__isnull=True) | Q(leased_until__lte=now)
    WebhookEvent.objects.filter(free, state=State.PENDING, attempts__gte=max_attempts).update(
        state=State.FAILED, next_attempt_at=None, leased_until=None
    )
    due = list(
        WebhookEvent.objects.filter(
            free,
            state=State.PENDING,
            attempts__lt=max_attempts,
            next_attempt_at__lt=now - SWEEP_GRACE,
        )
        .order_by("next_attempt_at")
        .values_list("id", "attempts")[:limit]
    )
    for event_id, attempts in due:
        _enqueue(event_id, attempts + 1)
    return len(due)
