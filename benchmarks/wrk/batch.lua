-- POST /v1/batch with 100-event JSON bodies, the write key as the Basic-auth username, as the
-- server-side Segment SDKs send them. Arguments after `--`: the bodies file (one body a line),
-- the Authorization header value, and the requests per second for this thread (0: unpaced).
local bench = require "bench"
local requests, sent = {}, 0

function init(args)
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = args[2] }
  for _, body in ipairs(bench.lines(args[1])) do
    requests[#requests + 1] = wrk.format("POST", "/v1/batch", headers, body)
  end
  bench.pace(tonumber(args[3]))
end

function request()
  sent = sent % #requests + 1
  return requests[sent]
end

done = bench.done
