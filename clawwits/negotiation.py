"""Content negotiation for an API that only ever answers JSON."""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request


class JsonOnly(BaseContentNegotiation):
    """Every API answer is JSON: skip parsing Accept headers on each request."""

    def select_parser(self, request: Request, parsers: list) -> object:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list, format_suffix: str = ""):  # noqa: ANN201
        return renderers[0], renderers[0].media_type
