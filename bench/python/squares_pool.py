#!/usr/bin/env python3
"""The pool map of the tutorials: the squares of 1..count on a
concurrent.futures.ProcessPoolExecutor, `executor.map(square, numbers)`.

    squares_pool.py [--count 5000] [--processes CORES]

Three timings, in one run:
  wall_ms          as the tutorial writes it: `with ProcessPoolExecutor()
                   as executor: list(executor.map(square, numbers))`,
                   timed from creating the pool to its end (start-up of
                   the worker processes included);
  map_ms           the same map on a pool already started (warmed by one
                   map first), chunksize 1 as in the tutorial: one
                   round trip to a worker per number;
  map_batched_ms   the same with chunksize = count / processes: one batch
                   per worker, as conlab's /run/square sends them.
Every result list must be the squares in input order, or errors counts
the differences. Prints one JSON object with those, the CPU time of the
process and its reaped children and the peak RSS. Only the standard
library; bench/cpu.sh compares it with GET /run/square?numbers=1,...,count
&mode=processes.
"""

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def square(n):
    return n * n


def timed_map(executor, numbers, chunksize):
    start = time.perf_counter()
    results = list(executor.map(square, numbers, chunksize=chunksize))
    return (time.perf_counter() - start) * 1e3, results


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--processes", type=int, default=os.cpu_count())
    args = ap.parse_args()

    numbers = list(range(1, args.count + 1))
    expected = [n * n for n in numbers]
    cpu0 = time.process_time()

    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.processes) as executor:
        results = list(executor.map(square, numbers))
    wall_ms = (time.perf_counter() - start) * 1e3
    errors = sum(a != b for a, b in zip(results, expected))
    errors += abs(len(results) - len(expected))

    batch = -(-len(numbers) // args.processes)
    with ProcessPoolExecutor(max_workers=args.processes) as executor:
        timed_map(executor, numbers[:args.processes * 4], 1)  # start them
        map_ms, one = timed_map(executor, numbers, 1)
        batched_ms, batched = timed_map(executor, numbers, batch)
    for got in (one, batched):
        errors += sum(a != b for a, b in zip(got, expected))
        errors += abs(len(got) - len(expected))

    cpu = time.process_time() - cpu0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "program": "squares_pool",
        "count": args.count,
        "processes": args.processes,
        "completed": len(results),
        "errors": errors,
        "wall_ms": wall_ms,
        "map_ms": map_ms,
        "map_batched_ms": batched_ms,
        "batch": batch,
        "cpu_s": cpu + children.ru_utime + children.ru_stime,
        "maxrss_mib": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024,
        "child_maxrss_mib": children.ru_maxrss / 1024,
        "python": sys.version.split()[0],
    }))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(run())
