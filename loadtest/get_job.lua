-- loadtest/get_job.lua: wrk script for GET /api/jobs/{id} with an API key.
--
-- The URL given to wrk is the job's own URL; this only adds the
-- Authorization header, read from TT_KEY (set by loadtest/bench_api.sh).
-- No request() function, so wrk builds the request once and resends the
-- same bytes: the per-request cost on the client side is as small as for a
-- plain `wrk URL` against nginx.
local key = os.getenv("TT_KEY")
if not key or key == "" then
    io.stderr:write("get_job.lua: TT_KEY is not set\n")
    os.exit(2)
end
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Accept"] = "application/json"
