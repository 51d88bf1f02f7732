-- POST one JSON body per request, cycling through the lines of WRK_LINES.
package.path = os.getenv("WRK_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local counter = 0
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local bodies
local i

function init(args)
  bodies = common.read_lines(os.getenv("WRK_LINES"))
  i = ((id or 0) * 7919) % #bodies
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end

function done(summary, latency, requests)
  common.report(summary, latency)
end
