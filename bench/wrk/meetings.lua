-- wrk script for the REST benchmarks (bench/rest_load.py sets the environment):
-- BENCH_OP = create | get | list | update, BENCH_TOKEN, BENCH_IDS (comma-separated meeting
-- ids for get/update), BENCH_LIST_GTE / BENCH_LIST_LT (the list's start_date window, sent in
-- the hosted API's bracket form), BENCH_ATTENDEES (a JSON array for create).
local op = os.getenv("BENCH_OP")
local token = os.getenv("BENCH_TOKEN")
local gte = os.getenv("BENCH_LIST_GTE") or "0"
local lt = os.getenv("BENCH_LIST_LT") or "0"
local attendees = os.getenv("BENCH_ATTENDEES") or "[]"
local ids = {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do
  ids[#ids + 1] = id
end
local counter = 0
local headers = { ["CB-Token"] = token, ["Content-Type"] = "application/json" }

init = function(args)
  -- One Lua state per wrk thread: seed each differently.
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

request = function()
  counter = counter + 1
  if op == "create" then
    local start = 1830297600 + counter * 60
    local body = string.format(
      '{"name":"Bench meeting %d","start_date":%d,"end_date":%d,"attendees":%s}',
      counter, start, start + 1800, attendees)
    return wrk.format("POST", "/meetings", headers, body)
  elseif op == "get" then
    return wrk.format("GET", "/meetings/" .. ids[math.random(#ids)], headers)
  elseif op == "update" then
    local body = string.format('{"name":"Renamed %d %d"}', counter, math.random(1, 1000000000))
    return wrk.format("PUT", "/meetings/" .. ids[math.random(#ids)], headers, body)
  end
  return wrk.format("GET", "/meetings?start_date[gte]=" .. gte .. "&start_date[lt]=" .. lt, headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
