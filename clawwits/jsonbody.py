"""Strict parsing of JSON request bodies, shared by the gateway routes and every DRF route.

Guarantee: a body either becomes a JSON object of valid Unicode or raises ApiError
(invalid_request, 400). Refused: empty bodies, bytes that are not UTF-8 (RFC 8259 §8.1; a leading
BOM is tolerated), NaN and Infinity, nesting deeper than the parser's recursion limit, anything
but an object at the top, and unpaired UTF-16 surrogates written as \\u escapes. A surrogate
cannot be encoded as UTF-8, so letting one through would fail later, wherever the text is next
encoded (PostgreSQL, the screening, the upstream call, the error body) - as a 500.
"""

from __future__ import annotations

import json
import re

from rest_framework.parsers import BaseParser

from clawwits.errors import ApiError, Code

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def loads_object(raw: bytes) -> dict:
    """The body as a JSON object of valid Unicode; ApiError(invalid_request) for anything else."""
    if not raw:
        raise ApiError(Code.INVALID_REQUEST, "The request body is empty; send a JSON object.")
    try:
        # json.loads(bytes) would guess UTF-16/32 and decode with surrogatepass; strict UTF-8
        # here refuses both those and raw encoded surrogates.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(Code.INVALID_REQUEST, "The request body is not valid UTF-8.") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError(Code.INVALID_REQUEST, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(Code.INVALID_REQUEST, "The request body must be a JSON object.")
    # Paired escapes (an emoji from an ensure_ascii client) are fine; only the full re-encode
    # tells a lone one apart, so it runs only when some surrogate escape is present at all.
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(
                Code.INVALID_REQUEST,
                "The request body contains an unpaired UTF-16 surrogate escape (\\ud800-\\udfff).",
            ) from None
    return body


class StrictJSONParser(BaseParser):
    """DRF's parser for our API routes: `loads_object` instead of DRF's lenient json.load, whose
    RecursionError on deep nesting escaped as a 500."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> dict:  # noqa: ANN001
        return loads_object(stream.read() if stream is not None else b"")
