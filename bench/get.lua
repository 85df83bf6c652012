-- wrk script: GET GET_PATH (default /-/errors) and report one RESULT line. With
-- ACCEPT_ENCODING set (e.g. gzip), it is sent as the request's Accept-Encoding.
local path = os.getenv("GET_PATH") or "/-/errors"
local encoding = os.getenv("ACCEPT_ENCODING") or ""
local headers = {}
if encoding ~= "" then
  headers["Accept-Encoding"] = encoding
end

function request()
  return wrk.format("GET", path, headers)
end

dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./") .. "report.lua")
