-- wrk script for POST /v1/merchant/redemptions: sends the pre-signed requests of
-- XFQ_BENCH_REQUESTS (one a line: key id, timestamp, nonce, signature, Idempotency-Key, body,
-- tab-separated; made by redemptions.py), each once, from line XFQ_BENCH_OFFSET + 1 on, at most
-- XFQ_BENCH_COUNT of them. A merchant's nonce is refused when reused, so when the slice runs out
-- the first request of the slice is sent again (a replay the server refuses, 401) and counted as
-- "exhausted": the run then measured refusals, and redemptions.py fails it.
-- Counts the answers by their "code" (or HTTP status), prints them as one JSON line, and writes
-- the order_ref of every 201 to XFQ_BENCH_CREATED, so the ledger can be checked against them,
-- after a first line with the number of requests sent but not answered when wrk stopped (the
-- server may have redeemed those: they are in the ledger without a 201 seen here).
local lines, n, i = {}, 0, 0
counts = {}  -- globals: done() reads them from each thread with thread:get
created = {}
exhausted, sent, answered = 0, 0, 0
local threads = {}
local path = os.getenv("XFQ_BENCH_PATH") or "/v1/merchant/redemptions"
local wrap = os.getenv("XFQ_BENCH_WRAP") == "1"  -- the ceilings: round and round

function setup(thread)
  table.insert(threads, thread)
end

local function split(line)
  local fields = {}
  for field in string.gmatch(line, "[^\t]+") do table.insert(fields, field) end
  return fields
end

function init(args)
  local offset = tonumber(os.getenv("XFQ_BENCH_OFFSET") or "0")
  local count = tonumber(os.getenv("XFQ_BENCH_COUNT") or "1000000000")
  local at = 0
  for line in io.lines(os.getenv("XFQ_BENCH_REQUESTS")) do
    at = at + 1
    if at > offset and n < count then
      local f = split(line)
      n = n + 1
      lines[n] = wrk.format("POST", path, {
        ["X-Xfq-Key"] = f[1],
        ["X-Xfq-Timestamp"] = f[2],
        ["X-Xfq-Nonce"] = f[3],
        ["X-Xfq-Signature"] = f[4],
        ["Idempotency-Key"] = f[5],
        ["Content-Type"] = "application/json",
      }, f[6])
    end
  end
end

function request()
  i = i + 1
  sent = i
  if wrap then return lines[((i - 1) % n) + 1] end
  if i > n then
    exhausted = exhausted + 1
    return lines[1]
  end
  return lines[i]
end

function response(status, headers, resp)
  answered = answered + 1
  local code = string.match(resp, '"code": ?"([%w_]+)"') or tostring(status)
  counts[code] = (counts[code] or 0) + 1
  if status == 201 then
    table.insert(created, string.match(resp, '"order_ref": ?"([^"]+)"') or "?")
  end
end

function done(summary, latency, requests)
  local total, refs, spent, unanswered = {}, {}, 0, 0
  for _, t in ipairs(threads) do
    for code, c in pairs(t:get("counts")) do total[code] = (total[code] or 0) + c end
    for _, ref in ipairs(t:get("created")) do table.insert(refs, ref) end
    spent = spent + t:get("exhausted")
    unanswered = unanswered + t:get("sent") - t:get("answered")
  end
  if spent > 0 then total["exhausted"] = spent end
  local parts = {}
  for code, c in pairs(total) do table.insert(parts, '"' .. code .. '":' .. c) end
  io.write("XFQ_CODES {" .. table.concat(parts, ",") .. "}\n")
  io.write(string.format("XFQ_LATENCY_US p50=%d p99=%d max=%d\n",
    latency:percentile(50), latency:percentile(99), latency.max))
  local out = os.getenv("XFQ_BENCH_CREATED")
  if out then
    local file = assert(io.open(out, "w"))
    file:write("# unanswered ", unanswered, "\n")  -- in flight when wrk stopped
    for _, ref in ipairs(refs) do file:write(ref, "\n") end
    file:close()
  end
end
