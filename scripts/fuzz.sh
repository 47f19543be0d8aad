#!/bin/sh
# Builds the libFuzzer targets of tests/fuzz/ with clang and runs each one, one
# after another, for a bounded time. Stops by itself; fails when a target
# found a crash, and prints the input and the command that reproduces it.
#
# usage: scripts/fuzz.sh [TARGET...]        (default: every tests/fuzz/fuzz_*.c)
# env:   FUZZ_SECONDS  seconds per target (default 60)
#        FUZZ_RSS_MB   memory cap per target in MiB (default 2048)
#        FUZZ_FRESH=1  start from the committed seeds only, forgetting the
#                      inputs earlier runs added to build/fuzz/corpus
#        FUZZ_BUILD_ONLY=1  build, do not run
#
# The project's sources are compiled with clang -fsanitize=fuzzer-no-link,
# address,undefined into build/fuzz/libconlab.a; each target links it with
# libFuzzer's main. A target fuzzes a copy of its seeds (tests/fuzz/corpus/NAME
# copied into build/fuzz/corpus/NAME, which keeps what it finds between
# runs); the committed corpus is never written. Crash inputs go to
# build/fuzz/artifacts/NAME/, each run's log to build/fuzz/NAME.log.
set -eu
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
rss_mb=${FUZZ_RSS_MB:-2048}
cc=${FUZZ_CC:-clang}
out=build/fuzz
case "$seconds" in
'' | *[!0-9]*)
    echo "fuzz: FUZZ_SECONDS must be a whole number of seconds" >&2
    exit 2
    ;;
esac

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: $cc not found (Debian: apt-get install clang" \
        "libclang-rt-14-dev)" >&2
    exit 2
fi

pkgs="libmicrohttpd jansson libcurl"
warn="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
      -Wpointer-arith -fno-common -Werror"
san="-fsanitize=address,undefined -fno-omit-frame-pointer
     -fno-sanitize-recover=all"
# shellcheck disable=SC2086
cflags="-std=c11 -D_GNU_SOURCE -O1 -g $warn $san $(pkg-config --cflags $pkgs)"
# shellcheck disable=SC2086
libs="$(pkg-config --libs $pkgs) -lpthread -lm"

# The longest input each target is given (bytes): a little over the
# parser's own limit where it has one, so the refusal is reached too.
max_len_of() {
    case "$1" in
    params) echo 4096 ;;  # PARAMS_MAX pairs fit; the 32 KiB cap is unit-tested
    static) echo 4200 ;;  # past PATH_MAX, for -ENAMETOOLONG
    allow) echo 2100 ;;   # past ALLOW_URL_MAX (2048)
    frame) echo 4096 ;;   # several frames and jobs per input
    *) echo 4096 ;;
    esac
}

if [ "$#" -gt 0 ]; then
    targets="$*"
else
    targets=$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done |
        sed 's/^fuzz_//')
fi
for t in $targets; do
    if [ ! -f "tests/fuzz/fuzz_$t.c" ]; then
        echo "fuzz: no target tests/fuzz/fuzz_$t.c" >&2
        exit 2
    fi
done

# Build: the library once, then each target.
echo "fuzz: building with $cc into $out/"
mkdir -p "$out/obj"
rm -f "$out/libconlab.a"
objs=""
for src in server/*.c handlers/*.c; do
    [ "$src" = server/main.c ] && continue
    obj="$out/obj/$(echo "$src" | tr / _).o"
    # shellcheck disable=SC2086
    $cc $cflags -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    objs="$objs $obj"
done
$cc -c handlers/openapi_data.S -o "$out/obj/openapi_data.o"
# shellcheck disable=SC2086
ar rcs "$out/libconlab.a" $objs "$out/obj/openapi_data.o"
for t in $targets; do
    # fuzz_frame replaces the prime kernel so that a job costs nothing.
    wrap=""
    [ "$t" = frame ] && wrap="-Wl,--wrap=prime_count"
    # shellcheck disable=SC2086
    $cc $cflags -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "$out/libconlab.a" $libs \
        $wrap -o "$out/fuzz_$t"
done
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0

# Run each target in turn (two cores: one at a time).
found=0
summary=""
abs_out=$(cd "$out" && pwd)
for t in $targets; do
    corpus="$out/corpus/$t"
    artifacts="$out/artifacts/$t"
    log="$out/$t.log"
    [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$corpus"
    mkdir -p "$corpus" "$artifacts" "$out/tmp/$t"
    cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
    dict=""
    [ -f "tests/fuzz/dict/$t.dict" ] && dict="-dict=tests/fuzz/dict/$t.dict"
    stamp="$out/.stamp-$t"
    : >"$stamp"

    echo "fuzz: $t for ${seconds}s (log $log)"
    rc=0
    # The outer timeout only guards against a stuck process: libFuzzer
    # stops itself at max_total_time, and -timeout catches a slow input.
    # shellcheck disable=SC2086
    TMPDIR="$abs_out/tmp/$t" UBSAN_OPTIONS=print_stacktrace=1 \
        timeout --kill-after=10 $((seconds + 120)) \
        "$out/fuzz_$t" -max_total_time="$seconds" -max_len="$(max_len_of "$t")" \
        -rss_limit_mb="$rss_mb" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" $dict "$corpus" >"$log" 2>&1 || rc=$?
    rm -rf "$out/tmp/$t"

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 |
        sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [0-9]*\).*/\1 \2 \3/p')
    line="$t: ${execs:-?} runs, ${speed:-?} exec/s, ${cov:-no coverage line}"
    if [ "$rc" -ne 0 ]; then
        found=$((found + 1))
        line="$line, FAILED (exit $rc)"
        echo "fuzz: $t FAILED (exit $rc); the end of $log:"
        tail -n 40 "$log" | sed 's/^/    /'
        crashes=$(find "$artifacts" -type f -newer "$stamp" 2>/dev/null)
        if [ -n "$crashes" ]; then
            for c in $crashes; do
                echo "fuzz: crash input: $c"
                echo "fuzz: reproduce:   $out/fuzz_$t $c"
            done
        else
            echo "fuzz: no crash input was written (see $log)"
        fi
    fi
    rm -f "$stamp"
    summary="$summary
  $line"
done

echo "fuzz: summary (${seconds}s per target):$summary"
if [ "$found" -ne 0 ]; then
    echo "fuzz: $found target(s) failed" >&2
    exit 1
fi
echo "fuzz: no crash found"
