-- wrk script for bench/push.py: POSTs pre-built 100-record bodies, a different id prefix per body.
-- PATRON_PATH, PATRON_KEY and PATRON_BODY (a JSON file with @N@ where each body's prefix goes).
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  local file = io.open(os.getenv("PATRON_BODY"), "r")
  local template = file:read("*a")
  file:close()
  local headers = {["Content-Type"] = "application/json", ["X-Ometria-Auth"] = os.getenv("PATRON_KEY")}
  requests = {}
  for i = 1, 200 do
    local body = template:gsub("@N@", "t" .. tid .. "b" .. i)
    requests[i] = wrk.format("POST", os.getenv("PATRON_PATH"), headers, body)
  end
  n = 0
  failures = 0
end

function request()
  n = n % #requests + 1
  return requests[n]
end
