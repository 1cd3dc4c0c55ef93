"""Model instances built the way Django builds the rows it reads: positionally.

`Model(**values)` walks every field, looks each one up among the keyword arguments and calls
the default of each one missing; on the request path that cost ~30 µs per instance, and a
billed call builds two (its reservation and its usage record). `build` returns the same
instance (every concrete field set to the given value or to its default, the same pre_init
and post_init signals) through a positional call, the path Django takes for rows read from
the database, at about a third of the cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)

_FIELDS: dict[type[models.Model], tuple[tuple[tuple[str, models.Field], ...], frozenset[str]]] = {}


def build(model: type[M], values: Mapping[str, object], *, saved: bool = False) -> M:
    """`model(**values)`, with fields named by attname (`user_id`, not `user`). `saved` marks
    an instance whose row the caller has just written (`_state.adding` False)."""
    shape = _FIELDS.get(model)
    if shape is None:
        fields = tuple((f.attname, f) for f in model._meta.concrete_fields)
        shape = _FIELDS[model] = (fields, frozenset(name for name, _ in fields))
    fields, names = shape
    if not values.keys() <= names:
        unknown = ", ".join(sorted(values.keys() - names))
        raise TypeError(f"{model.__name__} has no field named {unknown}")
    instance = model(*[values[n] if n in values else f.get_default() for n, f in fields])
    if saved:
        instance._state.adding = False
    return instance
