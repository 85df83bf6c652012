-- wrk script: POST the payload files given after `--` round-robin to PUSH_PATH (default /errors).
--   FRESH=1      every request claims a target_uuid never seen before, as a new process's first
--                push does: the gateway counts it and writes. Without it the same few bodies
--                repeat, which the gateway recognizes as already counted and does not write.
local bodies = {}
local counter = 0
local sent = 0
local path = os.getenv("PUSH_PATH") or "/errors"
local fresh = os.getenv("FRESH") == "1"
local threads_set_up = 0
thread_id = 0  -- a global: setup() gives each thread's copy its own number

function setup(thread)
  threads_set_up = threads_set_up + 1
  thread:set("thread_id", threads_set_up)
end

function init(args)
  for _, name in ipairs(args) do
    local f = assert(io.open(name, "rb"))
    local body = f:read("*a")
    f:close()
    -- Split around the target_uuid's value, to put a new one in between.
    local s, e = string.find(body, '"target_uuid": "[^"]*"')
    assert(s, name .. " has no target_uuid")
    bodies[#bodies + 1] = { body, string.sub(body, 1, s - 1), string.sub(body, e + 1) }
  end
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  sent = sent + 1
  local body = bodies[counter][1]
  if fresh then
    local uuid = string.format('"target_uuid": "bench-%d-%d-%d"', os.time(), thread_id, sent)
    body = bodies[counter][2] .. uuid .. bodies[counter][3]
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./") .. "report.lua")
