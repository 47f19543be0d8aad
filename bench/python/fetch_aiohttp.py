#!/usr/bin/env python3
"""The fetch demo as the aiohttp tutorials write it: one ClientSession,
one coroutine per URL, all run together with asyncio.gather.

    fetch_aiohttp.py --url http://127.0.0.1:PORT/delay?ms=100 [--count 1000]

The session's TCPConnector allows `count` connections at once (limit=),
so every request is in flight together, as in /run/fetch's async mode.
A request is an error when it raises or answers anything but 200. Prints
one JSON object: the wall time (from creating the session to the last
answer read), ok and error counts with the errors' messages tallied, the
median and max time of one request, the process's peak RSS before and
after (resource.getrusage) and its CPU time. Needs aiohttp (Debian:
python3-aiohttp; bench/loop.sh runs it with /usr/bin/python3).
"""

import argparse
import asyncio
import collections
import json
import resource
import statistics
import sys
import time

import aiohttp


def maxrss_mib():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def fetch(session, url):
    t0 = time.perf_counter()
    try:
        async with session.get(url) as resp:
            await resp.read()
            error = None if resp.status == 200 else f"HTTP {resp.status}"
    except Exception as e:  # counted, not raised: one failure is a result
        error = f"{type(e).__name__}: {e}"
    return error, (time.perf_counter() - t0) * 1e3


async def main(url, count, timeout_s):
    start = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=count)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=timeout) as session:
        results = await asyncio.gather(*[fetch(session, url)
                                         for _ in range(count)])
        wall = time.perf_counter() - start
    return wall, results


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()

    # One socket per request: make sure the descriptor limit is not what
    # fails (the soft limit is often 1024).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new

    baseline = maxrss_mib()
    cpu0 = time.process_time()
    wall, results = asyncio.run(main(args.url, args.count, args.timeout))
    cpu = time.process_time() - cpu0
    errors = collections.Counter(e for e, _ in results if e is not None)
    times = [ms for _, ms in results]
    print(json.dumps({
        "url": args.url,
        "count": args.count,
        "completed": len(results),
        "wall_ms": wall * 1e3,
        "ok": len(results) - sum(errors.values()),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(5)),
        "request_ms_median": statistics.median(times) if times else None,
        "request_ms_max": max(times) if times else None,
        "baseline_maxrss_mib": baseline,
        "maxrss_mib": maxrss_mib(),
        "cpu_s": cpu,
        "nofile": soft,
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(run())
