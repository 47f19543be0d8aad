#!/bin/sh
# The container image's health check (Dockerfile HEALTHCHECK, compose.yaml):
# GET /health on the address conlab really listens on, whatever set it
# (--port/--bind after the image name, CONLAB_PORT/CONLAB_BIND, or the
# image's defaults). conlab is the only process in the container that
# listens, so the first TCP socket in LISTEN state in this network
# namespace (/proc/net/tcp, then tcp6) is its. Exit 0 healthy, 1 not.
set -u

listen=""
for table in /proc/net/tcp /proc/net/tcp6; do
    # Column 2 is ADDR:PORT in hex, column 4 the state (0A = LISTEN).
    listen=$(awk '$4 == "0A" { print $2; exit }' "$table" 2>/dev/null)
    [ -n "$listen" ] && break
done
if [ -z "$listen" ]; then
    echo "conlab-healthcheck: nothing listens in this container" >&2
    exit 1
fi
port=$((0x${listen#*:}))
addr=${listen%:*}
case $addr in
00000000 | 0100007F) host=127.0.0.1 ;; # any IPv4 address, or loopback
????????)
    # One IPv4 address, its bytes in host (little-endian) order.
    host=$((0x${addr#??????})).$((0x$(echo "$addr" | cut -c5-6)))
    host=$host.$((0x$(echo "$addr" | cut -c3-4))).$((0x${addr%??????}))
    ;;
*) host="[::1]" ;; # IPv6 (conlab binds v6-only): any address or loopback
esac
exec curl -fsS -o /dev/null --max-time 2 "http://$host:$port/health"
