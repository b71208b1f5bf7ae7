-- wrk: POST /publish with form bodies, each to one of 1,000 channels
-- (100 events of history each: room for 100,000 publishes in all).
local published = 0

request = function()
  published = published + 1
  local body = "channel=load%3A" .. math.random(0, 999) .. "&message=" .. published
  return wrk.format("POST", "/publish", { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end
