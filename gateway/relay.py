"""One billed call, from a validated request to a settled reservation.

Order: resolve the model -> check the output cap -> screen -> (response cache) -> reserve ->
try routes in order -> commit real usage or release -> one usage record, written in the same
transaction that settles the reservation (so it exists exactly when the settlement does).

Guarantees:
- Nothing is sent upstream before the reservation exists; a refused request (unknown model,
  bad cap, screening, 402) creates no reservation and no entry.
- The output cap forwarded upstream is the one the reservation covers (BAR L5); usage reported
  beyond it is capped by the ledger and recorded as loss.
- Failover happens only before the client received a byte: a route failing to connect, timing
  out before its first event, or answering 408/409/429/5xx (or refusing our key / not knowing the
  model) hands the request to the next route; the request is reserved and billed once whatever
  it took.
- Streams: a client that disconnects is charged for what was generated; an upstream that dies
  mid-stream ends the client's stream with an error event and is charged for what was
  delivered; a failure before any output releases everything.
- When an upstream reports no usage, prompt and delivered text are counted with the built-in
  multilingual tokenizer (the local provider's), plus its per-message overhead.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np
import orjson
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from accounts import webhooks
from clawwits import dbpool, modelrow
from clawwits.errors import ApiError, Code
from gateway import breaker, catalog, responsecache, screening, streams, translate, upstream
from gateway.catalog import ModelInfo, RouteInfo
from gateway.models import UsageRecord
from gateway.providers import anthropic as anthropic_provider
from gateway.providers import local
from gateway.providers import openai as openai_provider
from gateway.translate import Usage
from gateway.upstream import UpstreamError
from gateway.validation import ANTHROPIC, OPENAI, ChatCall, EmbedCall
from wits import ledger, pricing, progress
from wits.models import Reservation

logger = logging.getLogger("clawwits.relay")

RECORD_INTERVAL_S = 2.0
EMBEDDING_DIMENSIONS = 1024


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    key_id: uuid.UUID | None
    request_id: str
    started: float

    @staticmethod
    def new(*, user_id: uuid.UUID, key_id: uuid.UUID | None) -> Caller:
        return Caller(user_id, key_id, f"req_{uuid.uuid4().hex}", time.monotonic())

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


@dataclass
class Ticket:
    """What one call carries from reservation to settlement."""

    caller: Caller
    endpoint: str
    model: ModelInfo
    stream: bool
    screening: str
    reservation: Reservation | None = None
    route: RouteInfo | None = None
    ttft_ms: int | None = None

    def record(
        self,
        *,
        status: int,
        usage: Usage | None = None,
        wits: int = 0,
        error_code: str = "",
        settle_reason: str = "",
        cached: bool = False,
        provider: str | None = None,
    ) -> UsageRecord:
        if provider is None:
            provider = self.route.provider.name if self.route else ""
        return modelrow.build(
            UsageRecord,
            {
                "user_id": self.caller.user_id,
                "api_key_id": self.caller.key_id,
                "request_id": self.caller.request_id,
                "endpoint": self.endpoint,
                "model": self.model.name,
                "provider": provider,
                "stream": self.stream,
                "cached": cached,
                "prompt_tokens": usage.prompt_tokens if usage else 0,
                "completion_tokens": usage.completion_tokens if usage else 0,
                "cache_read_tokens": usage.cache_read_tokens if usage else 0,
                "reserved": self.reservation.amount if self.reservation else 0,
                "wits": wits,
                "ttft_ms": self.ttft_ms,
                "latency_ms": self.caller.elapsed_ms(),
                "status": status,
                "error_code": error_code,
                "settle_reason": settle_reason,
                "screening": self.screening,
            },
        )

    def x_clawwits(self, *, wits: int, cached: bool = False, provider: str | None = None) -> dict:
        return {
            "provider": provider if provider is not None else self.route.provider.name,
            "cached": cached,
            "ttft_ms": self.ttft_ms if self.ttft_ms is not None else self.caller.elapsed_ms(),
            "wits": wits,
            "request_id": self.caller.request_id,
        }

    def release(self, *, reason: str, status: int, error_code: str) -> None:
        ledger.release(
            self.reservation,
            reason=reason,
            attach=[self.record(status=status, error_code=error_code, settle_reason=reason)],
        )

    def commit(
        self, *, usage: Usage, reason: str, status: int = 200, error_code: str = ""
    ) -> ledger.Settlement:
        charge = pricing.charge_for(
            self.model.price,
            pricing.Usage(usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens),
        )
        charged = min(charge, self.reservation.amount)
        record = self.record(
            status=status, usage=usage, wits=charged, error_code=error_code, settle_reason=reason
        )
        settlement = ledger.commit(self.reservation, actual=charge, reason=reason, attach=[record])
        webhooks.after_charge(user_id=self.caller.user_id, settlement=settlement)
        return settlement


# --- Shared steps ----------------------------------------------------------------------------


def _unknown_model(name: str | None, kind: str) -> ApiError:
    if not name or name == catalog.AUTO:
        return ApiError(Code.NOT_FOUND, f"No {kind} model is available for auto-routing.")
    return ApiError(
        Code.NOT_FOUND,
        f"The model `{name[:100]}` does not exist or you do not have access to it.",
        param="model",
    )


def _resolve(name: str | None, kind: str) -> ModelInfo:
    model = catalog.get().resolve(name, kind=kind)
    if model is None:
        raise _unknown_model(name, kind)
    return model


def _screen(ticket: Ticket, texts: tuple[str, ...]) -> None:
    verdict = screening.screen(texts, blocklist=catalog.get().blocklist)
    if not verdict.blocked:
        return
    ticket.screening = (verdict.rule_id or "blocked")[:64]
    ticket.record(status=400, error_code=str(Code.ISV_BLOCKED)).save(force_insert=True)
    raise ApiError(Code.ISV_BLOCKED)


def _reserve(ticket: Ticket, amount: int) -> None:
    try:
        ticket.reservation = ledger.reserve(
            user_id=ticket.caller.user_id,
            request_id=ticket.caller.request_id,
            amount=amount,
            model=ticket.model.name,
            api_key_id=ticket.caller.key_id,
        )
    except ApiError as error:
        if error.code == Code.INSUFFICIENT_WITS:
            ticket.record(status=402, error_code=str(error.code)).save(force_insert=True)
        raise


def _estimate_prompt(texts: tuple[str, ...], messages: int) -> int:
    return sum(local.count_tokens(text) for text in texts) + messages * local.PER_MESSAGE_OVERHEAD


def _all_failed(ticket: Ticket, last: UpstreamError | None) -> ApiError:
    ticket.route = None
    ticket.release(reason="all_routes_failed", status=502, error_code=str(Code.ROUTER_ERROR))
    detail = f" Last error: {last.message}" if last else ""
    return ApiError(Code.ROUTER_ERROR, f"Every upstream route failed.{detail}")


def _client_fault(ticket: Ticket, message: str) -> ApiError:
    ticket.release(reason="rejected", status=400, error_code=str(Code.INVALID_REQUEST))
    return ApiError(Code.INVALID_REQUEST, message)


# --- Chat (both wire formats) ----------------------------------------------------------------


def _protocol(route: RouteInfo) -> str:
    return ANTHROPIC if route.provider.kind == "anthropic" else OPENAI


def _upstream_body(call: ChatCall, route: RouteInfo, cap: int, *, stream: bool) -> dict:
    protocol = _protocol(route)
    if call.protocol == protocol:
        body = dict(call.body)
        body["model"] = route.upstream_model
        if protocol == OPENAI:
            field = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
            body.pop("max_tokens", None)
            body.pop("max_completion_tokens", None)
            body[field] = cap
        else:
            body["max_tokens"] = cap
    elif protocol == ANTHROPIC:
        body = translate.openai_request_to_anthropic(
            call.body, model=route.upstream_model, max_tokens=cap
        )
    else:
        field = (
            "max_tokens"
            if route.provider.kind == "local"
            else openai_provider.output_cap_field(route.provider)
        )
        body = translate.anthropic_request_to_openai(
            call.body, model=route.upstream_model, max_tokens=cap, max_tokens_field=field
        )
    body.pop("stream", None)
    body.pop("stream_options", None)
    if stream:
        body["stream"] = True
        if protocol == OPENAI:
            # Billing needs the upstream's usage even when the client did not ask for it.
            body["stream_options"] = {"include_usage": True}
    return body


def _endpoint(route: RouteInfo) -> tuple[str, dict[str, str]]:
    if route.provider.kind == "anthropic":
        return anthropic_provider.messages_endpoint(route.provider)
    return openai_provider.chat_endpoint(route.provider)


def _check_response(protocol: str, resp: dict) -> None:
    ok = (
        isinstance(resp.get("choices"), list) and bool(resp["choices"])
        if protocol == OPENAI
        else isinstance(resp.get("content"), list)
    )
    if not ok:
        raise UpstreamError(upstream.MALFORMED, "the provider's answer has no content")


def _complete_once(route: RouteInfo, call: ChatCall, cap: int) -> dict:
    body = _upstream_body(call, route, cap, stream=False)
    if route.provider.kind == "local":
        return local.chat(body, model=route.upstream_model)
    url, headers = _endpoint(route)
    resp = upstream.post_json(
        url,
        headers=headers,
        body=body,
        connect_timeout=route.provider.connect_timeout_s,
        read_timeout=route.provider.timeout_s,
    )
    _check_response(_protocol(route), resp)
    return resp


@dataclass
class _Opened:
    events: Iterator[upstream.Event]
    first: upstream.Event
    closer: upstream.EventStream | None


def _open_stream(route: RouteInfo, call: ChatCall, cap: int) -> _Opened:
    body = _upstream_body(call, route, cap, stream=True)
    if route.provider.kind == "local":
        chunks = (
            upstream.Event(None, chunk)
            for chunk in local.chat_stream(body, model=route.upstream_model)
        )
        events = chain(chunks, [upstream.Event(None, streams.DONE)])
        return _Opened(events, next(events), None)
    url, headers = _endpoint(route)
    handle = upstream.open_stream(
        url,
        headers=headers,
        body=body,
        connect_timeout=route.provider.connect_timeout_s,
        read_timeout=route.provider.timeout_s,
    )
    events = iter(handle)
    try:
        first = _checked_first_event(next(events))
    except StopIteration:
        handle.close()
        raise UpstreamError(upstream.PROTOCOL, "the provider's stream was empty") from None
    except UpstreamError:
        handle.close()
        raise
    return _Opened(events, first, handle)


def _checked_first_event(event: upstream.Event) -> upstream.Event:
    """The first event, parsed (the converter takes it as it is, without parsing it again).
    Nothing has reached the client yet: a broken or error first event still fails over. It is
    parsed as strictly as every later event (`streams.parse`): NaN is not JSON here either."""
    if event.data == streams.DONE:
        raise UpstreamError(upstream.PROTOCOL, "the provider's stream ended at once")
    try:
        data = streams.parse(event.data)
    except UpstreamError:
        raise UpstreamError(upstream.MALFORMED, "the provider sent an unparsable event") from None
    if data.get("error") or event.name == "error":
        raise UpstreamError(
            upstream.STATUS, "the provider's stream began with an error", status=503
        )
    return upstream.Event(event.name, data)


def _try_routes(ticket: Ticket, attempt):  # noqa: ANN001, ANN202 - attempt: route -> answer
    """Run `attempt` on each route in breaker order until one answers before its first byte."""
    brk = breaker.get()
    last: UpstreamError | None = None
    for route in brk.order(ticket.model.routes, key=lambda r: r.key):
        ticket.route = route
        try:
            answer = attempt(route)
        except UpstreamError as error:
            if error.client_fault:
                brk.success(route.key)
                raise _client_fault(
                    ticket, f"The provider rejected the request: {error.message}"
                ) from None
            brk.failure(route.key)
            logger.warning(
                "route %s failed before first byte (%s %s): %s",
                route.key,
                error.kind,
                error.status,
                error.message,
            )
            last = error
            continue
        except (translate.TranslationError, local.InvalidRequest) as error:
            message = getattr(error, "message", None) or str(error)
            raise _client_fault(ticket, message) from None
        brk.success(route.key)
        ticket.ttft_ms = ticket.caller.elapsed_ms()
        return answer
    raise _all_failed(ticket, last)


def _response_text(protocol: str, resp: dict) -> str:
    parts: list[str] = []
    if protocol == OPENAI:
        for choice in resp.get("choices") or ():
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                parts.append(message["content"])
            for call in message.get("tool_calls") or ():
                fn = call.get("function") or {}
                parts.extend(str(fn.get(k) or "") for k in ("name", "arguments"))
    else:
        for block in resp.get("content") or ():
            if block.get("type") == "text":
                parts.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                parts.append(str(block.get("name") or ""))
                parts.append(json.dumps(block.get("input") or {}))
    return "".join(parts)


def chat(caller: Caller, call: ChatCall, *, endpoint: str) -> HttpResponse:
    model = _resolve(call.model, "chat")
    cap = call.max_tokens or model.max_output_tokens
    if cap > model.max_output_tokens:
        field = (
            "max_tokens"
            if call.protocol == ANTHROPIC or "max_tokens" in call.body
            else "max_completion_tokens"
        )
        raise ApiError(
            Code.INVALID_REQUEST,
            f"{field}: {cap} is too large; {model.name} supports at most "
            f"{model.max_output_tokens} output tokens.",
            param=field,
        )
    ticket = Ticket(
        caller=caller, endpoint=endpoint, model=model, stream=call.stream, screening="pass"
    )
    _screen(ticket, call.texts)

    cache_key = None
    if call.cacheable and not call.stream:
        cache_key = responsecache.key(
            protocol=call.protocol, model=model.name, body=call.body, cap=cap
        )
        hit = responsecache.get(cache_key)
        if hit is not None:
            return _serve_cached(ticket, hit)

    prompt_bound = pricing.prompt_upper_bound(
        text_bytes=call.prompt_bytes, messages=call.messages, images=call.images
    )
    _reserve(
        ticket,
        pricing.reservation_for(model.price, prompt_upper_bound=prompt_bound, output_cap=cap),
    )
    dbpool.give_back()  # while the upstream answers
    try:
        if call.stream:
            opened = _try_routes(ticket, lambda route: _open_stream(route, call, cap))
            return _stream_response(ticket, call, opened)
        resp = _try_routes(ticket, lambda route: _complete_once(route, call, cap))
    except ApiError:
        raise
    except BaseException:
        # A bug or a lost database between reserve and answer: give the Wits back now rather
        # than leave them to the reconcile task.
        if ticket.reservation is not None:
            ticket.release(reason="error", status=500, error_code=str(Code.INTERNAL_ERROR))
        raise
    return _complete(ticket, call, resp, cache_key)


def _complete(ticket: Ticket, call: ChatCall, resp: dict, cache_key: str | None) -> HttpResponse:
    protocol = _protocol(ticket.route)
    usage = (
        Usage.from_openai(resp.get("usage"))
        if protocol == OPENAI
        else Usage.from_anthropic(resp.get("usage"))
    )
    estimated = usage is None
    if usage is None:
        usage = Usage(
            _estimate_prompt(call.texts, call.messages),
            local.count_tokens(_response_text(protocol, resp)),
        )
    if call.protocol == protocol:
        out = resp
    elif call.protocol == OPENAI:
        out = translate.anthropic_response_to_openai(resp)
    else:
        out = translate.openai_response_to_anthropic(resp)
    if estimated:
        out["usage"] = usage.to_openai() if call.protocol == OPENAI else usage.to_anthropic()
    settlement = ticket.commit(usage=usage, reason="completed")
    if cache_key is not None:
        responsecache.put(cache_key, response=out, usage=usage, provider=ticket.route.provider.name)
    out["x_clawwits"] = ticket.x_clawwits(wits=settlement.charged)
    return JsonResponse(out, json_dumps_params={"ensure_ascii": False})


def _serve_cached(ticket: Ticket, hit: responsecache.Hit) -> HttpResponse:
    charge = pricing.cache_hit_charge(
        ticket.model.price, pricing.Usage(hit.usage.prompt_tokens, hit.usage.completion_tokens)
    )
    ticket.ttft_ms = ticket.caller.elapsed_ms()
    record_args = {"usage": hit.usage, "cached": True, "provider": hit.provider}
    if charge > 0:
        _reserve(ticket, charge)
        record = ticket.record(status=200, wits=charge, settle_reason="cache_hit", **record_args)
        ledger.commit(ticket.reservation, actual=charge, reason="cache_hit", attach=[record])
    else:
        ticket.record(status=200, settle_reason="cache_hit", **record_args).save(force_insert=True)
    out = dict(hit.response)
    out["x_clawwits"] = ticket.x_clawwits(wits=charge, cached=True, provider=hit.provider)
    return JsonResponse(out, json_dumps_params={"ensure_ascii": False})


# --- Streaming ------------------------------------------------------------------------------


def _stream_response(ticket: Ticket, call: ChatCall, opened: _Opened) -> StreamingHttpResponse:
    converter = streams.converter_for(
        upstream=_protocol(ticket.route),
        client=call.protocol,
        model=ticket.route.upstream_model,
        include_usage=call.include_usage,
        input_tokens_hint=0,
    )
    response = StreamingHttpResponse(
        _stream_body(ticket, call, opened, converter),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class _Tally:
    """A stream's usage as far as the relay passed it on to the client (events one read brought
    go out together, right after the last of them is converted), kept cheap to ask for again
    and again.

    Prompt: the upstream's count if it sent one, else ours, counted once. Completion: the
    delivered text, counted by `local.RunningCount`, so a progress record counts only what was
    delivered since the last one (recounting it all made a long stream's records cost more the
    longer it ran: 35 ms for one record at 54,000 characters).
    """

    def __init__(self, call: ChatCall, converter: streams.Converter) -> None:
        self._call = call
        self._converter = converter
        self._prompt: int | None = None
        self._delivered = local.RunningCount()

    def usage(self) -> Usage:
        reported = self._converter.usage
        if reported and reported.prompt_tokens:
            prompt = reported.prompt_tokens
        else:
            if self._prompt is None:
                self._prompt = _estimate_prompt(self._call.texts, self._call.messages)
            prompt = self._prompt
        cache_read = min(reported.cache_read_tokens, prompt) if reported else 0
        return Usage(prompt, self._delivered.count(self._converter.delivered), cache_read)

    def final(self) -> Usage:
        """The upstream's own usage when it reported any, else `usage()`."""
        reported = self._converter.usage
        if reported is not None and (reported.prompt_tokens or reported.completion_tokens):
            return reported
        return self.usage()


def _stream_body(
    ticket: Ticket, call: ChatCall, opened: _Opened, converter: streams.Converter
) -> Iterator[bytes]:
    settled = False
    tally = _Tally(call, converter)
    last_recorded = time.monotonic()
    # Events that arrived together go to the client together: one write (one send) for all the
    # events a read brought, never held back waiting for the provider.
    more = opened.closer.has_event if opened.closer is not None else lambda: False
    out: list[bytes] = []
    try:
        for event in chain([opened.first], opened.events):
            out += converter.feed(event.name, event.data)
            if converter.done:
                break
            if time.monotonic() - last_recorded >= RECORD_INTERVAL_S:
                last_recorded = time.monotonic()
                _record_progress(ticket, tally)
            if out and not more():
                yield b"".join(out)
                out = []
        if not converter.done:
            raise UpstreamError(upstream.PROTOCOL, "the provider's stream ended without finishing")
        usage = tally.final()
        settlement = ticket.commit(usage=usage, reason="completed")
        settled = True
        yield b"".join(out + converter.finish(ticket.x_clawwits(wits=settlement.charged), usage))
    except UpstreamError as error:
        logger.warning("route %s failed mid-stream: %s", ticket.route.key, error.message)
        breaker.get().failure(ticket.route.key)
        ticket.commit(
            usage=tally.usage(),
            reason="upstream_error",
            error_code=str(Code.ROUTER_ERROR),
        )
        settled = True
        # What the events before the failure wrote first: they were charged.
        yield b"".join(out) + converter.error(
            ApiError(Code.ROUTER_ERROR, f"The upstream provider failed mid-stream: {error.message}")
        )
    except GeneratorExit:
        if not settled:
            ticket.commit(usage=tally.usage(), reason="client_disconnect")
            settled = True
        raise
    finally:
        if opened.closer is not None:
            opened.closer.close()
        if not settled:
            ticket.commit(usage=tally.usage(), reason="aborted")


def _record_progress(ticket: Ticket, tally: _Tally) -> None:
    usage = tally.usage()
    charge = pricing.charge_for(
        ticket.model.price,
        pricing.Usage(usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens),
    )
    # Written behind the stream, with the other streams' records (wits.progress): the stream
    # takes no connection for it and does not wait.
    progress.record(ticket.reservation.id, charge)


# --- Embeddings -----------------------------------------------------------------------------


def _normalise(vectors: np.ndarray) -> np.ndarray:
    """Every vector becomes 1024 floats of unit L2 norm, whatever the upstream returned.

    Longer vectors are truncated (exact for Matryoshka-trained models such as OpenAI's
    text-embedding-3, which is what their `dimensions` parameter does); shorter ones are padded
    with zeros, which keeps every cosine similarity.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    width = vectors.shape[1]
    if width > EMBEDDING_DIMENSIONS:
        vectors = vectors[:, :EMBEDDING_DIMENSIONS]
    elif width < EMBEDDING_DIMENSIONS:
        vectors = np.pad(vectors, ((0, 0), (0, EMBEDDING_DIMENSIONS - width)))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise UpstreamError(upstream.MALFORMED, "the provider returned a zero or invalid vector")
    return (vectors / norms).astype(np.float32)


def _decode_vector(item: object) -> np.ndarray | list[float]:
    if isinstance(item, str):
        raw = base64.b64decode(item, validate=True)
        return np.frombuffer(raw, dtype="<f4")
    if isinstance(item, list):
        return item
    raise UpstreamError(upstream.MALFORMED, "the provider returned an unknown vector encoding")


def _embed_once(route: RouteInfo, call: EmbedCall) -> tuple[np.ndarray, int | None]:
    if route.provider.kind == "local":
        vectors, tokens = local.embed(list(call.inputs), dimensions=EMBEDDING_DIMENSIONS)
        return vectors, tokens
    if route.provider.kind != "openai":
        raise UpstreamError(upstream.STATUS, "this provider serves no embeddings", status=404)
    url, headers = openai_provider.embeddings_endpoint(route.provider)
    # base64 (what OpenAI's SDKs ask for by default): 4 bytes a float to decode instead of a
    # float's JSON text to parse; a provider that answers float lists anyway is read as well.
    body = {
        "model": route.upstream_model,
        "input": list(call.inputs),
        "encoding_format": "base64",
        "dimensions": EMBEDDING_DIMENSIONS,
    }
    resp = upstream.post_json(
        url,
        headers=headers,
        body=body,
        connect_timeout=route.provider.connect_timeout_s,
        read_timeout=route.provider.timeout_s,
    )
    data = resp.get("data")
    if not isinstance(data, list) or len(data) != len(call.inputs):
        raise UpstreamError(upstream.MALFORMED, "the provider returned the wrong number of vectors")
    try:
        ordered = sorted(data, key=lambda d: int(d.get("index", 0)))
        rows = [_decode_vector(d.get("embedding")) for d in ordered]
        width = {len(r) for r in rows}
        if len(width) != 1 or 0 in width:
            raise UpstreamError(upstream.MALFORMED, "the provider's vectors differ in size")
        vectors = _normalise(np.array(rows, dtype=np.float64))
    except (TypeError, ValueError, AttributeError):
        raise UpstreamError(upstream.MALFORMED, "the provider's vectors are not numbers") from None
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    tokens = usage.get("prompt_tokens")
    return vectors, tokens if isinstance(tokens, int) and tokens >= 0 else None


def embeddings(caller: Caller, call: EmbedCall) -> HttpResponse:
    model = _resolve(call.model, "embedding")
    ticket = Ticket(
        caller=caller, endpoint="embeddings", model=model, stream=False, screening="pass"
    )
    _screen(ticket, call.inputs)
    bound = pricing.prompt_upper_bound(text_bytes=call.prompt_bytes, messages=len(call.inputs))
    _reserve(ticket, pricing.reservation_for(model.price, prompt_upper_bound=bound, output_cap=0))
    dbpool.give_back()  # while the upstream answers
    try:
        vectors, tokens = _try_routes(ticket, lambda route: _embed_once(route, call))
    except ApiError:
        raise
    except BaseException:
        ticket.release(reason="error", status=500, error_code=str(Code.INTERNAL_ERROR))
        raise
    if tokens is None:
        tokens = sum(local.count_tokens(text) for text in call.inputs)
    usage = Usage(tokens, 0)
    settlement = ticket.commit(usage=usage, reason="completed")
    encoded: list[str] | list[np.ndarray]
    if call.encoding_format == "base64":
        encoded = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
    else:
        # float32 arrays as they are: orjson prints each number as the shortest text that reads
        # back as exactly that float32 (at most 9 significant digits, as OpenAI prints its
        # float32 embeddings), ~20 µs for 1,024 of them; `json` would print each float64's
        # 17-digit repr of a `tolist()`, several times slower.
        encoded = [np.asarray(v, dtype=np.float32) for v in vectors]
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vec} for i, vec in enumerate(encoded)
        ],
        "model": model.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "x_clawwits": ticket.x_clawwits(wits=settlement.charged),
    }
    return HttpResponse(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), content_type="application/json"
    )
