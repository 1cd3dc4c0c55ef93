"""Scopes and the authenticated principal every API view sees as `request.auth`.

A key holds one or more of `full | ai | data | automation`; `full` satisfies every requirement.
A JWT session acts with `full` for its own user.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    FULL = "full"
    AI = "ai"
    DATA = "data"
    AUTOMATION = "automation"


ALL_SCOPES = frozenset(Scope)


def parse_scopes(values: str | list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """Scopes from "ai,data" or a list; ValueError naming the first unknown one."""
    items = values.split(",") if isinstance(values, str) else list(values)
    result: set[Scope] = set()
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        try:
            result.add(Scope(name))
        except ValueError:
            raise ValueError(f"unknown scope {name!r}; use full, ai, data or automation") from None
    if not result:
        raise ValueError("at least one scope is required")
    return frozenset(result)


def format_scopes(scopes: frozenset[Scope] | set[Scope]) -> str:
    return ",".join(sorted(str(scope) for scope in scopes))


def satisfies(held: frozenset[Scope], required: frozenset[Scope]) -> bool:
    """Empty `required` means any valid credential."""
    return not required or Scope.FULL in held or bool(held & required)


def covers(held: frozenset[Scope], requested: frozenset[Scope]) -> bool:
    """Whether a key holding `held` may mint a key with `requested` (never more than itself)."""
    return Scope.FULL in held or requested <= held


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    scopes: frozenset[Scope]
    key_id: uuid.UUID | None = None
    key_rpm: int | None = None
    # The account's requests/minute as of authentication (its tier's, or its custom limit).
    account_rpm: int = 0
    # The account epoch a cached key was validated under (apikeys.keycache); None: not cached.
    epoch: str | None = None

    @property
    def is_session(self) -> bool:
        return self.key_id is None
