"""OpenAI-kind providers (OpenAI, vLLM, Ollama, llama.cpp, Together...): URLs and headers.

base_url ends in /v1; the gateway posts to base_url + /chat/completions or /embeddings with
`Authorization: Bearer <key>`.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from gateway.catalog import ProviderInfo

PROTOCOL = "openai"


def _headers(provider: ProviderInfo) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    if key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def chat_endpoint(provider: ProviderInfo) -> tuple[str, dict[str, str]]:
    return provider.base_url + "/chat/completions", _headers(provider)


def embeddings_endpoint(provider: ProviderInfo) -> tuple[str, dict[str, str]]:
    return provider.base_url + "/embeddings", _headers(provider)


def output_cap_field(provider: ProviderInfo) -> str:
    """The field a translated request carries its output cap in.

    OpenAI's own API wants max_completion_tokens (its reasoning models refuse max_tokens);
    most OpenAI-compatible servers know only max_tokens.
    """
    host = urlsplit(provider.base_url).hostname or ""
    return "max_completion_tokens" if host.endswith("openai.com") else "max_tokens"
