-- POST /v1/t with one track event per request, text/plain with the writeKey in the body, as
-- analytics-next sends events unbatched from a page. Each request gets its own messageId
-- (thread number and a counter put where the template says @MESSAGE_ID@), so the events are
-- distinct. Arguments after `--`: the templates file (one body a line) and the requests per
-- second for this thread (0: unpaced).
local bench = require "bench"
local templates, sent, thread_no = {}, 0, 0
local headers = { ["Content-Type"] = "text/plain" }

function setup(thread)
  thread_count = (thread_count or 0) + 1
  thread:set("wrk_thread_no", thread_count)
end

function init(args)
  for _, body in ipairs(bench.lines(args[1])) do
    local before, after = body:match("^(.-)@MESSAGE_ID@(.*)$")
    templates[#templates + 1] = { before, after }
  end
  thread_no = wrk_thread_no or 0
  bench.pace(tonumber(args[2]))
end

function request()
  sent = sent + 1
  local template = templates[(sent - 1) % #templates + 1]
  local body = template[1] .. "wrk-" .. thread_no .. "-" .. sent .. template[2]
  return wrk.format("POST", "/v1/t", headers, body)
end

done = bench.done
