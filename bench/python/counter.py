"""Shared counter in Python: N threads or processes each add 1 to one
counter M times, the way the tutorials write it, timed per worker.

    python3 counter.py --kind threads --sync lock --workers 2 --increments 200000

kind threads: a global int; sync lock takes one threading.Lock around each
`counter += 1`, sync none does not (the GIL may switch between the read and
the write). kind processes: a multiprocessing.Value('q'); sync lock takes
the Value's own lock (`with v.get_lock(): v.value += 1`), sync none does
`v.value += 1` without it (a read and a write of shared memory). Prints one
JSON object: expected, final, lost, and ns_per_increment (each worker's own
counting time, summed, over all increments: the figure conlab's
/run/counter reports).
"""

import argparse
import json
import multiprocessing
import threading
import time

counter = 0
lock = threading.Lock()


def count_thread(m, sync, times, i):
    global counter
    t0 = time.perf_counter()
    if sync == "lock":
        for _ in range(m):
            with lock:
                counter += 1
    else:
        for _ in range(m):
            counter += 1
    times[i] = time.perf_counter() - t0


def count_process(value, m, sync, times, i):
    t0 = time.perf_counter()
    if sync == "lock":
        for _ in range(m):
            with value.get_lock():
                value.value += 1
    else:
        for _ in range(m):
            value.value += 1
    times[i] = time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("threads", "processes"), required=True)
    ap.add_argument("--sync", choices=("none", "lock"), required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--increments", type=int, default=200000)
    args = ap.parse_args()
    n, m = args.workers, args.increments
    if args.kind == "threads":
        times = [0.0] * n
        ts = [threading.Thread(target=count_thread,
                               args=(m, args.sync, times, i))
              for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        final = counter
    else:
        value = multiprocessing.Value("q", 0)
        times = multiprocessing.Array("d", n, lock=False)
        ps = [multiprocessing.Process(target=count_process,
                                      args=(value, m, args.sync, times, i))
              for i in range(n)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        final = value.value
    expected = n * m
    print(json.dumps({"expected": expected, "final": final,
                      "lost": expected - final,
                      "ns_per_increment": sum(times) * 1e9 / expected}))


if __name__ == "__main__":
    main()
