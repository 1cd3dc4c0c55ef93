"""API key format, pure: `cw_sk_` + 12-char lookup + 40-char secret, all base62.

- The lookup finds the row in one indexed query; the secret never leaves this process except
  in the one response that shows a new key.
- Only SHA-256 of the whole key is stored. The secret carries ~238 bits of entropy, so a fast
  hash is safe (nobody can brute-force it) and keeps authentication cheap.
- Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

PREFIX = "cw_sk_"
LOOKUP_LEN = 12
SECRET_LEN = 40
KEY_LEN = len(PREFIX) + LOOKUP_LEN + SECRET_LEN
ALPHABET = string.ascii_letters + string.digits
_ALPHABET_SET = frozenset(ALPHABET)


@dataclass(frozen=True)
class GeneratedKey:
    plaintext: str
    lookup: str
    digest: str

    @property
    def visible_prefix(self) -> str:
        return visible_prefix(self.lookup)


@dataclass(frozen=True)
class ParsedKey:
    plaintext: str
    lookup: str


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate() -> GeneratedKey:
    lookup = _random(LOOKUP_LEN)
    plaintext = PREFIX + lookup + _random(SECRET_LEN)
    return GeneratedKey(plaintext=plaintext, lookup=lookup, digest=digest(plaintext))


def looks_like_key(raw: str) -> bool:
    """True when the caller clearly meant an API key (as opposed to a JWT)."""
    return raw.startswith(PREFIX)


def parse(raw: str) -> ParsedKey | None:
    """The key's parts, or None when it cannot be a key we issued."""
    if len(raw) != KEY_LEN or not raw.startswith(PREFIX):
        return None
    body = raw[len(PREFIX) :]
    if not _ALPHABET_SET.issuperset(body):
        return None
    return ParsedKey(plaintext=raw, lookup=body[:LOOKUP_LEN])


def matches(plaintext: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(plaintext), stored_digest)


def visible_prefix(lookup: str) -> str:
    """What lists show: enough to recognise a key, useless to use it."""
    return PREFIX + lookup[:8]
