#!/usr/bin/env python3
"""The CPU demo as the tutorials write it with processes: the numbers in
[1, limit) cut into one contiguous chunk per process, each chunk checked by
a trial-division is_prime in a multiprocessing.Pool (pool.map), the
per-number results sent back and flattened.

    prime_pool.py [--limit 2000000] [--processes CORES]

Prints one JSON object: the count checked and of primes, the wall time as
the tutorial times it (from creating the pool to the flattened results:
start-up, the work, sending 2 million results back, the pool's end), each
chunk's own compute time (contiguous chunks are not equally costly: trial
division costs more as n grows), the CPU time of the process and of its
reaped children, the peak RSS of the process and of the largest child
(resource.getrusage). Only the standard library; bench/cpu.sh compares it
with GET /run/prime?mode=processes&tasks=CORES of the same limit.
"""

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time


def is_prime(n):
    if n <= 1:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False
    for i in range(3, int(n**0.5) + 1, 2):
        if n % i == 0:
            return False
    return True


def check_numbers_chunk(numbers_chunk):
    """(seconds this chunk took, [(n, is_prime(n)) ...])."""
    start = time.perf_counter()
    results = [(n, is_prime(n)) for n in numbers_chunk]
    return time.perf_counter() - start, results


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=2000000)
    ap.add_argument("--processes", type=int,
                    default=multiprocessing.cpu_count())
    args = ap.parse_args()

    numbers = list(range(1, args.limit))
    size = -(-len(numbers) // args.processes)  # one chunk per process
    chunks = [numbers[i:i + size] for i in range(0, len(numbers), size)]
    cpu0 = time.process_time()
    start = time.perf_counter()
    with multiprocessing.Pool(processes=args.processes) as pool:
        chunk_results = pool.map(check_numbers_chunk, chunks)
        pool.close()
        pool.join()  # reaped, so that their CPU time is counted below
    results = [item for _, chunk in chunk_results for item in chunk]
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "program": "prime_pool",
        "limit": args.limit,
        "processes": args.processes,
        "tasks": len(numbers),
        "completed": len(results),
        "checked": len(results),
        "primes": sum(1 for _, p in results if p),
        "wall_ms": wall * 1e3,
        "chunk_ms": [s * 1e3 for s, _ in chunk_results],
        "cpu_s": cpu + children.ru_utime + children.ru_stime,
        "maxrss_mib": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024,
        "child_maxrss_mib": children.ru_maxrss / 1024,
        "pid": os.getpid(),
        "python": sys.version.split()[0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(run())
