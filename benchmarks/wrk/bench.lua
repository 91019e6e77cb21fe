-- Shared by batch.lua and single.lua (wrk runs with this folder as its working directory, so
-- `require "bench"` finds it). wrk has no rate option and Debian has no wrk2, so a paced run
-- uses wrk's delay() hook: each thread hands out send slots 1/rate apart on a monotonic clock
-- (LuaJIT's ffi, clock_gettime), and a connection that finishes a response waits for the next
-- free slot. A slot missed because every connection was busy is not made up later, so the
-- achieved rate (reported) falls below the target when the server cannot keep up. wrk times a
-- request from its first byte written to its response: the delay is not counted.
local ffi = require "ffi"
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_buffer = ffi.new("bench_timespec")

local bench = {}

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
  return tonumber(now_buffer.tv_sec) * 1000 + tonumber(now_buffer.tv_nsec) / 1e6
end

local interval_ms, next_slot = 0, 0

-- rate: requests per second for this thread; 0 means as fast as the server answers.
function bench.pace(rate)
  if rate and rate > 0 then
    interval_ms = 1000 / rate
    next_slot = now_ms()
    delay = bench.delay
  end
end

function bench.delay()
  local now = now_ms()
  next_slot = math.max(next_slot + interval_ms, now)
  return math.floor(next_slot - now)
end

-- Request bodies, one per line of a file written by bench_collector.
function bench.lines(path)
  local lines = {}
  for line in io.lines(path) do
    lines[#lines + 1] = line
  end
  return lines
end

-- One JSON line on stdout for bench_collector: counts and latency percentiles (microseconds).
function bench.done(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    '\nBENCH {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

return bench
