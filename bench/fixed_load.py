#!/usr/bin/env python3
"""A fixed number of GET requests over keep-alive connections, for
bench/callgrind.sh: the same count every time, so that instructions per
request (which callgrind counts exactly) compare across servers and
builds. Only the Python standard library is used.

    fixed_load.py PORT CONNECTIONS REQUESTS [PATH]

Opens CONNECTIONS connections to 127.0.0.1:PORT, then sends one request
on each in turn and reads every answer, until REQUESTS are answered
(PATH: /health). Exit status 1 when an answer is not a 200 or a
connection closes early.
"""

import socket
import sys

READ_TIMEOUT_S = 60  # a server under callgrind is about 50 times slower


def read_answer(sock, pending):
    """The status of the next answer on sock; pending holds bytes read
    past the previous one. Returns (status, the bytes past this one)."""
    buf = pending
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(buf) >= end + 4 + length:
                return int(head[0].split(" ")[1]), buf[end + 4 + length:]
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed a connection")
        buf += data


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    port, conns, total = (int(a) for a in sys.argv[1:4])
    path = sys.argv[4] if len(sys.argv) == 5 else "/health"
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()
    socks = [socket.create_connection(("127.0.0.1", port),
                                      timeout=READ_TIMEOUT_S)
             for _ in range(conns)]
    pending = [b""] * conns
    done = bad = 0
    try:
        while done < total:
            n = min(conns, total - done)
            for sock in socks[:n]:
                sock.sendall(request)
            for i in range(n):
                status, pending[i] = read_answer(socks[i], pending[i])
                bad += status != 200
            done += n
    finally:
        for sock in socks:
            sock.close()
    if bad:
        print("fixed_load: %d of %d answers were not 200" % (bad, done),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
