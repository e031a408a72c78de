-- wrk script for tools/bench/http.mjs: POSTs JSON infer requests read from the file
-- given after "--", one request body per line, each wrk thread cycling through them
-- from its own starting line (requests that differ, as real traffic does: one request
-- repeated would let value-keyed caches hide per-request costs), and at the end
-- prints one line "WRK_JSON {...}" with exact counts and latency percentiles
-- (microseconds).
--   wrk -t2 -c16 -d10s --latency -s http.lua http://127.0.0.1:8000/v2/models/mlp/infer -- bodies.jsonl
local threads_set_up = 0

function setup(thread)
  thread:set("thread_index", threads_set_up)
  threads_set_up = threads_set_up + 1
end

local prepared = {}
local next_index = 1

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(args[1]) do
    if #line > 0 then prepared[#prepared + 1] = wrk.format("POST", nil, headers, line) end
  end
  assert(#prepared > 0, "no request bodies in " .. args[1])
  next_index = (thread_index or 0) * 97 % #prepared + 1
end

function request()
  local r = prepared[next_index]
  next_index = next_index % #prepared + 1
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"durationUs":%d,"bytes":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"statusErrors":%d,"timeouts":%d,"meanUs":%.1f,"maxUs":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"p999Us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
