#!/usr/bin/env python3
"""Measures the memory of one conlab instance (the service process and its
worker processes together) idle and under load, to size container memory
requests and limits. The figures in deploy/README.md come from it.

    python3 deploy/measure-memory.py --binary build/conlab [--workers 2]

It starts the binary on 127.0.0.1 with a free port (--port 0), runs each
load below against it, one after another, and samples the process tree
(`ps -o rss= -p SERVICE,WORKERS...` every 20 ms; PSS, which counts shared
pages once, from /proc/PID/smaps_rollup every 100 ms): the table gives the
peak during each load and the level after it. Then it stops the service
with SIGTERM by its PID. Only 127.0.0.1 is contacted; every load is
bounded in count and time. wrk (Debian package wrk) is used for the
many-connections load when it is installed.
"""

import argparse
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"


def tree(pid):
    """The service pid and its children's (the workers)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) >= 2 and fields[1] == str(pid):
            kids.append(int(name))
    return [pid] + sorted(kids)


def rss_kib(pids):
    """{pid: RSS KiB} as ps reports it."""
    out = subprocess.run(["ps", "-o", "pid=,rss=", "-p",
                          ",".join(map(str, pids))],
                         capture_output=True, text=True, timeout=5).stdout
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            got[int(parts[0])] = int(parts[1])
    return got


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler:
    """Samples the tree of pid in a thread; peak() and level() in KiB."""

    def __init__(self, pid):
        self.pid = pid
        self.lock = threading.Lock()
        self.reset()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def reset(self):
        with self.lock:
            self.peak_rss = self.peak_main = self.peak_workers = 0
            self.peak_pss = 0

    def sample(self):
        pids = tree(self.pid)
        rss = rss_kib(pids)
        return (sum(rss.values()), rss.get(self.pid, 0),
                sum(v for p, v in rss.items() if p != self.pid), pids)

    def run(self):
        n = 0
        while not self.stop.is_set():
            total, main, workers, pids = self.sample()
            pss = sum(pss_kib(p) for p in pids) if n % 5 == 0 else 0
            with self.lock:
                self.peak_rss = max(self.peak_rss, total)
                self.peak_main = max(self.peak_main, main)
                self.peak_workers = max(self.peak_workers, workers)
                self.peak_pss = max(self.peak_pss, pss)
            n += 1
            time.sleep(0.02)

    def peaks(self):
        with self.lock:
            return (self.peak_rss, self.peak_main, self.peak_workers,
                    self.peak_pss)

    def level(self):
        total, main, workers, pids = self.sample()
        return total, main, workers, sum(pss_kib(p) for p in pids), \
            len(pids) - 1

    def close(self):
        self.stop.set()
        self.thread.join(5)


def get(port, target, timeout=60.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, len(body)
    finally:
        conn.close()


def parallel(port, target, count):
    statuses = []
    lock = threading.Lock()

    def one():
        status, _ = get(port, target)
        with lock:
            statuses.append(status)
    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return "%d x 200" % statuses.count(200) if statuses.count(200) == \
        count else "statuses %s" % sorted(set(statuses))


def idle_connections(port, count):
    """count keep-alive connections, each after one GET /health, held open
    for a second, then closed."""
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection((HOST, port), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            socks.append(s)
        for s in socks:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        time.sleep(1.0)
        return "%d connections open" % len(socks)
    finally:
        for s in socks:
            s.close()


def wrk(port, conns, seconds):
    exe = shutil.which("wrk")
    if exe is None:
        return None
    out = subprocess.run([exe, "-t2", "-c%d" % conns, "-d%ds" % seconds,
                          "http://%s:%d/health" % (HOST, port)],
                         capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    return "%s req/s" % (match.group(1) if match else "?")


def loads(port):
    sleep_target = "/run/sleep?mode=async&tasks=10000&ms=1000"
    return [
        ("/run/sleep async, 10,000 tasks x 1 s, one request",
         lambda: parallel(port, sleep_target, 1)),
        ("the same, 4 requests at once (40,000 timers)",
         lambda: parallel(port, sleep_target, 4)),
        ("/run/prime limit 2e7, 2 tasks, processes",
         lambda: parallel(port, "/run/prime?limit=20000000&tasks=2", 1)),
        ("/run/prime limit 2e7, 2 tasks, threads then gil",
         lambda: parallel(port, "/run/prime?limit=20000000&tasks=2&"
                          "mode=threads", 1) + ", " +
         parallel(port, "/run/prime?limit=20000000&tasks=2&mode=gil", 1)),
        ("/run/prime limit 1e6, 64 tasks, 16 requests at once",
         lambda: parallel(port, "/run/prime?limit=1000000&tasks=64", 16)),
        ("/run/square 10,000 numbers, 8 requests at once",
         lambda: parallel(port, "/run/square?numbers=" +
                          ",".join(["7"] * 10000), 8)),
        ("/run/fetch async, 1,000 self-fetches of /delay?ms=100",
         lambda: parallel(port, "/run/fetch?count=1000&ms=100", 1)),
        ("/run/sleep threads, 1,000 tasks x 100 ms",
         lambda: parallel(port, "/run/sleep?mode=threads&tasks=1000&ms=100",
                          1)),
        ("1,000 idle keep-alive connections",
         lambda: idle_connections(port, 1000)),
        ("wrk -t2 -c256 -d5s /health",
         lambda: wrk(port, 256, 5)),
    ]


def mib(kib):
    return "%.1f" % (kib / 1024.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)),
                                                hard))

    log = tempfile.NamedTemporaryFile(prefix="conlab-mem-", suffix=".log")
    web = tempfile.TemporaryDirectory(prefix="conlab-mem-web-")
    argv = [os.path.abspath(opts.binary), "--port", "0", "--bind", HOST,
            "--workers", str(opts.workers), "--threads", str(opts.threads),
            "--web-root", web.name]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CONLAB_")}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log, env=env,
                            start_new_session=True)
    sampler = None
    try:
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            with open(log.name, "rb") as f:
                match = re.search(rb"listening on http://127\.0\.0\.1:(\d+)",
                                  f.read())
            if match:
                port = int(match.group(1))
            elif proc.poll() is not None:
                sys.exit("conlab exited with %s" % proc.returncode)
            else:
                time.sleep(0.02)
        if port is None:
            sys.exit("no 'listening on' line within 20 s")
        time.sleep(1.0)  # workers started and settled
        sampler = Sampler(proc.pid)
        print("# %s --workers %d --threads %d, %s" % (
            os.path.basename(opts.binary), opts.workers, opts.threads,
            time.strftime("%Y-%m-%d")))
        print("# KiB from ps -o rss (per process, shared pages counted in "
              "each) and smaps_rollup Pss (shared pages split); MiB below")
        print()
        print("| load | result | peak RSS total | service | workers | "
              "peak PSS total | RSS after | PSS after |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        total, main, workers, pss, nworkers = sampler.level()
        worker_pss = sum(pss_kib(p) for p in tree(proc.pid)[1:])
        print("| idle (%d workers; their PSS %s) | | %s | %s | %s | %s | | |"
              % (nworkers, mib(worker_pss), mib(total), mib(main),
                 mib(workers), mib(pss)))
        for name, fn in loads(port):
            sampler.reset()
            time.sleep(0.05)
            result = fn()
            if result is None:
                print("| %s | not run (not installed) | | | | | | |" % name)
                continue
            time.sleep(0.2)
            peak_rss, peak_main, peak_workers, peak_pss = sampler.peaks()
            total, main, workers, pss, _ = sampler.level()
            print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, result, mib(peak_rss), mib(peak_main),
                mib(peak_workers), mib(peak_pss), mib(total), mib(pss)),
                flush=True)
    finally:
        if sampler is not None:
            sampler.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        log.close()
        web.cleanup()


if __name__ == "__main__":
    main()
