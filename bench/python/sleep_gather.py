#!/usr/bin/env python3
"""The waiting demo as the asyncio tutorials write it: one coroutine per
task, each awaiting asyncio.sleep, all run together with asyncio.gather.

    sleep_gather.py [--tasks 10000] [--seconds 1.0]

Prints one JSON object: the wall time of the gather (from creating the
coroutines to the last one finishing), when the first and the last task
finished, the process's peak RSS before and after (resource.getrusage:
ru_maxrss, the high-water mark of the whole interpreter) and its CPU
time. Only the standard library; run with the interpreter the bench
chooses (bench/loop.sh: /usr/bin/python3).
"""

import argparse
import asyncio
import json
import resource
import sys
import time


def maxrss_mib():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def task(seconds, start, ends):
    await asyncio.sleep(seconds)
    ends.append(time.perf_counter() - start)


async def main(tasks, seconds):
    ends = []
    start = time.perf_counter()
    await asyncio.gather(*[task(seconds, start, ends) for _ in range(tasks)])
    wall = time.perf_counter() - start
    return wall, ends


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()

    baseline = maxrss_mib()
    cpu0 = time.process_time()
    wall, ends = asyncio.run(main(args.tasks, args.seconds))
    cpu = time.process_time() - cpu0
    print(json.dumps({
        "tasks": args.tasks,
        "seconds": args.seconds,
        "completed": len(ends),
        "wall_ms": wall * 1e3,
        "first_end_ms": min(ends) * 1e3 if ends else None,
        "last_end_ms": max(ends) * 1e3 if ends else None,
        "baseline_maxrss_mib": baseline,
        "maxrss_mib": maxrss_mib(),
        "cpu_s": cpu,
        "python": sys.version.split()[0],
    }))
    return 0 if len(ends) == args.tasks else 1


if __name__ == "__main__":
    sys.exit(run())
