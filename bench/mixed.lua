-- wrk script of bench/mixed.sh and bench/soak.sh: a fixed mix of requests,
-- as a dashboard's users and a monitor would send them together. Each wrk
-- thread walks the cycle below, one entry per request, so that over a run
-- every thread sends the shares written beside each entry:
--   60%  GET /health                                     (the monitor)
--   15%  GET /run/prime?limit=50000&tasks=1&mode=processes  (small CPU job)
--    5%  GET /run/prime?limit=50000&tasks=2&mode=threads
--   10%  GET /run/sleep?tasks=10&ms=20&mode=async         (timers)
--   10%  GET /run/fetch?count=5&ms=10                     (5 self-fetches)
-- After the run it prints wrk's figures as one exact line (as bench/cpu.lua
-- does) and one line counting the answers by status, summed over the
-- threads: "CONLAB-STATUS 200=N 503=M ...".

local cycle = {
    "/health", "/run/prime?limit=50000&tasks=1&mode=processes", "/health",
    "/run/sleep?tasks=10&ms=20&mode=async", "/health",
    "/run/fetch?count=5&ms=10", "/health",
    "/run/prime?limit=50000&tasks=1&mode=processes", "/health",
    "/run/prime?limit=50000&tasks=2&mode=threads", "/health",
    "/run/sleep?tasks=10&ms=20&mode=async", "/health",
    "/run/prime?limit=50000&tasks=1&mode=processes", "/health",
    "/run/fetch?count=5&ms=10", "/health", "/health", "/health", "/health",
}

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    requests = {}
    for i, path in ipairs(cycle) do
        requests[i] = wrk.format("GET", path)
    end
    next_request = 0
    statuses = {}
end

function request()
    next_request = next_request % #requests + 1
    return requests[next_request]
end

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "CONLAB-BENCH requests=%d duration_us=%d mean_us=%.3f " ..
        "p50_us=%.1f p99_us=%.1f max_us=%.1f " ..
        "connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.duration, latency.mean,
        latency:percentile(50), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
    local total = {}
    for _, thread in ipairs(threads) do
        for status, n in pairs(thread:get("statuses")) do
            total[status] = (total[status] or 0) + n
        end
    end
    local line = "CONLAB-STATUS"
    for status, n in pairs(total) do
        line = line .. string.format(" %d=%d", status, n)
    end
    io.write(line .. "\n")
end
