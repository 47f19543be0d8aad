#!/bin/sh
# Runs each cmocka binary in its own process with a time limit, and fails
# when any of them fails. usage: scripts/run-unit.sh BINARY...
set -u
failed=0
for bin in "$@"; do
    echo "== $(basename "$bin")"
    if ! timeout --kill-after=5 120 "$bin"; then
        echo "FAILED: $bin"
        failed=$((failed + 1))
    fi
done
echo "unit test binaries: $# run, $failed failed"
[ "$failed" -eq 0 ]
