"""Anthropic-kind providers: URL and headers.

base_url is what the Anthropic SDK takes (https://api.anthropic.com); the gateway posts to
base_url + /v1/messages with `x-api-key` and `anthropic-version`.
"""

from __future__ import annotations

import os

from gateway.catalog import ProviderInfo

PROTOCOL = "anthropic"
API_VERSION = "2023-06-01"


def messages_endpoint(provider: ProviderInfo) -> tuple[str, dict[str, str]]:
    headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
    key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    if key:
        headers["x-api-key"] = key
    return provider.base_url + "/v1/messages", headers
