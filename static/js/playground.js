// The Playground: streams one chat completion from /v1/chat/completions into the page.
//
// The call is made with the browser's cookie session; a cookie-authenticated POST must carry
// the page's CSRF token (X-CSRFToken), or the gateway answers 403 before anything is reserved.
// The answer is read as server-sent events from a ReadableStream; the gateway puts the usage
// and `x_clawwits` (Wits charged, provider, request id) on its last chunk before [DONE].
// Every text shown is written with textContent, never as HTML.
(() => {
  "use strict";

  const form = document.getElementById("playground-form");
  if (!form) return;

  const $ = (id) => document.getElementById(id);
  const texts = $("pg-texts").dataset;
  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  const ui = {
    model: $("pg-model"),
    system: $("pg-system"),
    prompt: $("pg-prompt"),
    maxTokens: $("pg-max-tokens"),
    send: $("pg-send"),
    stop: $("pg-stop"),
    result: $("pg-result"),
    status: $("pg-status"),
    error: $("pg-error"),
    output: $("pg-output"),
    facts: $("pg-facts"),
    available: $("available"),
  };
  let controller = null;

  function limitMaxTokens() {
    const option = ui.model.selectedOptions[0];
    ui.maxTokens.max = option ? option.dataset.maxTokens : "";
  }

  function showError(code, detail, retryAfterMs) {
    const titles = {
      insufficient_wits: texts.insufficientWits,
      rate_limited: texts.rateLimited,
      isv_blocked: texts.isvBlocked,
      unauthorized: texts.unauthorized,
      forbidden: texts.forbidden,
      invalid_request: texts.invalidRequest,
      stream: texts.streamFailed,
    };
    let message = detail || "";
    if (code === "rate_limited" && retryAfterMs) {
      const seconds = numbers.format(Math.max(1, Math.ceil(retryAfterMs / 1000)));
      message = `${texts.retry.replace("{seconds}", seconds)} ${message}`.trim();
    }
    $("pg-error-title").textContent = titles[code] || texts.failed;
    $("pg-error-detail").textContent = message;
    $("pg-error-topup").hidden = code !== "insufficient_wits";
    ui.error.dataset.code = code || "";
    ui.error.hidden = false;
    ui.status.textContent = "";
  }

  async function errorOf(response) {
    // Every /v1 error is {"error": {"code", "message", ...}}; anything else is reported by status.
    try {
      const body = await response.json();
      const error = body && body.error;
      if (error && typeof error === "object") {
        return { code: error.code, message: error.message, retryAfterMs: body.retryAfterMs };
      }
    } catch (_) {
      // Not JSON (a proxy's page, say): the status alone is all there is to say.
    }
    return { code: "", message: `HTTP ${response.status}` };
  }

  // Yields the `data` of each server-sent event ("data:" lines joined by newlines).
  async function* sseData(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split("\n")
            .map((line) => line.replace(/\r$/, ""))
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, ""))
            .join("\n");
          if (data) yield data;
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  function showFacts(usage, extra) {
    if (usage) {
      $("pg-tokens-in").textContent = numbers.format(usage.prompt_tokens);
      $("pg-tokens-out").textContent = numbers.format(usage.completion_tokens);
    }
    if (extra) {
      $("pg-wits").textContent = numbers.format(extra.wits);
      $("pg-provider").textContent = extra.provider || "—";
      const link = $("pg-request-id");
      link.textContent = extra.request_id || "";
      // The usage page filtered to this one call.
      link.href = link.dataset.usage + (extra.request_id ? "?request=" + encodeURIComponent(extra.request_id) : "");
    }
    ui.facts.hidden = !(usage || extra);
  }

  async function refreshBalance() {
    try {
      const response = await fetch(form.dataset.balance, { credentials: "same-origin" });
      if (response.ok) ui.available.textContent = numbers.format((await response.json()).available);
    } catch (_) {
      // The figure on the page stays as it was; the next page load shows the new one.
    }
  }

  function requestBody() {
    const messages = [];
    if (ui.system.value.trim()) messages.push({ role: "system", content: ui.system.value });
    messages.push({ role: "user", content: ui.prompt.value });
    const body = {
      model: ui.model.value,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    if (ui.maxTokens.value) body.max_tokens = Number(ui.maxTokens.value);
    return body;
  }

  function setBusy(busy) {
    ui.send.disabled = busy;
    ui.stop.hidden = !busy;
    form.setAttribute("aria-busy", String(busy));
  }

  async function run() {
    controller = new AbortController();
    ui.result.hidden = false;
    ui.error.hidden = true;
    ui.facts.hidden = true;
    ui.output.textContent = "";
    ui.status.textContent = texts.streaming;
    setBusy(true);
    let usage = null;
    let extra = null;
    try {
      const response = await fetch(form.dataset.endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.dataset.csrf },
        body: JSON.stringify(requestBody()),
        signal: controller.signal,
      });
      if (!response.ok) {
        const error = await errorOf(response);
        showError(error.code, error.message, error.retryAfterMs);
        return;
      }
      for await (const data of sseData(response.body)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) {
          showError("stream", chunk.error.message);
          break;
        }
        for (const choice of chunk.choices || []) {
          const piece = choice.delta && choice.delta.content;
          if (piece) ui.output.append(piece);
        }
        if (chunk.usage) usage = chunk.usage;
        if (chunk.x_clawwits) extra = chunk.x_clawwits;
      }
      if (ui.error.hidden) ui.status.textContent = texts.done;
    } catch (error) {
      if (error.name === "AbortError") {
        ui.status.textContent = texts.stopped;
      } else if (error instanceof SyntaxError) {
        showError("stream", "");
      } else {
        showError("", texts.network);
      }
    } finally {
      controller = null;
      showFacts(usage, extra);
      setBusy(false);
      refreshBalance();
    }
  }

  ui.model.addEventListener("change", limitMaxTokens);
  ui.stop.addEventListener("click", () => controller && controller.abort());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!controller) run();
  });
  limitMaxTokens();
})();
