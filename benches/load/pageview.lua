-- wrk script: Plausible-style pageviews for bench.example, each request from another visitor
-- (X-Forwarded-For and User-Agent vary), over 50 pages. Used by benches/load/run.sh.
local counter = 0
request = function()
  counter = counter + 1
  local visitor = counter % 100000
  local ip = string.format("10.%d.%d.%d", math.floor(visitor / 65536) % 256, math.floor(visitor / 256) % 256, visitor % 256)
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/12" .. (visitor % 10) .. ".0.0.0 Safari/537.36",
    ["X-Forwarded-For"] = ip,
  }
  local body = string.format('{"name":"pageview","url":"https://bench.example/page/%d","domain":"bench.example","referrer":"https://www.google.com/"}', counter % 50)
  return wrk.format("POST", "/api/event", headers, body)
end
