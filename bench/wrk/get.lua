-- GET one path per request, cycling through the lines of WRK_LINES, with an
-- optional bearer token from WRK_BEARER.
package.path = os.getenv("WRK_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local paths
local headers = {}
local i

function init(args)
  paths = common.read_lines(os.getenv("WRK_LINES"))
  i = ((id or 0) * 7919) % #paths
  local bearer = os.getenv("WRK_BEARER")
  if bearer and #bearer > 0 then headers["Authorization"] = "Bearer " .. bearer end
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
end

function done(summary, latency, requests)
  common.report(summary, latency)
end
