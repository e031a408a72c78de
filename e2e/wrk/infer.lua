-- wrk script: POST a JSON infer to the mlp. Body from $BODY_FILE.
-- $MAX_PER_THREAD (optional): each thread stops after that many responses (bounded soak).
-- done() writes a JSON summary to $WRK_JSON.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local max = tonumber(os.getenv("MAX_PER_THREAD") or "0")
local stop_dir = os.getenv("STOP_DIR")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local count = 0
local bad = 0
function response(status, headers, body)
  count = count + 1
  if status ~= 200 then bad = bad + 1 end
  if max > 0 and count == max then
    if stop_dir then
      local m = io.open(stop_dir .. "/thread-" .. tostring(id), "w")
      if m then m:close() end
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local out = os.getenv("WRK_JSON")
  if not out then return end
  local e = summary.errors
  local s = string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"rps":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"min":%d,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}',
    summary.requests, summary.duration, summary.bytes, summary.requests / (summary.duration / 1e6),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.min, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9))
  local fh = assert(io.open(out, "w"))
  fh:write(s)
  fh:close()
end
