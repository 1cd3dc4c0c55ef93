-- POST one fixed body and report a machine-readable summary (benchmarks/run.py).
--
--   wrk -s benchmarks/post.lua URL -- BODY_FILE HEADERS_FILE
--
-- BODY_FILE holds the request body; HEADERS_FILE holds "Name: value" lines. Both are files so
-- that no API key shows up in a process listing. done() prints one line starting WRK_JSON.

function init(args)
  local body = assert(io.open(args[1], "rb"))
  wrk.body = body:read("*a")
  body:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  for line in io.lines(args[2]) do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      wrk.headers[name] = value
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"connect_errors\": %d, \"read_errors\": %d, \"write_errors\": %d, " ..
    "\"status_errors\": %d, \"timeouts\": %d, \"p50_us\": %d, \"p90_us\": %d, " ..
    "\"p99_us\": %d, \"max_us\": %d, \"mean_us\": %.1f}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
