"""Key lifecycle: create (plaintext returned once), authenticate, rename, rotate, revoke.

Every function scopes by the owning user: another tenant's key id behaves exactly like an
unknown id (404), so ids leak nothing. Authentication reads the row on every request, which is
what makes a revocation effective on every process at once.
"""

from __future__ import annotations

import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from accounts.models import User
from apikeys import keycache, keys
from apikeys.models import ApiKey
from apikeys.scopes import Principal, Scope, covers, format_scopes, parse_scopes
from clawwits.errors import ApiError, Code

MAX_KEY_NAME = 100
MAX_GRACE_S = 30 * 86400
# The column's range (PositiveIntegerField): larger values would fail in the database.
MAX_KEY_RPM = 2_147_483_647
# Compared against when the lookup is unknown, so unknown and wrong keys cost the same time.
_DUMMY_DIGEST = keys.digest(keys.PREFIX + "0" * (keys.LOOKUP_LEN + keys.SECRET_LEN))


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    plaintext: str


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ApiError(Code.INVALID_REQUEST, "name: a key needs a name.", param="name")
    if len(name) > MAX_KEY_NAME:
        raise ApiError(
            Code.INVALID_REQUEST, f"name: at most {MAX_KEY_NAME} characters.", param="name"
        )
    # PostgreSQL refuses NUL in text columns (a 500 if it got that far); no other control
    # character belongs in a label shown in lists either.
    # A lone surrogate (from a form or a non-JSON caller) cannot be stored as UTF-8 either.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        raise ApiError(
            Code.INVALID_REQUEST,
            "name: control characters and lone surrogates are not allowed.",
            param="name",
        )
    return name


def _check_rpm(rate_limit_rpm: int | None) -> None:
    if rate_limit_rpm is not None and not 1 <= rate_limit_rpm <= MAX_KEY_RPM:
        raise ApiError(
            Code.INVALID_REQUEST,
            f"rate_limit_rpm: between 1 and {MAX_KEY_RPM}.",
            param="rate_limit_rpm",
        )


def create_key(
    *,
    user_id: uuid.UUID,
    name: str,
    scopes: frozenset[Scope],
    rate_limit_rpm: int | None = None,
    creator_scopes: frozenset[Scope] = frozenset({Scope.FULL}),
    rotated_from: ApiKey | None = None,
) -> IssuedKey:
    """Create a key and return its plaintext, the only time it exists outside the client.

    A key can never mint a key with more scopes than itself (`creator_scopes`).
    """
    if not scopes:
        raise ApiError(Code.INVALID_REQUEST, "scopes: at least one scope.", param="scopes")
    if not covers(creator_scopes, scopes):
        raise ApiError(
            Code.INSUFFICIENT_SCOPE, "A key cannot create a key with more scopes than itself."
        )
    _check_rpm(rate_limit_rpm)
    generated = keys.generate()
    key = ApiKey.objects.create(
        user_id=user_id,
        name=_clean_name(name),
        lookup=generated.lookup,
        digest=generated.digest,
        scopes=format_scopes(scopes),
        rate_limit_rpm=rate_limit_rpm,
        rotated_from=rotated_from,
    )
    return IssuedKey(key=key, plaintext=generated.plaintext)


def get_key(*, user_id: uuid.UUID, key_id: uuid.UUID | str) -> ApiKey:
    try:
        return ApiKey.objects.get(pk=key_id, user_id=user_id)
    except (ApiKey.DoesNotExist, ValueError, TypeError):
        raise ApiError(Code.NOT_FOUND, "No such API key.") from None


def revoke_key(*, user_id: uuid.UUID, key_id: uuid.UUID | str) -> ApiKey:
    """Revoke now. Idempotent: revoking a revoked key keeps its first revocation time."""
    key = get_key(user_id=user_id, key_id=key_id)
    with transaction.atomic():
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        keycache.bump([key.user_id])
    key.refresh_from_db()
    return key


def rename_key(*, user_id: uuid.UUID, key_id: uuid.UUID | str, name: str) -> ApiKey:
    key = get_key(user_id=user_id, key_id=key_id)
    key.name = _clean_name(name)
    key.save(update_fields=["name"])
    return key


def rotate_key(
    *,
    user_id: uuid.UUID,
    key_id: uuid.UUID | str,
    grace_seconds: int,
    creator_scopes: frozenset[Scope] = frozenset({Scope.FULL}),
) -> IssuedKey:
    """Issue a successor with the same name, scopes and limit; the old key stops after grace.

    grace_seconds = 0 revokes the old key at once. A revoked or expired key cannot be rotated,
    nor can one already rotated (that would extend its grace and fork a second successor).
    """
    if not 0 <= grace_seconds <= MAX_GRACE_S:
        raise ApiError(
            Code.INVALID_REQUEST,
            f"grace_seconds: between 0 and {MAX_GRACE_S}.",
            param="grace_seconds",
        )
    now = timezone.now()
    with transaction.atomic():
        old = ApiKey.objects.select_for_update().filter(pk=key_id, user_id=user_id).first()
        if old is None:
            raise ApiError(Code.NOT_FOUND, "No such API key.")
        if not old.is_usable(now):
            raise ApiError(Code.INVALID_REQUEST, "This key is revoked or expired.")
        if old.expires_at is not None:
            raise ApiError(
                Code.INVALID_REQUEST,
                "This key was already rotated; revoke it to end its grace period now.",
            )
        issued = create_key(
            user_id=user_id,
            name=old.name,
            scopes=old.scope_set,
            rate_limit_rpm=old.rate_limit_rpm,
            creator_scopes=creator_scopes,
            rotated_from=old,
        )
        if grace_seconds == 0:
            old.revoked_at = now
        else:
            old.expires_at = now + timedelta(seconds=grace_seconds)
        old.save(update_fields=["revoked_at", "expires_at"])
        keycache.bump([old.user_id])
    return issued


def _unauthorized() -> ApiError:
    # One body for malformed, unknown, revoked and expired keys: nothing to probe.
    return ApiError(Code.UNAUTHORIZED)


def authenticate(raw: str, *, fresh: bool = False) -> tuple[object, Principal]:
    """(user, principal) for a valid key; ApiError(unauthorized) for anything else.

    With Redis configured the key comes from the process's cache (apikeys.keycache) unless
    `fresh`; the principal then carries the account epoch the rate limiter re-checks, so a
    stale entry is never acted on. The user is loaded lazily: the gateway needs only its id.
    """
    parsed = keys.parse(raw)
    if parsed is None:
        raise _unauthorized()
    shared = not fresh and keycache.enabled()
    entry = keycache.get(parsed.lookup) if shared else None
    user: object | None = None
    if entry is None:
        entry, user = _load_shared(parsed.lookup) if shared else _load(parsed.lookup)
    if entry is None:
        keys.matches(parsed.plaintext, _DUMMY_DIGEST)
        raise _unauthorized()
    now = timezone.now()
    if (
        not keys.matches(parsed.plaintext, entry.digest)
        or entry.revoked
        or (entry.expires_at is not None and entry.expires_at <= now)
        or not entry.user_active
    ):
        raise _unauthorized()
    _touch(entry, now)
    principal = Principal(
        user_id=entry.user_id,
        scopes=parse_scopes(entry.scopes),
        key_id=entry.key_id,
        key_rpm=entry.key_rpm,
        account_rpm=entry.account_rpm,
        epoch=entry.epoch,
    )
    if user is None:
        user_id = entry.user_id
        user = SimpleLazyObject(lambda: User.objects.select_related("tier").get(pk=user_id))
    return user, principal


@dataclass
class _Loading:
    """A key being loaded from the database, for the callers that missed it meanwhile."""

    done: threading.Event = field(default_factory=threading.Event)
    entry: keycache.Entry | None = None
    failed: bool = True


_loading: dict[str, _Loading] = {}
_loading_lock = threading.Lock()


def _load(lookup: str) -> tuple[keycache.Entry | None, object | None]:
    """The key's entry from the database, cached when the cache is on."""
    cached = keycache.enabled()
    epoch = None
    if cached:
        # The epoch must be read before the rows it vouches for: a change committed after it
        # was read bumps it afterwards, so this entry fails its first guard instead of being
        # trusted. A key's owner never changes, so the owner can be looked up first.
        owner = ApiKey.objects.filter(lookup=lookup).values_list("user_id", flat=True).first()
        if owner is None:
            return None, None
        epoch = keycache.current_epoch(owner)
    key = ApiKey.objects.select_related("user", "user__tier").filter(lookup=lookup).first()
    if key is None:
        return None, None
    entry = keycache.Entry(
        key_id=key.id,
        user_id=key.user_id,
        digest=key.digest,
        scopes=key.scopes,
        key_rpm=key.rate_limit_rpm,
        account_rpm=key.user.requests_per_minute,
        user_active=key.user.is_active,
        revoked=key.revoked_at is not None,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        epoch=epoch,
        loaded_at=time.monotonic(),
    )
    if cached:
        keycache.put(lookup, entry)
    return entry, key.user


def _load_shared(lookup: str) -> tuple[keycache.Entry | None, object | None]:
    """`_load`, run once at a time per key in this process: callers that miss the cache while
    it runs wait for it and take what it read (and no user: it is loaded when asked for). A
    burst of calls on a cold key (a worker's first second, an entry's expiry) would otherwise
    run its three queries, and its last-use write, once per call, each holding a pooled
    connection. If the load fails, each waiting caller loads the key itself.

    Only with the cache on, whose epochs make a shared entry as safe as a cached one (one read
    before a revocation committed fails the rate limiter's guard and is reloaded); not for
    `fresh` loads, which follow a changed epoch: a load that began before the change could
    return an entry read before it."""
    with _loading_lock:
        loading = _loading.get(lookup)
        leads = loading is None
        if leads:
            loading = _loading[lookup] = _Loading()
    if not leads:
        loading.done.wait()
        return _load(lookup) if loading.failed else (loading.entry, None)
    try:
        entry, user = _load(lookup)
        loading.entry, loading.failed = entry, False
        return entry, user
    finally:
        with _loading_lock:
            del _loading[lookup]
        loading.done.set()


def _touch(entry: keycache.Entry, now: timezone.datetime) -> None:
    """Record last use at most once a minute per key, whatever the number of processes."""
    interval = timedelta(seconds=settings.APIKEY_LAST_USED_INTERVAL_S)
    if entry.last_used_at is not None and now - entry.last_used_at < interval:
        return
    entry.last_used_at = now
    cutoff = now - interval
    ApiKey.objects.filter(pk=entry.key_id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=cutoff)
    ).update(last_used_at=now)
