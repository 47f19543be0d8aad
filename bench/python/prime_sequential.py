#!/usr/bin/env python3
"""The CPU demo as the tutorials write it, sequential: a trial-division
is_prime over every n in [1, limit), one after another, in a list
comprehension.

    prime_sequential.py [--limit 2000000]

Prints one JSON object: the count checked and of primes, the wall time of
the check as the tutorial times it (time around the comprehension), the
process's CPU time and peak RSS (resource.getrusage). Only the standard
library; bench/cpu.sh runs it with /usr/bin/python3 and compares it with
GET /run/prime?mode=sequential&tasks=1 of the same limit.
"""

import argparse
import json
import resource
import sys
import time


def is_prime(n):
    # Trial division by 2 and the odd numbers up to the square root, as
    # the tutorial's is_prime and conlab's kernel do.
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


def run():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=2000000)
    args = ap.parse_args()

    numbers = list(range(1, args.limit))
    cpu0 = time.process_time()
    start = time.perf_counter()
    results = [is_prime(n) for n in numbers]
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    print(json.dumps({
        "program": "prime_sequential",
        "limit": args.limit,
        "tasks": len(numbers),
        "completed": len(results),
        "checked": len(results),
        "primes": sum(results),
        "wall_ms": wall * 1e3,
        "cpu_s": cpu,
        "maxrss_mib": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024,
        "python": sys.version.split()[0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(run())
