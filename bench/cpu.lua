-- wrk script of bench/cpu.sh and bench/run.sh: after the run, one line of
-- exact figures (wrk's own report rounds latencies to two decimals). Defines
-- neither request() nor response(), so wrk's request loop runs at full
-- speed.
-- Latencies are in microseconds; "status" counts answers with a status of
-- 400 or more (wrk's "Non-2xx or 3xx responses").
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "CONLAB-BENCH requests=%d duration_us=%d mean_us=%.3f " ..
        "p50_us=%.1f p99_us=%.1f max_us=%.1f " ..
        "connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.duration, latency.mean,
        latency:percentile(50), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
end
