#!/usr/bin/env python3
"""The CPU demo on threads, as the tutorials warn against: the same chunks
as prime_pool.py checked on a concurrent.futures.ThreadPoolExecutor. The
GIL lets one thread run Python at a time, so this takes about as long as
the sequential program: what conlab's `gil` mode shows.

    prime_threads.py [--limit 2000000] [--threads CORES]

Prints one JSON object like prime_pool.py's (wall time from creating the
executor to the flattened results; each chunk's own time, which on
threads spans the whole run as the chunks take turns). Only the standard
library; bench/cpu.sh compares it with GET /run/prime?mode=gil&tasks=CORES
of the same limit.
"""

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor


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
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    numbers = list(range(1, args.limit))
    size = -(-len(numbers) // args.threads)  # one chunk per thread
    chunks = [numbers[i:i + size] for i in range(0, len(numbers), size)]
    cpu0 = time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.threads) as executor:
        chunk_results = list(executor.map(check_numbers_chunk, chunks))
    results = [item for _, chunk in chunk_results for item in chunk]
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    print(json.dumps({
        "program": "prime_threads",
        "limit": args.limit,
        "threads": args.threads,
        "tasks": len(numbers),
        "completed": len(results),
        "checked": len(results),
        "primes": sum(1 for _, p in results if p),
        "wall_ms": wall * 1e3,
        "chunk_ms": [s * 1e3 for s, _ in chunk_results],
        "cpu_s": cpu,
        "maxrss_mib": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024,
        "python": sys.version.split()[0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(run())
