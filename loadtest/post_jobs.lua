-- loadtest/post_jobs.lua: wrk script for POST /api/jobs with an API key.
--
-- Every request is a distinct job: the target url carries a per-thread
-- counter in its query string (http://127.0.0.1:9/?t=THREAD&n=COUNTER), so
-- no two bodies are equal. No Idempotency-Key: each request must create a
-- job. The key comes from TT_KEY (set by loadtest/bench_api.sh); the path
-- is the one in the URL given to wrk (/api/jobs).
local key = os.getenv("TT_KEY")
if not key or key == "" then
    io.stderr:write("post_jobs.lua: TT_KEY is not set\n")
    os.exit(2)
end

local threads = {}
local next_id = 0

function setup(thread)
    thread:set("tid", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

n = 0 -- global: done() reads it per thread with thread:get("n")
local headers = {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
}

function init(args)
    wrk.method = "POST"
end

function request()
    n = n + 1
    local body = string.format('{"url":"http://127.0.0.1:9/?t=%d&n=%d"}', tid, n)
    return wrk.format("POST", nil, headers, body)
end

-- How many request bodies each thread built (includes requests still in
-- flight when wrk stopped, which wrk does not count as responses).
function done(summary, latency, requests)
    local built = 0
    for _, t in ipairs(threads) do
        built = built + (t:get("n") or 0)
    end
    io.write(string.format("lua: request bodies built %d\n", built))
end
