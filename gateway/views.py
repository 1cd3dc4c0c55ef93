"""/v1 AI endpoints: parse, call one relay function, return what it rendered.

Each endpoint's work is a plain function of the Django request and the authenticated principal,
so DRF's views below and the API-key lane (clawwits.fastlane) run the same code.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys.scopes import Principal
from clawwits.api import AI, ANY, ApiView
from gateway import catalog, relay, validation


def _limits() -> validation.Limits:
    return validation.Limits(
        max_messages=settings.API_MAX_MESSAGES,
        max_text_chars=settings.API_MAX_TEXT_CHARS,
        max_embedding_inputs=settings.API_MAX_EMBEDDING_INPUTS,
    )


def _caller(principal: Principal) -> relay.Caller:
    return relay.Caller.new(user_id=principal.user_id, key_id=principal.key_id)


def chat_completions(request: HttpRequest | Request, principal: Principal) -> HttpResponse:
    call = validation.parse_openai_chat(request.body, _limits())
    return relay.chat(_caller(principal), call, endpoint="chat")


def messages(request: HttpRequest | Request, principal: Principal) -> HttpResponse:
    call = validation.parse_anthropic_messages(request.body, _limits())
    return relay.chat(_caller(principal), call, endpoint="messages")


def embeddings(request: HttpRequest | Request, principal: Principal) -> HttpResponse:
    call = validation.parse_embeddings(request.body, _limits())
    return relay.embeddings(_caller(principal), call)


def model_list(request: HttpRequest | Request) -> dict:
    """OpenAI's list format; Anthropic's when the caller sends `anthropic-version`."""
    models = [m for m in catalog.get().listed() if m.routes]
    if request.META.get("HTTP_ANTHROPIC_VERSION"):
        data = [
            {
                "type": "model",
                "id": m.name,
                "display_name": m.description or m.name,
                "created_at": "2026-01-01T00:00:00Z",
            }
            for m in models
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    return {
        "object": "list",
        "data": [
            {
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "clawwits",
                "x_clawwits": {
                    "kind": m.kind,
                    "input_price": str(m.price.input),
                    "output_price": str(m.price.output),
                    "cache_read_price": str(m.price.cache_read),
                    "max_output_tokens": m.max_output_tokens,
                    "auto": catalog.get().auto.get(m.kind) == m.name,
                },
            }
            for m in models
        ],
    }


class ChatCompletionsView(ApiView):
    required_scopes = AI

    def post(self, request: Request) -> HttpResponse:
        return chat_completions(request, request.auth)


class MessagesView(ApiView):
    required_scopes = AI

    def post(self, request: Request) -> HttpResponse:
        return messages(request, request.auth)


class EmbeddingsView(ApiView):
    required_scopes = AI

    def post(self, request: Request) -> HttpResponse:
        return embeddings(request, request.auth)


class ModelsView(ApiView):
    required_scopes = ANY

    def get(self, request: Request) -> Response:
        return Response(model_list(request))
