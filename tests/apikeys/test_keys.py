"""Pure tests of the key format (apikeys/keys.py) and scope rules (apikeys/scopes.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from apikeys import keys
from apikeys.scopes import Scope, covers, format_scopes, parse_scopes, satisfies

FULL = frozenset({Scope.FULL})
AI = frozenset({Scope.AI})
DATA = frozenset({Scope.DATA})
AUTOMATION = frozenset({Scope.AUTOMATION})
NONE: frozenset[Scope] = frozenset()


def test_generated_key_has_prefix_lookup_and_secret_of_fixed_lengths():
    generated = keys.generate()

    assert keys.KEY_LEN == 58
    assert len(generated.plaintext) == 58
    assert generated.plaintext.startswith("cw_sk_")
    assert generated.lookup == generated.plaintext[6:18]
    assert len(generated.plaintext[18:]) == 40


def test_generated_key_body_is_base62():
    generated = keys.generate()

    assert set(generated.plaintext[6:]) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    )


def test_generated_keys_differ():
    plaintexts = {keys.generate().plaintext for _ in range(200)}
    lookups = {keys.parse(p).lookup for p in plaintexts}

    assert len(plaintexts) == 200
    assert len(lookups) == 200


def test_generated_digest_is_sha256_hex_of_the_whole_key():
    generated = keys.generate()

    assert generated.digest == hashlib.sha256(generated.plaintext.encode()).hexdigest()
    assert keys.digest(generated.plaintext) == generated.digest
    assert len(generated.digest) == 64


def test_visible_prefix_is_prefix_plus_first_eight_lookup_chars():
    generated = keys.generate()

    assert generated.visible_prefix == "cw_sk_" + generated.lookup[:8]
    assert keys.visible_prefix("ABCDEFGHIJKL") == "cw_sk_ABCDEFGH"


def test_parse_accepts_a_generated_key():
    generated = keys.generate()

    assert keys.parse(generated.plaintext) == keys.ParsedKey(
        plaintext=generated.plaintext, lookup=generated.lookup
    )


VALID_BODY = "A" * 12 + "b" * 40


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "cw_sk_",
        "cw_sk_" + VALID_BODY[:-1],
        "cw_sk_" + VALID_BODY + "c",
        "cw_pk_" + VALID_BODY,
        "CW_SK_" + VALID_BODY,
        "sk_" + VALID_BODY + "abc",
        "cw_sk_" + VALID_BODY[:-1] + "-",
        "cw_sk_" + VALID_BODY[:-1] + "_",
        "cw_sk_" + VALID_BODY[:-1] + " ",
        "cw_sk_" + VALID_BODY[:-1] + "é",
        " cw_sk_" + VALID_BODY[:-1],
        "cw_sk_" + "A" * 11 + "." + "b" * 40,
        "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJlc2lnbmF0dXJlc2ln",
    ],
)
def test_parse_rejects_malformed_keys(raw):
    assert keys.parse(raw) is None


def test_parse_takes_lookup_from_the_twelve_chars_after_the_prefix():
    assert keys.parse("cw_sk_" + VALID_BODY) == keys.ParsedKey(
        plaintext="cw_sk_" + VALID_BODY, lookup="AAAAAAAAAAAA"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("cw_sk_" + VALID_BODY, True),
        ("cw_sk_short", True),
        ("cw_sk_", True),
        ("eyJhbGciOiJIUzI1NiJ9.e30.sig", False),
        ("sk-openai-style", False),
        ("", False),
    ],
)
def test_looks_like_key_is_true_only_for_the_key_prefix(raw, expected):
    assert keys.looks_like_key(raw) is expected


def test_matches_accepts_only_the_exact_key():
    generated = keys.generate()
    other = keys.generate()

    assert keys.matches(generated.plaintext, generated.digest) is True
    assert keys.matches(other.plaintext, generated.digest) is False
    # A different last character (never the same one: that would be the key itself).
    last = "y" if generated.plaintext.endswith("x") else "x"
    assert keys.matches(generated.plaintext[:-1] + last, generated.digest) is False
    assert keys.matches(generated.plaintext, generated.digest.upper()) is False


def test_matches_compares_in_constant_time(monkeypatch):
    calls: list[tuple[str, str]] = []
    compare = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    generated = keys.generate()

    assert keys.matches(generated.plaintext, generated.digest) is True
    assert calls == [(generated.digest, generated.digest)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("full", FULL),
        ("ai,data", frozenset({Scope.AI, Scope.DATA})),
        (" AI , Data ,", frozenset({Scope.AI, Scope.DATA})),
        ("automation,automation", AUTOMATION),
        (["ai", "automation"], frozenset({Scope.AI, Scope.AUTOMATION})),
        (("data",), DATA),
        ("full,ai,data,automation", frozenset(Scope)),
    ],
)
def test_parse_scopes_reads_strings_and_lists(raw, expected):
    assert parse_scopes(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("admin", "unknown scope 'admin'; use full, ai, data or automation"),
        ("ai,root", "unknown scope 'root'; use full, ai, data or automation"),
        (["ai", "*"], "unknown scope '*'; use full, ai, data or automation"),
        ("", "at least one scope is required"),
        (" , ,", "at least one scope is required"),
        ([], "at least one scope is required"),
    ],
)
def test_parse_scopes_refuses_unknown_or_empty(raw, message):
    with pytest.raises(ValueError, match="^" + message.replace("*", r"\*") + "$"):
        parse_scopes(raw)


def test_format_scopes_is_sorted_and_comma_separated():
    assert format_scopes({Scope.DATA, Scope.AI}) == "ai,data"
    assert format_scopes(frozenset(Scope)) == "ai,automation,data,full"
    assert parse_scopes(format_scopes({Scope.AUTOMATION, Scope.FULL})) == frozenset(
        {Scope.AUTOMATION, Scope.FULL}
    )


@pytest.mark.parametrize(
    ("held", "required", "expected"),
    [
        (FULL, AI, True),
        (FULL, DATA, True),
        (FULL, AUTOMATION, True),
        (FULL, NONE, True),
        (AI, AI, True),
        (AI, DATA, False),
        (AI, AUTOMATION, False),
        (AI, NONE, True),
        (DATA, DATA, True),
        (DATA, AI, False),
        (AUTOMATION, AUTOMATION, True),
        (AUTOMATION, AI, False),
        (frozenset({Scope.AI, Scope.DATA}), DATA, True),
        (frozenset({Scope.AI, Scope.DATA}), AUTOMATION, False),
        (NONE, NONE, True),
        (NONE, AI, False),
    ],
)
def test_satisfies_table(held, required, expected):
    assert satisfies(held, required) is expected


@pytest.mark.parametrize(
    ("held", "requested", "expected"),
    [
        (FULL, FULL, True),
        (FULL, frozenset(Scope), True),
        (FULL, AI, True),
        (AUTOMATION, AUTOMATION, True),
        (AUTOMATION, AI, False),
        (AUTOMATION, FULL, False),
        (AUTOMATION, frozenset({Scope.AUTOMATION, Scope.AI}), False),
        (frozenset({Scope.AUTOMATION, Scope.DATA}), DATA, True),
        (
            frozenset({Scope.AUTOMATION, Scope.DATA}),
            frozenset({Scope.AUTOMATION, Scope.DATA}),
            True,
        ),
        (frozenset({Scope.AUTOMATION, Scope.DATA}), FULL, False),
        (AI, AI, True),
        (AI, FULL, False),
        (NONE, AI, False),
    ],
)
def test_covers_never_grants_more_than_held(held, requested, expected):
    assert covers(held, requested) is expected
