-- wrk script: GET GET_PATH (default /-/errors) and report one RESULT line.
local path = os.getenv("GET_PATH") or "/-/errors"

function request()
  return wrk.format("GET", path)
end

dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./") .. "report.lua")
