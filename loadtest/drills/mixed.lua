-- loadtest/drills/mixed.lua: wrk script for the cluster drills. Cycles
-- through one cheap GET per route group, so every HAProxy backend (and
-- every API process behind it) carries load: the web front-end, the
-- caller's own user, their jobs and their images. TT_KEY: an API key.
local key = os.getenv("TT_KEY") or ""
local paths = {"/index.html", "/api/users/me", "/api/jobs?limit=1", "/api/images?limit=1"}
local n = 0
request = function()
    n = n + 1
    return wrk.format("GET", paths[(n % #paths) + 1], {["Authorization"] = "Bearer " .. key})
end
