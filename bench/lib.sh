# shellcheck shell=bash
# Shared by the bench scripts (sourced): the machine's facts, starting,
# watching and stopping the servers under test, their CPU and memory from
# /proc. Needs START_TIMEOUT_S and STOP_TIMEOUT_S.

# machine_facts: sets started (UTC), cores, model, kernel and load_before,
# the facts every part's report opens with.
# shellcheck disable=SC2034 # the callers use them
machine_facts() {
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    cores=$(nproc)
    model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo |
        head -n 1)
    kernel=$(uname -sr)
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
}

# alive PID: the child is running (a zombie has exited already).
alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# stop_server PID NAME: SIGTERM, wait at most STOP_TIMEOUT_S, then SIGKILL.
# Sets stopped_rc to the exit status. Not in a subshell: wait needs the
# server to be a child of this shell.
# shellcheck disable=SC2034 # the callers read stopped_rc
stopped_rc=0
stop_server() {
    local pid=$1 name=$2 waited=0
    stopped_rc=0
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if [ "$waited" -ge $((STOP_TIMEOUT_S * 10)) ]; then
            echo "bench: $name (pid $pid) ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" || stopped_rc=$?
}

# start_conlab BIN LOG ARG...: starts conlab (BIN) on a free port with ARG...
# and $BENCH_CONLAB_ARGS, its output in LOG; sets conlab_pid, then port
# once it answers GET /health (a conlab that does not stops the script,
# through set -e, after wait_listening has said why).
start_conlab() {
    local bin=$1 log=$2
    shift 2
    # shellcheck disable=SC2086 # BENCH_CONLAB_ARGS is a list of options
    "$bin" --port 0 "$@" $BENCH_CONLAB_ARGS >"$log" 2>&1 &
    conlab_pid=$!
    port=$(wait_listening "$conlab_pid" "$log" conlab)
}

# stop_conlab LOG: stops $conlab_pid (stop_server) and clears it.
# Returns 1, saying so with the end of its LOG, unless conlab exited 0 on
# SIGTERM.
stop_conlab() {
    stop_server "$conlab_pid" conlab
    conlab_pid=""
    if [ "$stopped_rc" -ne 0 ]; then
        echo "bench: conlab exited $stopped_rc after SIGTERM (expected 0)" >&2
        tail -n 5 "$1" | sed 's/^/    /' >&2
        return 1
    fi
}

# stop_helper_and_conlab NAME: the cleanup of a script that runs one
# helper ($helper_pid, NAME in messages) against one conlab ($conlab_pid):
# stops whichever of them still runs (an empty pid is none).
stop_helper_and_conlab() {
    if [ -n "$helper_pid" ]; then
        stop_server "$helper_pid" "$1"
    fi
    if [ -n "$conlab_pid" ]; then
        stop_server "$conlab_pid" conlab
    fi
}

# listen_ports PID: the ports of PID's listening sockets on 127.0.0.1, from
# /proc (for a conlab whose --log-level hides the "listening on" line; a
# conlab has two, its self listener's being the other).
listen_ports() {
    local fd inodes=""
    for fd in /proc/"$1"/fd/*; do
        fd=$(readlink "$fd" 2>/dev/null) || continue
        case $fd in
        socket:*) inodes="$inodes ${fd//[^0-9]/}" ;;
        esac
    done
    [ -n "$inodes" ] || return 0
    local hexes hex
    hexes=$(awk -v inodes="$inodes" '
        BEGIN { n = split(inodes, list, " ")
                for (i = 1; i <= n; i++) want[list[i]] = 1 }
        $4 == "0A" && ($10 in want) && $2 ~ /^0100007F:/ {
            print substr($2, 10)
        }' /proc/net/tcp)
    for hex in $hexes; do
        echo $((16#$hex))
    done
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# commit_facts DIR: the commit checked out in DIR, and whether the work
# tree differs from it ("1a2b3c4" or "1a2b3c4 + 3 files changed or
# new", not counting bench/REPORT.md and bench/plots/). Reads only:
# --no-optional-locks keeps git status from refreshing the index.
commit_facts() {
    local commit changed
    if ! commit=$(git -C "$1" rev-parse --short HEAD 2>/dev/null); then
        echo "unknown (not a git work tree)"
        return 0
    fi
    # The benchmark's own outputs do not count as changes.
    changed=$(git -C "$1" --no-optional-locks status --porcelain -- . \
        ':!bench/REPORT.md' ':!bench/plots' 2>/dev/null | wc -l)
    if [ "$changed" -gt 0 ]; then
        echo "$commit + $changed files changed or new"
    else
        echo "$commit"
    fi
}

# children PID: the PIDs of PID's live children (nginx's or conlab's
# workers), one a line.
children() {
    cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d'
}

# tree_ticks PID: cpu_ticks of PID plus those of its live children (a
# child's stat is read with its comm field skipped: it may hold spaces).
tree_ticks() {
    local total pid ticks
    total=$(cpu_ticks "$1")
    for pid in $(children "$1"); do
        ticks=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null |
            awk '{ print $12 + $13 }')
        total=$((total + ${ticks:-0}))
    done
    echo "$total"
}

# tree_rss_kib PID: VmRSS of PID plus that of its live children, in KiB.
tree_rss_kib() {
    local total=0 pid kib
    for pid in "$1" $(children "$1"); do
        kib=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status" \
            2>/dev/null)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

# free_port: a TCP port of 127.0.0.1 that was free a moment ago (for a
# server that cannot pick its own, as conlab and minimal do with port 0).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# seconds DURATION: wrk's duration (N, Ns or Nm) in whole seconds.
seconds() {
    case $1 in
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
    esac
}

# wait_listening PID LOG NAME: prints the port from the "listening on" line
# (or, until that is written, the one of PID's listening ports in /proc)
# once the server answers GET /health there with 200: conlab's self
# listener, open before that line is written, answers it 404.
wait_listening() {
    local pid=$1 log=$2 name=$3 ports port tries=0
    while [ "$tries" -lt $((START_TIMEOUT_S * 10)) ]; do
        if ! alive "$pid"; then
            echo "bench: $name exited during start-up; end of its log:" >&2
            tail -n 20 "$log" | sed 's/^/    /' >&2
            return 1
        fi
        ports=$(sed -n \
            's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' \
            "$log" | head -n 1)
        [ -n "$ports" ] || ports=$(listen_ports "$pid")
        for port in $ports; do
            if curl -fsS -o /dev/null --max-time 2 \
                "http://127.0.0.1:$port/health" 2>/dev/null; then
                echo "$port"
                return 0
            fi
        done
        sleep 0.1
        tries=$((tries + 1))
    done
    echo "bench: $name did not answer within ${START_TIMEOUT_S}s;" \
        "end of its log:" >&2
    tail -n 20 "$log" | sed 's/^/    /' >&2
    return 1
}

# require_tools TOOL...: exits 1, naming the first one missing.
require_tools() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "bench: $tool is not installed (scripts/deps.sh bench test)" >&2
            exit 1
        fi
    done
}

# require_executable PATH HINT: exits 1 naming PATH and what makes it
# (HINT) unless it is an executable file.
require_executable() {
    if [ ! -x "$1" ]; then
        echo "bench: $1 is missing ($2)" >&2
        exit 1
    fi
}

# fresh_output RAW REPORT: clears the CONLAB_* environment (see below) and
# starts a part's outputs afresh: RAW emptied (created if missing), its
# markdown REPORT removed.
fresh_output() {
    clear_conlab_env
    mkdir -p "$1"
    rm -rf "${1:?}"/* "$2"
}

# trap_cleanup: the caller's cleanup function runs on exit, and Ctrl-C or
# SIGTERM exit with 130 or 143 (so it runs then too).
trap_cleanup() {
    trap cleanup EXIT
    trap 'echo "bench: interrupted" >&2; exit 130' INT
    trap 'echo "bench: terminated" >&2; exit 143' TERM
}

# clear_conlab_env: only the options a script gives count; a CONLAB_*
# variable in the caller's environment would silently change what is
# measured.
clear_conlab_env() {
    local var
    while read -r var; do
        unset "$var"
    done < <(env | sed -n 's/^\(CONLAB_[A-Z_]*\)=.*/\1/p')
}
