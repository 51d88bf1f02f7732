-- Shared by the Whistle benchmark's wrk scripts (see bench/run.py).
-- Each line of the file named by WRK_LINES is one request: a JSON body (POST
-- scripts) or a path (GET scripts). Threads start at different offsets and
-- cycle through the lines. done() writes a JSON summary to WRK_REPORT.

local M = {}

function M.read_lines(path)
  local lines = {}
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if #line > 0 then lines[#lines + 1] = line end
  end
  f:close()
  assert(#lines > 0, "no lines in " .. path)
  return lines
end

function M.report(summary, latency)
  local errors = summary.errors
  local out = string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, "mean_us": %.1f, "max_us": %.0f}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.mean, latency.max)
  local f = assert(io.open(os.getenv("WRK_REPORT"), "w"))
  f:write(out)
  f:close()
end

return M
