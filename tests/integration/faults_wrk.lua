-- wrk script of faults.py's "kill -9 during wrk" case.
--
--   wrk -t2 -c16 -d6s -s faults_wrk.lua 'http://127.0.0.1:PORT/run/prime?...'
--
-- Every thread counts its answers per status and checks each non-200: it
-- must be a 502 with the API's JSON error shape whose message says that a
-- worker died. done() sums the threads (thread:get copies their globals)
-- and prints one line for the test to parse:
--
--   faults-wrk {"statuses":{"200":N,"502":M},"unexpected":K,"sample":"...",
--               "requests":R,"errors":{"connect":0,"read":0,...}}
--
-- wrk's own counters (summary.errors) are printed too: the test requires
-- no connect, read, write or timeout error.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    statuses = {}
    unexpected = 0 -- non-200 answers that are not the worker-died 502
    sample = ""    -- the first of them, for the failure message
end

local function is_worker_died(status, headers, body)
    if status ~= 502 then
        return false
    end
    local ctype = headers["Content-Type"] or headers["content-type"] or ""
    return ctype == "application/json; charset=utf-8"
        and body:find('^{"error":{"status":502,"message":"') ~= nil
        and body:find("died", 1, true) ~= nil
        and body:sub(-2) == "}}"
end

function response(status, headers, body)
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
    if status ~= 200 and not is_worker_died(status, headers, body) then
        unexpected = unexpected + 1
        if sample == "" then
            sample = key .. " " .. body:sub(1, 200)
        end
    end
end

-- A JSON string literal (the sample is the only free text).
local function quote(s)
    s = s:gsub('[%c"\\]', function(c)
        return string.format("\\u%04x", c:byte())
    end)
    return '"' .. s .. '"'
end

function done(summary, latency, requests)
    local total = {}
    local bad, first = 0, ""
    for _, thread in ipairs(threads) do
        for key, n in pairs(thread:get("statuses") or {}) do
            total[key] = (total[key] or 0) + n
        end
        bad = bad + (thread:get("unexpected") or 0)
        local s = thread:get("sample") or ""
        if first == "" then
            first = s
        end
    end
    local parts = {}
    for key, n in pairs(total) do
        table.insert(parts, string.format('"%s":%d', key, n))
    end
    local e = summary.errors
    io.write(string.format(
        'faults-wrk {"statuses":{%s},"unexpected":%d,"sample":%s,'
            .. '"requests":%d,"duration_us":%d,"errors":{"connect":%d,'
            .. '"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
        table.concat(parts, ","), bad, quote(first), summary.requests,
        summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
