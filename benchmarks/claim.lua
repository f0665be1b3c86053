-- wrk script for POST /v1/claims: each request is a new person (a bearer token of its own, read
-- from XFQ_BENCH_TOKENS) unless XFQ_BENCH_MODE=same, with a fresh Idempotency-Key; counts the
-- answers by their "code" (or HTTP status) and prints them as one JSON line at the end.
-- XFQ_BENCH_CREDENTIAL=pass: the lines are claim passes, sent as the Claim-Pass header.
local tokens, n, i, offset = {}, 0, 0, 0
counts = {}  -- a global: done() reads it from each thread with thread:get
local mode = os.getenv("XFQ_BENCH_MODE") or "spread"
local run = os.getenv("XFQ_BENCH_RUN") or "run"
local body = '{"type_id":"' .. (os.getenv("XFQ_BENCH_TYPE") or "plenty") .. '"}'
local threads = {}
local header, scheme = "Authorization", "Bearer "
if os.getenv("XFQ_BENCH_CREDENTIAL") == "pass" then header, scheme = "Claim-Pass", "" end

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("XFQ_BENCH_TOKENS")) do
    n = n + 1
    tokens[n] = scheme .. line
  end
  -- the warm-up takes its people from the last quarter, the run from the start
  offset = tonumber(os.getenv("XFQ_BENCH_OFFSET") or "0") + (id or 0) * 1000003
end

function request()
  i = i + 1
  local person = 1
  if mode ~= "same" then person = ((offset + i - 1) % n) + 1 end
  return wrk.format("POST", "/v1/claims", {
    [header] = tokens[person],
    ["Idempotency-Key"] = run .. "-" .. (id or 0) .. "-" .. i,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, resp)
  local code = string.match(resp, '"code": ?"([%w_]+)"') or tostring(status)
  counts[code] = (counts[code] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, c in pairs(t:get("counts")) do total[code] = (total[code] or 0) + c end
  end
  local parts = {}
  for code, c in pairs(total) do table.insert(parts, '"' .. code .. '":' .. c) end
  io.write("XFQ_CODES {" .. table.concat(parts, ",") .. "}\n")
  io.write(string.format("XFQ_LATENCY_US p50=%d p99=%d max=%d\n",
    latency:percentile(50), latency:percentile(99), latency.max))
end
