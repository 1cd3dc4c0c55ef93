"""The OpenAPI document (gateway/openapi.py) against the code it describes.

Routes and methods come from `clawwits.urls`, scopes from the views, request fields from
`gateway.validation`, codes and statuses from `clawwits.errors`; real responses are checked
against the documented schemas with a small validator written here (type, required,
properties, additionalProperties, items, const, enum, oneOf, allOf, $ref).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver

from apikeys.scopes import Scope
from clawwits import urls
from clawwits.errors import STATUS, Code
from gateway import openapi, validation

DOC = openapi.DOCUMENT
METHODS = ("get", "post", "put", "patch", "delete")
CATCH_ALL = r"^v1(?:/.*)?$"
HI = [{"role": "user", "content": "hi"}]


def _v1_routes(patterns: list, prefix: str = "") -> Iterator[tuple[str, type]]:
    for entry in patterns:
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _v1_routes(entry.url_patterns, text)
        elif isinstance(entry, URLPattern) and text.startswith("v1") and text != CATCH_ALL:
            yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text), entry.callback.view_class


ROUTES = {
    (path, method): view
    for path, view in _v1_routes(urls.urlpatterns)
    for method in METHODS
    if hasattr(view, method)
}
OPERATIONS = {
    (path, method): op for path, item in DOC["paths"].items() for method, op in item.items()
}


def _resolve(ref: str) -> dict:
    node: object = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


# --- Coverage --------------------------------------------------------------------------------


def test_every_v1_route_and_method_is_documented_and_nothing_else():
    routed = set(ROUTES)
    documented = set(OPERATIONS)

    assert sorted(routed - documented) == [], "document these in gateway/openapi.py"
    assert sorted(documented - routed) == [], "documented but not routed"


def test_the_walk_sees_the_routes_it_should():
    # A guard on the test itself: an empty walk would make the coverage test pass vacuously.
    assert {("/v1/chat/completions", "post"), ("/v1/keys/{key_id}", "patch")} <= set(ROUTES)
    assert ("/v1/openapi.json", "get") in ROUTES
    assert len(ROUTES) >= 15


# --- Structure ----------------------------------------------------------------------------------


def test_the_document_is_structurally_sound_openapi_3_1():
    assert DOC["openapi"].startswith("3.1.")
    assert DOC["info"]["title"]
    assert DOC["info"]["version"]
    json.dumps(DOC, allow_nan=False)  # plain JSON: no NaN, no tuples or sets
    ids = [op["operationId"] for op in OPERATIONS.values()]
    assert len(ids) == len(set(ids))
    tags = {tag["name"] for tag in DOC["tags"]}
    schemes = DOC["components"]["securitySchemes"]
    for (path, method), op in OPERATIONS.items():
        where = f"{method.upper()} {path}"
        assert set(op["tags"]) <= tags, where
        assert op["summary"], where
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), where
        for parameter in op.get("parameters", []):
            assert parameter["in"] in {"path", "query", "header", "cookie"}, where
            assert parameter.get("required") or parameter["in"] != "path", where
        for requirement in op["security"]:
            assert set(requirement) <= set(schemes), where
        assert op["responses"], where
        for status, response in op["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), where
            body = _resolve(response["$ref"]) if "$ref" in response else response
            assert body["description"], where
        if "requestBody" in op:
            assert "application/json" in op["requestBody"]["content"], where


def test_every_reference_resolves():
    refs = set(_refs(DOC))

    assert refs
    for ref in refs:
        assert ref.startswith("#/components/"), ref
        _resolve(ref)


def test_every_component_is_used():
    used = {ref.rsplit("/", 1)[1] for ref in _refs(DOC)}
    for kind in ("schemas", "responses", "headers"):
        unused = set(DOC["components"][kind]) - used
        if kind == "responses":
            # Each status has both envelopes; a status no route answers in one envelope is fine.
            unused = {
                name for name in unused if not name.removeprefix("Anthropic").startswith("Error")
            }
        assert unused == set(), kind


def test_the_document_passes_openapi_spec_validator():
    import openapi_spec_validator  # a test dependency (pyproject.toml): never skipped

    openapi_spec_validator.validate(json.loads(json.dumps(DOC)))


# --- Agreement with the code --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "fields"),
    [
        ("ChatCompletionRequest", validation._OPENAI_CHAT_FIELDS),
        ("MessagesRequest", validation._ANTHROPIC_FIELDS),
        ("EmbeddingsRequest", validation._EMBEDDING_FIELDS),
    ],
)
def test_request_schemas_list_exactly_the_fields_validation_accepts(schema, fields):
    documented = DOC["components"]["schemas"][schema]

    assert set(documented["properties"]) == set(fields)
    assert documented["additionalProperties"] is False


def test_error_codes_and_statuses_are_those_of_clawwits_errors():
    for envelope in ("OpenAIError", "AnthropicError"):
        error = DOC["components"]["schemas"][envelope]["properties"]["error"]
        assert set(error["properties"]["code"]["enum"]) == {str(code) for code in Code}
    assert {(status, code) for status, codes in openapi.STATUS_CODES.items() for code in codes} == {
        (status, str(code)) for code, status in STATUS.items()
    }


def _expected_errors(path: str, method: str, view: type) -> set[int]:
    """The DESIGN.md §5 statuses a route can answer, derived from its view."""
    if not view.authentication_classes:
        return set()
    expected = {401, 429, 500, 503}
    if view.required_scopes:
        expected.add(403)
    if "{" in path:
        expected.add(404)
    if "requestBody" in OPERATIONS[(path, method)]:
        expected |= {400, 413}
    if view.required_scopes == frozenset({Scope.AI}):
        expected |= {400, 402, 404, 413, 502}
    return expected


@pytest.mark.parametrize(("path", "method"), sorted(ROUTES), ids=lambda v: str(v))
def test_each_operation_lists_the_errors_its_route_can_answer(path, method):
    op = OPERATIONS[(path, method)]
    errors = {int(s): r for s, r in op["responses"].items() if int(s) >= 400}

    assert _expected_errors(path, method, ROUTES[(path, method)]) <= set(errors)
    assert set(errors) <= set(STATUS.values())
    envelope = "AnthropicError" if path == "/v1/messages" else "Error"
    for status, response in errors.items():
        assert response == {"$ref": f"#/components/responses/{envelope}{status}"}


@pytest.mark.parametrize(("path", "method"), sorted(ROUTES), ids=lambda v: str(v))
def test_security_names_the_scopes_each_view_requires(path, method):
    view = ROUTES[(path, method)]
    security = OPERATIONS[(path, method)]["security"]

    if not view.authentication_classes:
        assert security == []
        return
    key_roles = {role for req in security for scheme, roles in req.items() for role in roles}
    required = {str(scope) for scope in view.required_scopes}
    assert key_roles == (required | {"full"} if required else set())
    schemes = {scheme for req in security for scheme in req}
    assert schemes == {"ApiKeyBearer", "ApiKeyHeader", "SessionBearer", "SessionCookie"}


def test_the_session_cookie_is_the_configured_one():
    cookie = DOC["components"]["securitySchemes"]["SessionCookie"]

    assert cookie["name"] == settings.JWT_ACCESS_COOKIE


# --- Serving -----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [{}, {"HTTP_AUTHORIZATION": "Bearer cw_sk_" + "x" * 52}, {"HTTP_X_API_KEY": "nonsense"}],
)
def test_the_document_is_served_to_anyone_without_a_rate_limit(redis_client, headers):
    response = Client().get("/v1/openapi.json", **headers)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == json.loads(json.dumps(DOC))
    assert "x-ratelimit-limit-requests" not in response
    assert redis_client.keys("rl:*") == []


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_document_are_a_json_405(method):
    response = Client().generic(method, "/v1/openapi.json")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- Real responses against the documented schemas -----------------------------------------------

TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value: object, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, TYPES[name])


def conforms(value: object, schema: dict, where: str = "$") -> list[str]:
    """Where `value` breaks `schema` (empty when it conforms)."""
    if "$ref" in schema:
        return conforms(value, _resolve(schema["$ref"]), where)
    problems: list[str] = []
    for sub in schema.get("allOf", []):
        problems += conforms(value, sub, where)
    if "oneOf" in schema and all(conforms(value, sub, where) for sub in schema["oneOf"]):
        problems.append(f"{where}: matches no oneOf branch")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, name) for name in names):
            return [*problems, f"{where}: {type(value).__name__} is not {names}"]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [
            f"{where}: missing {name}" for name in schema.get("required", []) if name not in value
        ]
        for name, item in value.items():
            if name in properties:
                problems += conforms(item, properties[name], f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: undocumented {name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += conforms(item, schema["items"], f"{where}[{i}]")
    return problems


def _schema_for(path: str, method: str, status: int) -> dict:
    response = OPERATIONS[(path, method)]["responses"][str(status)]
    if "$ref" in response:
        response = _resolve(response["$ref"])
    return response["content"]["application/json"]["schema"]


def test_the_validator_catches_what_it_should():
    balance = {"$ref": "#/components/schemas/Balance"}
    good = {"userId": "u", "available": 1, "reserved": 0, "lifetimeUsed": 0}
    bad = {"userId": "u", "available": 1.5, "reserved": 0}

    assert conforms(good, balance) == []
    assert sorted(conforms(bad, balance)) == [
        "$.available: float is not ['integer']",
        "$: missing lifetimeUsed",
    ]
    assert conforms({"x": 1}, DOC["components"]["schemas"]["ChatCompletionRequest"]) == [
        "$: missing messages",
        "$: undocumented x",
    ]


@pytest.mark.django_db(transaction=True)
def test_real_responses_match_the_documented_schemas(catalogue, fake, make_user, make_api_key):
    from apikeys.models import ApiKey

    # Given an account with a full key, a rate-limited key and a session
    user = make_user(tier="max", wits=1_000_000)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_api_key(user, 'full')}")
    limited = Client(HTTP_X_API_KEY=make_api_key(user, "ai", rpm=1, name="limited"))
    limited.get("/v1/models")

    def call(method: str, path: str, body: object = None, *, caller: Client = client, **extra):  # noqa: ANN202
        raw = b"" if body is None else json.dumps(body).encode()
        return caller.generic(method, path, raw, content_type="application/json", **extra)

    created = call("POST", "/v1/keys", {"name": "made", "scopes": ["ai"]})
    key_id = created.json()["id"]
    rotate_target = ApiKey.objects.get(name="limited").id
    # (template path, method, concrete path, body, extra headers, status)
    cases = [
        (
            "/v1/chat/completions",
            "post",
            "/v1/chat/completions",
            {"model": "gpt-fake", "messages": HI},
            {},
            200,
        ),
        (
            "/v1/chat/completions",
            "post",
            "/v1/chat/completions",
            {"model": "claude-fake", "messages": HI},
            {},
            200,
        ),
        ("/v1/chat/completions", "post", "/v1/chat/completions", {"messages": []}, {}, 400),
        (
            "/v1/chat/completions",
            "post",
            "/v1/chat/completions",
            {"model": "nope", "messages": HI},
            {},
            404,
        ),
        (
            "/v1/messages",
            "post",
            "/v1/messages",
            {"model": "claude-fake", "max_tokens": 9, "messages": HI},
            {},
            200,
        ),
        (
            "/v1/messages",
            "post",
            "/v1/messages",
            {"model": "gpt-fake", "max_tokens": 9, "messages": HI},
            {},
            200,
        ),
        ("/v1/messages", "post", "/v1/messages", {"max_tokens": 9}, {}, 400),
        (
            "/v1/embeddings",
            "post",
            "/v1/embeddings",
            {"model": "embed-fake", "input": ["a", "b"]},
            {},
            200,
        ),
        (
            "/v1/embeddings",
            "post",
            "/v1/embeddings",
            {"model": "embed-fake", "input": "a", "encoding_format": "base64"},
            {},
            200,
        ),
        ("/v1/models", "get", "/v1/models", None, {}, 200),
        ("/v1/models", "get", "/v1/models", None, {"HTTP_ANTHROPIC_VERSION": "2023-06-01"}, 200),
        ("/v1/wits/balance", "get", "/v1/wits/balance", None, {}, 200),
        ("/v1/wits/transactions", "get", "/v1/wits/transactions?limit=3", None, {}, 200),
        ("/v1/wits/transactions", "get", "/v1/wits/transactions?limit=x", None, {}, 400),
        ("/v1/keys", "get", "/v1/keys", None, {}, 200),
        ("/v1/keys/{key_id}", "get", f"/v1/keys/{key_id}", None, {}, 200),
        ("/v1/keys/{key_id}", "patch", f"/v1/keys/{key_id}", {"name": "renamed"}, {}, 200),
        (
            "/v1/keys/{key_id}",
            "get",
            "/v1/keys/00000000-0000-4000-8000-000000000000",
            None,
            {},
            404,
        ),
        (
            "/v1/keys/{key_id}/rotate",
            "post",
            f"/v1/keys/{rotate_target}/rotate",
            {"grace_seconds": 60},
            {},
            201,
        ),
        ("/v1/keys/{key_id}/revoke", "post", f"/v1/keys/{key_id}/revoke", None, {}, 200),
        ("/v1/webhooks", "get", "/v1/webhooks", None, {}, 200),
        ("/v1/webhooks", "put", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, {}, 200),
        ("/v1/webhooks/test", "post", "/v1/webhooks/test", None, {}, 202),
        ("/v1/webhooks/events/{event_id}", "get", "/v1/webhooks/events/whk_none", None, {}, 404),
        ("/v1/openapi.json", "get", "/v1/openapi.json", None, {}, 200),
        ("/v1/usage", "get", "/v1/usage?limit=5", None, {}, 200),
        ("/v1/usage", "get", "/v1/usage?status=nope", None, {}, 400),
        ("/v1/usage/summary", "get", "/v1/usage/summary", None, {}, 200),
        ("/v1/usage/summary", "get", "/v1/usage/summary?group_by=model", None, {}, 200),
        ("/v1/usage/summary", "get", "/v1/usage/summary?group_by=key", None, {}, 200),
    ]

    problems = {}
    for template, method, path, body, extra, status in cases:
        response = call(method.upper(), path, body, **extra)
        assert response.status_code == status, (path, response.content[:300])
        found = conforms(response.json(), _schema_for(template, method, status))
        if found:
            problems[(method, path, status)] = found
    for template, path, body in [
        ("/v1/chat/completions", "/v1/chat/completions", {"model": "gpt-fake", "messages": HI}),
        ("/v1/messages", "/v1/messages", {"model": "gpt-fake", "max_tokens": 5, "messages": HI}),
    ]:
        response = call("POST", path, body, caller=limited)
        assert response.status_code == 429
        found = conforms(response.json(), _schema_for(template, "post", 429))
        if found:
            problems[("post", path, 429)] = found
    event = call("POST", "/v1/webhooks/test").json()
    problems_event = conforms(
        call("GET", f"/v1/webhooks/events/{event['id']}").json(),
        _schema_for("/v1/webhooks/events/{event_id}", "get", 200),
    )

    assert problems == {}
    assert problems_event == []
