#!/usr/bin/env python3
"""The Python side of /run/overhead: what a unit of concurrency costs to
start and to keep, measured the way the service measures its own.

    overhead_units.py --threads 64 --processes 8 --tasks 1000

Prints one JSON object: per kind, the start-up latency of every unit (µs:
min, median, p99) and the memory per unit while all are alive (bytes),
each with its method:
  threading.Thread         Thread.start() to the target's first line, one at
                           a time (each waited for), the earlier ones parked
                           on an Event; memory: the process's RSS growth
                           over the threads alive / N (Python allocates the
                           thread's state besides its stack).
  multiprocessing.Process  Process.start() to the target's first line
                           (CLOCK_MONOTONIC is system-wide), one at a time,
                           the earlier ones parked; with the default start
                           method (fork on Linux) and with "spawn" (a fresh
                           interpreter, as the service's spawn mode starts
                           a fresh binary); memory: each child's PSS
                           (/proc/PID/smaps_rollup) while all are alive.
  asyncio.create_task      create_task() to the coroutine's first line, each
                           task creating the next (one turn of the loop);
                           memory: tracemalloc's growth over N tasks parked
                           on one Future / N.
Only the standard library is used.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
import tracemalloc


def figures(values_ns):
    v = sorted(values_ns)
    n = len(v)
    p99 = v[max(1, -(-n * 99 // 100)) - 1]
    return {"min": v[0] / 1000, "median": v[n // 2] / 1000, "p99": p99 / 1000}


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def pss_bytes(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_threads(n):
    release = threading.Event()
    lat = []
    arrived = threading.Semaphore(0)
    before = rss_bytes()
    threads = []

    def unit(t0):
        first = time.monotonic_ns()
        lat.append(first - t0)
        arrived.release()
        release.wait()

    for _ in range(n):
        t0 = time.monotonic_ns()
        t = threading.Thread(target=unit, args=(t0,))
        t.start()
        arrived.acquire()
        threads.append(t)
    grown = max(0, rss_bytes() - before)
    release.set()
    for t in threads:
        t.join()
    out = figures(lat)
    out.update(memory_bytes=grown / n, units=n,
               start_method="Thread.start() to the target's first line, "
               "one at a time, the earlier ones parked",
               memory_method="the process's RSS growth with the threads "
               "alive / N")
    return out


def _child(conn, release):
    first = time.monotonic_ns()
    conn.send(first)
    release.wait()


def measure_processes(n, method):
    ctx = mp.get_context(method)
    release = ctx.Event()
    procs, lat = [], []
    try:
        for _ in range(n):
            parent, child = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(child, release))
            t0 = time.monotonic_ns()
            p.start()
            first = parent.recv()
            lat.append(first - t0)
            procs.append(p)
        mem = [pss_bytes(p.pid) for p in procs]
    finally:
        release.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
    out = figures(lat)
    out.update(memory_bytes=statistics.median(mem), units=n,
               start_method="Process.start() (start method %s) to the "
               "target's first line, one at a time, the earlier ones "
               "parked" % method,
               memory_method="PSS of each child while all are alive")
    return out


async def _tasks(n):
    lat = []
    done = asyncio.get_running_loop().create_future()
    park = asyncio.get_running_loop().create_future()
    tasks = []

    async def unit(i, t0):
        lat.append(time.monotonic_ns() - t0)
        if i + 1 < n:
            tasks.append(asyncio.create_task(unit(i + 1, time.monotonic_ns())))
        else:
            done.set_result(None)
        await park

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks.append(asyncio.create_task(unit(0, time.monotonic_ns())))
    await done
    await asyncio.sleep(0)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    park.set_result(None)
    await asyncio.gather(*tasks)
    return lat, held


def measure_tasks(n):
    lat, held = asyncio.run(_tasks(n))
    out = figures(lat)
    out.update(memory_bytes=held / n, units=n,
               start_method="create_task() to the coroutine's first line, "
               "each task creating the next",
               memory_method="tracemalloc's growth with the tasks parked "
               "/ N")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=1000)
    a = ap.parse_args()
    out = {
        "python": sys.version.split()[0],
        "threading.Thread": measure_threads(a.threads),
        "multiprocessing.Process (%s)" % mp.get_start_method():
            measure_processes(a.processes, mp.get_start_method()),
        "multiprocessing.Process (spawn)":
            measure_processes(a.processes, "spawn"),
        "asyncio.create_task": measure_tasks(a.tasks),
    }
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
