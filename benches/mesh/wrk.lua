-- wrk script for the mesh benchmark.
--
--   wrk ... -s wrk.lua -- sat          closed loop: every connection sends its
--                                      next request as soon as the previous
--                                      response is in (wrk's normal mode)
--   wrk ... -s wrk.lua -- rate N [T]   open-ish loop paced at N requests/s in
--                                      total over all connections (T: the
--                                      number of wrk threads, default 1)
--   wrk ... -s wrk.lua -- check        closed loop that also counts every
--                                      response whose status is not 2xx (the
--                                      Lua response hook costs a little, so
--                                      run.sh uses it for the warm-up only)
--
-- Either way done() prints one line "WRKJSON {...}" with the counters and
-- latency percentiles (microseconds) that run.sh records.
--
-- Pacing: wrk calls delay() before each request and waits that many
-- milliseconds. A global schedule hands out one slot every 1/N s; delay()
-- returns the time until the next free slot. If no connection was free when a
-- slot came (the chain is slower than the rate), the schedule restarts from
-- now instead of bursting to catch up, and the miss is counted in "late".
-- Latency is wrk's own: from writing the request to reading the whole
-- response. It is NOT corrected for coordinated omission (as wrk2 would be),
-- which is why run.sh keeps the rate well below saturation and reports the
-- achieved rate and the number of late slots.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } mesh_bench_timespec;
int clock_gettime(int clk_id, mesh_bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("mesh_bench_timespec")

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
   return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

-- Per-thread state (each wrk thread has its own Lua state).
late = 0
non2xx = 0
local interval_us = nil
local next_us = nil

local function paced_delay()
   local now = now_us()
   if next_us == nil then
      next_us = now
   elseif next_us < now - interval_us then
      late = late + 1
      next_us = now
   end
   local wait_us = next_us - now
   next_us = next_us + interval_us
   if wait_us <= 0 then
      return 0
   end
   return math.floor(wait_us / 1000)
end

local function check_response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

-- Runs in every thread's state before wrk checks whether delay() and
-- response() exist, so defining them here makes pacing and checking optional.
function init(args)
   local mode = args[1] or "sat"
   if mode == "rate" then
      local rate = tonumber(args[2])
      if rate == nil or rate <= 0 then
         error("wrk.lua: 'rate' needs a positive number of requests/s")
      end
      -- Spread the total rate over wrk's threads (args[3], default 1).
      local nthreads = tonumber(args[3]) or 1
      interval_us = 1e6 * nthreads / rate
      delay = paced_delay
   elseif mode == "check" then
      response = check_response
   elseif mode ~= "sat" then
      error("wrk.lua: mode must be 'sat', 'check' or 'rate N', got " .. tostring(mode))
   end
end

-- Main state: remember the threads so done() can read their 'late' counters.
local threads = {}
function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local late_total, non2xx_total = 0, 0
   for _, t in ipairs(threads) do
      late_total = late_total + (tonumber(t:get("late")) or 0)
      non2xx_total = non2xx_total + (tonumber(t:get("non2xx")) or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,' ..
      '"lat_max_us":%d,"late":%d,"non2xx":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, late_total, non2xx_total))
end
